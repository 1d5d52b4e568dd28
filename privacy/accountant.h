/* accountant.h: the RDP privacy accountant of a training job or a federation.
 *
 * What it is: a running sum of Rényi-DP over a fixed order grid, composed from phases — runs
 * of steps with the same Poisson sampling rate q and noise multiplier σ — and converted to
 * (ε, δ) on demand (privacy/rdp.h). Composition across phases with different q or σ is the
 * sum of their RDP curves (Mironov 2017, Prop. 1), so a trainer that changes batch size or
 * noise mid-run calls step() with the new values.
 *
 * Why shaped so: ε must survive a restart, so the whole state (orders, series convention,
 * phases, and the summed RDP as a cross-check) serialises to JSON; loading recomputes the RDP
 * from the phases and refuses a file whose stored RDP disagrees (edited or corrupted), or
 * whose format version it does not know. Consecutive steps with the same (q, σ) merge into
 * one phase, so calling step() once per training step costs one comparison, not an RDP
 * evaluation. Not thread-safe: one owner (the trainer or the round manager).
 *
 * Tested by tests/privacy/test_accountant.c (composition, save/load/resume, malformed state)
 * and fuzzed by tests/fuzz/fuzz_privacy_state.c.
 */
#ifndef SHOAL_PRIVACY_ACCOUNTANT_H
#define SHOAL_PRIVACY_ACCOUNTANT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "privacy/rdp.h"

/* Version of the accounting method and of the state format; written to the state and to
 * shoal.json so that a figure of ε can be traced to the code that produced it. */
#define SHOAL_DP_ACCOUNTANT_VERSION 1
#define SHOAL_DP_ACCOUNTANT_FORMAT "shoal-dp-accountant"

typedef struct shoal_dp_accountant shoal_dp_accountant;

typedef struct {
    double q;       /* Poisson sampling rate of each step, in [0, 1] */
    double sigma;   /* noise multiplier: noise std / L2 clip norm */
    uint64_t steps; /* steps taken with these values */
} shoal_dp_phase;

/* A new, empty accountant (ε = 0). orders = NULL and n_orders = 0 take the default grid
 * (shoal_dp_default_orders). Orders must be in (1, SHOAL_MAX_DP_ORDER], at most
 * SHOAL_MAX_DP_ORDERS of them. The caller owns *out and frees it. */
shoal_status shoal_dp_accountant_init(shoal_dp_accountant **out, const double *orders,
                                      size_t n_orders, shoal_dp_series series);
void shoal_dp_accountant_free(shoal_dp_accountant *a);

/* Compose `steps` steps of the Poisson-subsampled Gaussian at (q, sigma). INVALID_ARG on bad
 * values, LIMIT past SHOAL_MAX_DP_PHASES distinct phases or 2^53 total steps. On error the
 * accountant is unchanged. */
shoal_status shoal_dp_accountant_step(shoal_dp_accountant *a, double q, double sigma,
                                      uint64_t steps);

/* ε at δ (and the optimal order, may be NULL) for everything composed so far. */
shoal_status shoal_dp_accountant_epsilon(const shoal_dp_accountant *a, double delta, double *eps,
                                         double *opt_order);
/* δ at ε (and the optimal order, may be NULL). */
shoal_status shoal_dp_accountant_delta(const shoal_dp_accountant *a, double eps, double *delta,
                                       double *opt_order);
/* ε at δ if `steps` more steps at (q, sigma) were taken, without changing the accountant:
 * what a trainer checks before starting ("does the plan fit the budget?"). */
shoal_status shoal_dp_accountant_epsilon_if(const shoal_dp_accountant *a, double q, double sigma,
                                            uint64_t steps, double delta, double *eps);

uint64_t shoal_dp_accountant_total_steps(const shoal_dp_accountant *a);
size_t shoal_dp_accountant_phase_count(const shoal_dp_accountant *a);
/* The i-th phase (i < phase_count) into *out; INVALID_ARG when out of range. */
shoal_status shoal_dp_accountant_phase(const shoal_dp_accountant *a, size_t i, shoal_dp_phase *out);

/* The state as a new JSON object (caller json_decref's it):
 *   {"format": "shoal-dp-accountant", "version": 1, "mechanism":
 *    "poisson_subsampled_gaussian", "series": "magnitude"|"signed", "orders": [...],
 *    "phases": [{"q": .., "sigma": .., "steps": ..}, ...], "total_steps": N,
 *    "rdp": [... summed RDP per order, null for +inf ...]} */
shoal_status shoal_dp_accountant_to_json(const shoal_dp_accountant *a, json_t **out);
/* Rebuild an accountant from such an object; FORMAT (with the field named in the log) on
 * anything malformed, unknown version, or an "rdp" that disagrees with the phases. `what`
 * names the document in messages. */
shoal_status shoal_dp_accountant_from_json(const json_t *j, const char *what,
                                           shoal_dp_accountant **out);
/* Atomic write to / read from a file (common/json.h). */
shoal_status shoal_dp_accountant_save(const shoal_dp_accountant *a, const char *path);
shoal_status shoal_dp_accountant_load(const char *path, shoal_dp_accountant **out);

#endif
