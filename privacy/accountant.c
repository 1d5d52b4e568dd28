/* accountant.c: RDP accountant state, composition over phases, JSON persistence.
 * See accountant.h for the contract. Tested by tests/privacy/test_accountant.c and
 * tests/fuzz/fuzz_privacy_state.c. */
#define SHOAL_LOG_SUBSYS "privacy"
#include "privacy/accountant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/limits.h"

typedef struct {
    shoal_dp_phase p;
    double *rdp1; /* (n_orders) RDP of one step at (q, sigma) */
} phase;

struct shoal_dp_accountant {
    shoal_dp_series series;
    size_t n_orders;
    double *orders; /* (n_orders) */
    size_t n_phases, cap;
    phase *phases; /* (n_phases) */
    uint64_t total_steps;
};

#define MAX_TOTAL_STEPS (1ull << 53) /* steps stay exact as doubles in the RDP sums */

static shoal_status check_orders(const double *orders, size_t n) {
    SHOAL_REQUIRE(n >= 1 && n <= SHOAL_MAX_DP_ORDERS, SHOAL_ERR_LIMIT,
                  "%zu RDP orders: must be 1..%d", n, SHOAL_MAX_DP_ORDERS);
    for (size_t k = 0; k < n; k++)
        SHOAL_REQUIRE(orders[k] > 1.0 && orders[k] <= SHOAL_MAX_DP_ORDER, SHOAL_ERR_INVALID_ARG,
                      "RDP order %g: must be in (1, %g]", orders[k], SHOAL_MAX_DP_ORDER);
    return SHOAL_OK;
}

shoal_status shoal_dp_accountant_init(shoal_dp_accountant **out, const double *orders,
                                      size_t n_orders, shoal_dp_series series) {
    SHOAL_REQUIRE(out != NULL, SHOAL_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (!orders && n_orders == 0) n_orders = shoal_dp_default_orders(&orders);
    SHOAL_REQUIRE(orders != NULL, SHOAL_ERR_INVALID_ARG, "orders is NULL with n_orders=%zu",
                  n_orders);
    SHOAL_CHECK(check_orders(orders, n_orders));
    SHOAL_REQUIRE(series == SHOAL_DP_SERIES_MAGNITUDE || series == SHOAL_DP_SERIES_SIGNED,
                  SHOAL_ERR_INVALID_ARG, "unknown RDP series convention %d", (int)series);
    shoal_dp_accountant *a = calloc(1, sizeof *a);
    if (!a) return SHOAL_ERR_NOMEM;
    a->orders = malloc(n_orders * sizeof *a->orders);
    if (!a->orders) {
        free(a);
        return SHOAL_ERR_NOMEM;
    }
    memcpy(a->orders, orders, n_orders * sizeof *orders);
    a->n_orders = n_orders;
    a->series = series;
    *out = a;
    return SHOAL_OK;
}

void shoal_dp_accountant_free(shoal_dp_accountant *a) {
    if (!a) return;
    for (size_t i = 0; i < a->n_phases; i++)
        free(a->phases[i].rdp1);
    free(a->phases);
    free(a->orders);
    free(a);
}

static shoal_status check_step(double q, double sigma, uint64_t steps) {
    SHOAL_REQUIRE(q >= 0.0 && q <= 1.0, SHOAL_ERR_INVALID_ARG,
                  "sample rate q=%g: must be in [0, 1]", q);
    SHOAL_REQUIRE(sigma >= 0.0 && sigma <= SHOAL_DP_MAX_SIGMA, SHOAL_ERR_INVALID_ARG,
                  "noise multiplier sigma=%g: must be in [0, %g]", sigma, SHOAL_DP_MAX_SIGMA);
    SHOAL_REQUIRE(steps >= 1 && steps <= MAX_TOTAL_STEPS, SHOAL_ERR_INVALID_ARG,
                  "steps=%llu: must be in [1, 2^53]", (unsigned long long)steps);
    return SHOAL_OK;
}

shoal_status shoal_dp_accountant_step(shoal_dp_accountant *a, double q, double sigma,
                                      uint64_t steps) {
    SHOAL_REQUIRE(a != NULL, SHOAL_ERR_INVALID_ARG, "accountant is NULL");
    SHOAL_CHECK(check_step(q, sigma, steps));
    SHOAL_REQUIRE(steps <= MAX_TOTAL_STEPS - a->total_steps, SHOAL_ERR_LIMIT,
                  "accountant total steps would exceed 2^53");
    if (a->n_phases > 0) {
        phase *last = &a->phases[a->n_phases - 1];
        if (last->p.q == q && last->p.sigma == sigma) {
            last->p.steps += steps;
            a->total_steps += steps;
            return SHOAL_OK;
        }
    }
    SHOAL_REQUIRE(a->n_phases < SHOAL_MAX_DP_PHASES, SHOAL_ERR_LIMIT,
                  "accountant has %d phases (SHOAL_MAX_DP_PHASES); change q or sigma less often",
                  SHOAL_MAX_DP_PHASES);
    if (a->n_phases == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4;
        phase *np = realloc(a->phases, cap * sizeof *np);
        if (!np) return SHOAL_ERR_NOMEM;
        a->phases = np;
        a->cap = cap;
    }
    double *rdp1 = malloc(a->n_orders * sizeof *rdp1);
    if (!rdp1) return SHOAL_ERR_NOMEM;
    shoal_status st =
        shoal_dp_rdp_subsampled_gaussian(q, sigma, a->orders, a->n_orders, a->series, rdp1);
    if (st != SHOAL_OK) {
        free(rdp1);
        return st;
    }
    a->phases[a->n_phases++] = (phase){{q, sigma, steps}, rdp1};
    a->total_steps += steps;
    return SHOAL_OK;
}

/* Summed RDP into rdp[n_orders]; +inf stays +inf (0 * inf is never formed: steps >= 1). */
static void total_rdp(const shoal_dp_accountant *a, double *rdp) {
    for (size_t k = 0; k < a->n_orders; k++)
        rdp[k] = 0.0;
    for (size_t i = 0; i < a->n_phases; i++)
        for (size_t k = 0; k < a->n_orders; k++)
            rdp[k] += (double)a->phases[i].p.steps * a->phases[i].rdp1[k];
}

shoal_status shoal_dp_accountant_epsilon(const shoal_dp_accountant *a, double delta, double *eps,
                                         double *opt_order) {
    SHOAL_REQUIRE(a && eps, SHOAL_ERR_INVALID_ARG, "accountant or eps is NULL");
    double rdp[SHOAL_MAX_DP_ORDERS];
    total_rdp(a, rdp);
    return shoal_dp_rdp_to_epsilon(a->orders, rdp, a->n_orders, delta, eps, opt_order);
}

shoal_status shoal_dp_accountant_delta(const shoal_dp_accountant *a, double eps, double *delta,
                                       double *opt_order) {
    SHOAL_REQUIRE(a && delta, SHOAL_ERR_INVALID_ARG, "accountant or delta is NULL");
    double rdp[SHOAL_MAX_DP_ORDERS];
    total_rdp(a, rdp);
    return shoal_dp_rdp_to_delta(a->orders, rdp, a->n_orders, eps, delta, opt_order);
}

shoal_status shoal_dp_accountant_epsilon_if(const shoal_dp_accountant *a, double q, double sigma,
                                            uint64_t steps, double delta, double *eps) {
    SHOAL_REQUIRE(a && eps, SHOAL_ERR_INVALID_ARG, "accountant or eps is NULL");
    SHOAL_CHECK(check_step(q, sigma, steps));
    double rdp[SHOAL_MAX_DP_ORDERS], extra[SHOAL_MAX_DP_ORDERS];
    total_rdp(a, rdp);
    SHOAL_CHECK(
        shoal_dp_rdp_subsampled_gaussian(q, sigma, a->orders, a->n_orders, a->series, extra));
    for (size_t k = 0; k < a->n_orders; k++)
        rdp[k] += (double)steps * extra[k];
    return shoal_dp_rdp_to_epsilon(a->orders, rdp, a->n_orders, delta, eps, NULL);
}

uint64_t shoal_dp_accountant_total_steps(const shoal_dp_accountant *a) {
    return a ? a->total_steps : 0;
}

size_t shoal_dp_accountant_phase_count(const shoal_dp_accountant *a) {
    return a ? a->n_phases : 0;
}

shoal_status shoal_dp_accountant_phase(const shoal_dp_accountant *a, size_t i,
                                       shoal_dp_phase *out) {
    SHOAL_REQUIRE(a && out && i < a->n_phases, SHOAL_ERR_INVALID_ARG,
                  "phase index %zu out of range", i);
    *out = a->phases[i].p;
    return SHOAL_OK;
}

/* ---- JSON ---- */

static int add(json_t *obj, const char *key, json_t *v) {
    return v ? json_object_set_new(obj, key, v) : -1;
}

shoal_status shoal_dp_accountant_to_json(const shoal_dp_accountant *a, json_t **out) {
    SHOAL_REQUIRE(a && out, SHOAL_ERR_INVALID_ARG, "accountant or out is NULL");
    *out = NULL;
    json_t *j = json_object(), *orders = json_array(), *phases = json_array(), *rdp = json_array();
    double sum[SHOAL_MAX_DP_ORDERS];
    int bad = !j || !orders || !phases || !rdp;
    total_rdp(a, sum);
    for (size_t k = 0; !bad && k < a->n_orders; k++) {
        bad |= json_array_append_new(orders, json_real(a->orders[k])) != 0;
        bad |= json_array_append_new(rdp, isinf(sum[k]) ? json_null() : json_real(sum[k])) != 0;
    }
    for (size_t i = 0; !bad && i < a->n_phases; i++) {
        json_t *p = json_object();
        bad |= !p;
        if (bad) break;
        bad |= add(p, "q", json_real(a->phases[i].p.q)) != 0;
        bad |= add(p, "sigma", json_real(a->phases[i].p.sigma)) != 0;
        bad |= add(p, "steps", json_integer((json_int_t)a->phases[i].p.steps)) != 0;
        bad |= json_array_append_new(phases, p) != 0;
    }
    if (!bad) {
        bad |= add(j, "format", json_string(SHOAL_DP_ACCOUNTANT_FORMAT)) != 0;
        bad |= add(j, "version", json_integer(SHOAL_DP_ACCOUNTANT_VERSION)) != 0;
        bad |= add(j, "mechanism", json_string("poisson_subsampled_gaussian")) != 0;
        bad |= add(j, "series",
                   json_string(a->series == SHOAL_DP_SERIES_SIGNED ? "signed" : "magnitude")) != 0;
        bad |= add(j, "total_steps", json_integer((json_int_t)a->total_steps)) != 0;
        bad |= json_object_set(j, "orders", orders) != 0;
        bad |= json_object_set(j, "phases", phases) != 0;
        bad |= json_object_set(j, "rdp", rdp) != 0;
    }
    json_decref(orders);
    json_decref(phases);
    json_decref(rdp);
    if (bad) {
        json_decref(j);
        return SHOAL_ERR_NOMEM;
    }
    *out = j;
    return SHOAL_OK;
}

static shoal_status from_json(const json_t *j, const char *what, shoal_dp_accountant **out) {
    shoal_status st = SHOAL_OK;
    shoal_dp_accountant *a = NULL;
    double orders[SHOAL_MAX_DP_ORDERS], sum[SHOAL_MAX_DP_ORDERS];
    const char *fmt = NULL, *mech = NULL, *series = NULL;
    int64_t version = 0, total = 0;
    if (!what) what = "accountant state";
    SHOAL_REQUIRE(out != NULL, SHOAL_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    SHOAL_REQUIRE(json_is_object(j), SHOAL_ERR_FORMAT, "%s: expected a JSON object", what);
    SHOAL_CHECK(shoal_json_get_str(j, "format", 1, what, &fmt));
    SHOAL_REQUIRE(strcmp(fmt, SHOAL_DP_ACCOUNTANT_FORMAT) == 0, SHOAL_ERR_FORMAT,
                  "%s: format \"%s\" is not \"%s\"", what, fmt, SHOAL_DP_ACCOUNTANT_FORMAT);
    SHOAL_CHECK(shoal_json_get_int(j, "version", 1, 1, INT32_MAX, what, &version));
    SHOAL_REQUIRE(version == SHOAL_DP_ACCOUNTANT_VERSION, SHOAL_ERR_FORMAT,
                  "%s: accountant version %lld is not %d (written by another shoal)", what,
                  (long long)version, SHOAL_DP_ACCOUNTANT_VERSION);
    SHOAL_CHECK(shoal_json_get_str(j, "mechanism", 1, what, &mech));
    SHOAL_REQUIRE(strcmp(mech, "poisson_subsampled_gaussian") == 0, SHOAL_ERR_FORMAT,
                  "%s: unknown mechanism \"%s\"", what, mech);
    SHOAL_CHECK(shoal_json_get_str(j, "series", 1, what, &series));
    shoal_dp_series ser;
    if (strcmp(series, "magnitude") == 0)
        ser = SHOAL_DP_SERIES_MAGNITUDE;
    else if (strcmp(series, "signed") == 0)
        ser = SHOAL_DP_SERIES_SIGNED;
    else {
        SHOAL_LOG_ERROR("%s: series \"%s\" is not \"magnitude\" or \"signed\"", what, series);
        return SHOAL_ERR_FORMAT;
    }
    SHOAL_CHECK(shoal_json_get_int(j, "total_steps", 1, 0, (int64_t)MAX_TOTAL_STEPS, what, &total));

    const json_t *jo = json_object_get(j, "orders"), *jp = json_object_get(j, "phases"),
                 *jr = json_object_get(j, "rdp");
    SHOAL_REQUIRE(json_is_array(jo) && json_array_size(jo) >= 1 &&
                      json_array_size(jo) <= SHOAL_MAX_DP_ORDERS,
                  SHOAL_ERR_FORMAT, "%s: \"orders\" must be an array of 1..%d numbers", what,
                  SHOAL_MAX_DP_ORDERS);
    size_t n = json_array_size(jo);
    for (size_t k = 0; k < n; k++) {
        const json_t *v = json_array_get(jo, k);
        SHOAL_REQUIRE(json_is_number(v), SHOAL_ERR_FORMAT, "%s: orders[%zu] is not a number", what,
                      k);
        orders[k] = json_number_value(v);
    }
    SHOAL_REQUIRE(json_is_array(jr) && json_array_size(jr) == n, SHOAL_ERR_FORMAT,
                  "%s: \"rdp\" must be an array as long as \"orders\" (%zu)", what, n);
    SHOAL_REQUIRE(json_is_array(jp) && json_array_size(jp) <= SHOAL_MAX_DP_PHASES, SHOAL_ERR_FORMAT,
                  "%s: \"phases\" must be an array of at most %d phases", what,
                  SHOAL_MAX_DP_PHASES);
    st = shoal_dp_accountant_init(&a, orders, n, ser);
    if (st != SHOAL_OK) {
        SHOAL_LOG_ERROR("%s: bad \"orders\"", what);
        return SHOAL_ERR_FORMAT;
    }
    for (size_t i = 0; i < json_array_size(jp); i++) {
        const json_t *p = json_array_get(jp, i);
        char pw[96];
        snprintf(pw, sizeof pw, "%s phases[%zu]", what, i);
        double q = -1, sigma = -1;
        int64_t steps = 0;
        SHOAL_CHECK_GOTO(shoal_json_get_num(p, "q", 1, 0.0, 1.0, pw, &q));
        SHOAL_CHECK_GOTO(shoal_json_get_num(p, "sigma", 1, 0.0, SHOAL_DP_MAX_SIGMA, pw, &sigma));
        SHOAL_CHECK_GOTO(
            shoal_json_get_int(p, "steps", 1, 1, (int64_t)MAX_TOTAL_STEPS, pw, &steps));
        SHOAL_CHECK_GOTO(shoal_dp_accountant_step(a, q, sigma, (uint64_t)steps));
    }
    SHOAL_REQUIRE_GOTO(a->total_steps == (uint64_t)total, SHOAL_ERR_FORMAT,
                       "%s: total_steps %lld differs from the sum of phase steps %llu", what,
                       (long long)total, (unsigned long long)a->total_steps);
    total_rdp(a, sum);
    for (size_t k = 0; k < n; k++) {
        const json_t *v = json_array_get(jr, k);
        int ok;
        if (json_is_null(v))
            ok = isinf(sum[k]);
        else if (json_is_number(v)) {
            double r = json_number_value(v);
            ok = isfinite(sum[k]) && fabs(r - sum[k]) <= 1e-9 * fmax(1e-300, fabs(sum[k]));
            ok |= sum[k] == 0.0 && r == 0.0;
        } else
            ok = 0;
        SHOAL_REQUIRE_GOTO(ok, SHOAL_ERR_FORMAT,
                           "%s: rdp[%zu] does not match the phases (file edited or corrupted, "
                           "or written by a different accountant)",
                           what, k);
    }
    *out = a;
    return SHOAL_OK;
cleanup:
    shoal_dp_accountant_free(a);
    return st == SHOAL_ERR_NOMEM ? st : SHOAL_ERR_FORMAT;
}

shoal_status shoal_dp_accountant_from_json(const json_t *j, const char *what,
                                           shoal_dp_accountant **out) {
    /* every rejection of outside data is FORMAT, whichever getter noticed it */
    shoal_status st = from_json(j, what, out);
    return st == SHOAL_OK || st == SHOAL_ERR_NOMEM ? st : SHOAL_ERR_FORMAT;
}

shoal_status shoal_dp_accountant_save(const shoal_dp_accountant *a, const char *path) {
    json_t *j = NULL;
    SHOAL_CHECK(shoal_dp_accountant_to_json(a, &j));
    shoal_status st = shoal_json_write_file(path, j);
    json_decref(j);
    return st;
}

shoal_status shoal_dp_accountant_load(const char *path, shoal_dp_accountant **out) {
    json_t *j = NULL;
    SHOAL_CHECK(shoal_json_load_file(path, &j));
    shoal_status st = shoal_dp_accountant_from_json(j, path, out);
    json_decref(j);
    return st;
}
