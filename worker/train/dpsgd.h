/* dpsgd.h: one DP-SGD step on the GPT, with Poisson sampling, exact per-example clipping,
 * secure Gaussian noise and the RDP accountant.
 *
 * What it is. A DP-SGD step (Abadi et al. 2016) over a training set of N examples (rows):
 *  1. shoal_dpsgd_sample: every example joins the batch independently with probability q
 *     (Poisson sampling, the accountant's assumption), drawn from the CSPRNG (privacy/rng.h);
 *  2. shoal_dpsgd_step, given that batch's rows: per-example gradients of L_b (the mean loss
 *     over example b's counted tokens) are clipped to L2 norm C exactly without materialising
 *     them (worker/model/gpt_dp.h: ghost norms, then a backward weighted by the clip factors),
 *     summed, Gaussian noise of std σ·C is added once to the sum (privacy/noise.h, EXACT mode by
 *     default, drawn on several threads with one generator each), and the result is divided
 *     by the EXPECTED batch size q·N (Opacus' convention: dividing by the realised size would
 *     make the update depend on it, which Poisson sampling keeps private); the model's gradient
 *     buffer then holds the privatised mean gradient for any optimizer (AdamW: post-processing);
 *  3. the accountant composes one step at (q, σ_eff), σ_eff =
 *     shoal_dp_effective_noise_multiplier(σ, d), which covers the rounding of the sum to the
 *     noise grid (docs/privacy.md); ε so far is shoal_dpsgd_epsilon.
 * A step whose batch did not come from shoal_dpsgd_sample (a trainer using shuffled fixed-size
 * batches, say) marks the run as not Poisson-sampled: the accountant is not stepped and
 * shoal_dpsgd_epsilon refuses (UNSUPPORTED) from then on, since its figure would be wrong.
 *
 * Why shaped so: the trainer keeps its loop, data and optimizer; this object owns only what
 * privacy needs (sampler, generators, accountant) so that its state is what a checkpoint must
 * save (shoal_dpsgd_accountant + the step count) and nothing else. Not thread-safe.
 *
 * Tested by tests/dp/test_dpsgd.c (sampling rate and independence, noise scale, clipping and
 * scaling of the privatised gradient against brute force, accountant steps and ε against
 * shoal_dp_epsilon, the non-Poisson refusal, resume from saved accountant state).
 */
#ifndef SHOAL_TRAIN_DPSGD_H
#define SHOAL_TRAIN_DPSGD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "privacy/accountant.h"
#include "privacy/noise.h"
#include "worker/model/gpt.h"

/* When a step's noise is drawn. Drawing ahead overlaps it with the forward/clipping pass, which
 * only pays where a core is idle during that pass: with every core busy the drawing threads
 * slow the model's OpenMP threads more than they save (docs/BENCHMARKS.md, DP-SGD section). */
typedef enum {
    SHOAL_DP_DRAW_AUTO = 0,
    SHOAL_DP_DRAW_AFTER = 1,
    SHOAL_DP_DRAW_AHEAD = 2
} shoal_dpsgd_draw;

typedef struct {
    double clip;                    /* C > 0: per-example L2 clip norm */
    double noise;                   /* σ > 0: noise multiplier (std of the noise / C) */
    double sample_rate;             /* q in (0, 1]: Poisson sampling rate */
    uint64_t n_examples;            /* N >= 1: examples the sampler draws from */
    double delta;                   /* δ in (0, 1): for ε reports */
    shoal_dp_noise_mode noise_mode; /* EXACT (default) or FAST, privacy/noise.h */
    int noise_threads;  /* generators drawing noise in parallel; <= 0: the model's threads */
    int micro_batch;    /* examples per forward/backward (the batch is cut into these); >= 1 */
    uint64_t test_seed; /* nonzero: TEST ONLY deterministic generators (not private) */
    shoal_dpsgd_draw noise_draw; /* when the noise is drawn (same samples either way): AUTO
                                    (default): ahead when the CPUs this process may use cover
                                    the model's threads plus noise_threads, else after; AFTER:
                                    after the clipping pass; AHEAD: on threads of its own while
                                    the clipping pass runs. Models over
                                    SHOAL_MAX_DP_PREDRAW_PARAMS always draw after. */
} shoal_dpsgd_config;

typedef struct {
    size_t batch;           /* examples in this step's batch (realised; never logged by us) */
    size_t clipped;         /* of them, how many had norm > C */
    double mean_norm;       /* mean per-example gradient norm before clipping (0 if empty) */
    double mean_loss;       /* mean of the examples' losses that counted tokens (NAN if none) */
    double epsilon;         /* ε so far at δ after this step (NAN when not reportable) */
    double clip_s, noise_s; /* wall seconds in forward + norms + clipped backward, in noise
                               after that (drawn ahead: the wait for the draw plus the add) */
} shoal_dpsgd_step_info;

typedef struct shoal_dpsgd shoal_dpsgd;

/* Defaults: C 1.0, σ 1.0, q 0.01, δ 1e-5, EXACT noise, noise_threads 0, micro_batch 8, draw AUTO. */
void shoal_dpsgd_config_default(shoal_dpsgd_config *c);

/* A DP-SGD state for model m (its parameter count d sets σ_eff). acct may carry a resumed
 * accountant (ownership passes to the new object, also on error); NULL starts a new one.
 * INVALID_ARG on bad values (each named), IO when the OS generator fails. */
shoal_status shoal_dpsgd_init(const shoal_dpsgd_config *cfg, const shoal_gpt *m,
                              shoal_dp_accountant *acct, shoal_dpsgd **out);
void shoal_dpsgd_free(shoal_dpsgd *dp);
/* 1 when this instance draws each step's noise ahead (noise_draw resolved), else 0. */
int shoal_dpsgd_draws_ahead(const shoal_dpsgd *dp);

/* Draw a Poisson batch: indices (ascending, in [0, N)) of the examples taken into idx (room
 * for cap). LIMIT when more than cap are drawn (the step should then be retried with a larger
 * buffer: cap >= q·N + 10·sqrt(q·N) + 10 makes that practically impossible); the draw is
 * then discarded. Geometric gaps (log of a CSPRNG uniform over log(1-q)) keep it O(q·N). */
shoal_status shoal_dpsgd_sample(shoal_dpsgd *dp, uint64_t *idx, size_t cap, size_t *n);

/* One step over the n examples (rows of T tokens, targets and mask (may be NULL) each) of the
 * batch last drawn by shoal_dpsgd_sample (n may be 0: the update is noise only). Overwrites the
 * model's gradient buffer with (Σ_b clip(∇L_b) + N(0, σ²C²)) / (q·N); steps the accountant;
 * fills info (may be NULL). A call whose n differs from the last draw, or without a draw,
 * marks the run not Poisson (see above) but still computes the update. On error the
 * accountant is unchanged and the gradient buffer undefined (skip the optimizer step). */
shoal_status shoal_dpsgd_step(shoal_dpsgd *dp, shoal_gpt *m, const int32_t *tokens,
                              const int32_t *targets, const uint8_t *mask, size_t n, int T,
                              shoal_dpsgd_step_info *info);

/* ε at the configured δ for everything composed so far (including resumed steps), and the
 * optimal order (may be NULL). UNSUPPORTED when a step was not Poisson-sampled. */
shoal_status shoal_dpsgd_epsilon(const shoal_dpsgd *dp, double *eps, double *opt_order);
/* The accountant (for saving with a checkpoint; owned by dp). */
const shoal_dp_accountant *shoal_dpsgd_accountant(const shoal_dpsgd *dp);
/* σ_eff: the noise multiplier the accountant uses per step. */
double shoal_dpsgd_accounted_noise(const shoal_dpsgd *dp);

/* ε at δ that `steps` steps at (q, σ) on a model of d parameters would reach, on top of acct
 * (NULL: from zero): the planning check before a run starts. */
shoal_status shoal_dpsgd_plan_epsilon(const shoal_dp_accountant *acct, double q, double sigma,
                                      uint64_t d, uint64_t steps, double delta, double *eps);
/* The smallest σ (nominal, what --dp-noise would take) whose plan of `steps` steps at q meets
 * target_eps at δ on a model of d parameters, from zero. LIMIT when none does. */
shoal_status shoal_dpsgd_noise_for_epsilon(double target_eps, double q, uint64_t d, uint64_t steps,
                                           double delta, double *sigma);

/* {"epsilon", "delta", "noise_multiplier", "accounted_noise_multiplier", "clip",
 *  "sample_rate", "examples", "expected_batch", "steps", "sampler": "poisson",
 *  "noise_mode", "accountant": {"format", "version", "series"}} for shoal.json; "epsilon"
 * is null when not reportable (and "sampler" says "not poisson"). Caller owns *out. */
shoal_status shoal_dpsgd_provenance(const shoal_dpsgd *dp, json_t **out);

#endif
