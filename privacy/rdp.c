/* rdp.c: RDP of the Poisson-subsampled Gaussian (Mironov, Talwar, Zhang 2019) and the RDP ->
 * (ε, δ) conversion (Balle et al. 2020; Canonne, Kamath, Steinke 2020 Prop. 12).
 *
 * All sums run in log space. Integer orders use the exact binomial expansion
 *   A_α = Σ_{i=0..α} C(α,i) q^i (1-q)^(α-i) exp((i²-i)/(2σ²))          (MTZ19 Sec. 3.3)
 * Fractional orders split the integral at z0 = σ² log(1/q - 1) + 1/2 and sum two series of
 * erfc-weighted terms (MTZ19 Sec. 3.3, Eq. for A_α with fractional α); see rdp.h for the two
 * summation conventions. Numerics: log C(α,i) through lgamma_r (log|Γ|, thread-safe);
 * log erfc(x) through erfc() below x = 25 and its asymptotic expansion above, where erfc
 * underflows. Tested by tests/privacy/test_rdp.c.
 */
#define SHOAL_LOG_SUBSYS "privacy"
#include "privacy/rdp.h"

#include <math.h>

static const double default_orders[] = {
    1.1,  1.2,  1.3,  1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0,  2.1,  2.2,  2.3,  2.4,  2.5,  2.6,
    2.7,  2.8,  2.9,  3.0, 3.1, 3.2, 3.3, 3.4, 3.5, 3.6,  3.7,  3.8,  3.9,  4.0,  4.1,  4.2,
    4.3,  4.4,  4.5,  4.6, 4.7, 4.8, 4.9, 5.0, 5.1, 5.2,  5.3,  5.4,  5.5,  5.6,  5.7,  5.8,
    5.9,  6.0,  6.1,  6.2, 6.3, 6.4, 6.5, 6.6, 6.7, 6.8,  6.9,  7.0,  7.1,  7.2,  7.3,  7.4,
    7.5,  7.6,  7.7,  7.8, 7.9, 8.0, 8.1, 8.2, 8.3, 8.4,  8.5,  8.6,  8.7,  8.8,  8.9,  9.0,
    9.1,  9.2,  9.3,  9.4, 9.5, 9.6, 9.7, 9.8, 9.9, 10.0, 10.1, 10.2, 10.3, 10.4, 10.5, 10.6,
    10.7, 10.8, 10.9, 11,  12,  13,  14,  15,  16,  17,   18,   19,   20,   21,   22,   23,
    24,   25,   26,   27,  28,  29,  30,  31,  32,  33,   34,   35,   36,   37,   38,   39,
    40,   41,   42,   43,  44,  45,  46,  47,  48,  49,   50,   51,   52,   53,   54,   55,
    56,   57,   58,   59,  60,  61,  62,  63,  128, 256,  512,  1024};

size_t shoal_dp_default_orders(const double **orders) {
    *orders = default_orders;
    return sizeof default_orders / sizeof default_orders[0];
}

/* log(e^x + e^y) */
static double log_add(double x, double y) {
    double a = x < y ? x : y, b = x < y ? y : x;
    if (a == -INFINITY) return b;
    return log1p(exp(a - b)) + b;
}

/* log|C(n, k)| and its sign, for real n and integer k >= 0 (log|Γ| via lgamma_r). */
static double log_comb(double n, double k, int *sign) {
    int s1 = 1, s2 = 1, s3 = 1;
    double v = lgamma_r(n + 1.0, &s1) - lgamma_r(k + 1.0, &s2) - lgamma_r(n - k + 1.0, &s3);
    if (sign) *sign = s1 * s2 * s3;
    return v;
}

/* log(erfc(x)), accurate where erfc(x) underflows: erfc(x) = e^{-x²}/(x√π) Σ (-1)^n
 * (2n-1)!!/(2x²)^n (Abramowitz & Stegun 7.1.23); at x >= 25 the ninth term is < 1e-25. */
static double log_erfc(double x) {
    if (x < 25.0) return log(erfc(x));
    double r = 1.0 / (2.0 * x * x), term = 1.0, sum = 1.0;
    for (int n = 1; n <= 8; n++) {
        term *= -(2.0 * n - 1.0) * r;
        sum += term;
    }
    return -x * x - log(x) - 0.5 * log(M_PI) + log(sum);
}

static double log_a_int(double q, double sigma, long alpha) {
    double log_a = -INFINITY, lq = log(q), l1mq = log1p(-q), s2 = 2.0 * sigma * sigma;
    for (long i = 0; i <= alpha; i++) {
        double di = (double)i;
        double s = log_comb((double)alpha, di, NULL) + di * lq + (double)(alpha - i) * l1mq +
                   (di * di - di) / s2;
        log_a = log_add(log_a, s);
    }
    return log_a;
}

#define MAX_FRAC_TERMS 1000

/* dp_accounting convention: magnitudes, relative stop rule, give up after 1000 terms. */
static double log_a_frac_magnitude(double q, double sigma, double alpha) {
    double log_a0 = -INFINITY, log_a1 = -INFINITY, last0 = -INFINITY, last1 = -INFINITY;
    double z0 = sigma * sigma * log(1.0 / q - 1.0) + 0.5, lq = log(q), l1mq = log1p(-q);
    double s2 = 2.0 * sigma * sigma, rs = sqrt(2.0) * sigma;
    for (int i = 0; i < MAX_FRAC_TERMS; i++) {
        double di = (double)i, lc = log_comb(alpha, di, NULL), j = alpha - di;
        double log_t0 = lc + di * lq + j * l1mq, log_t1 = lc + j * lq + di * l1mq;
        double log_e0 = log(0.5) + log_erfc((di - z0) / rs);
        double log_e1 = log(0.5) + log_erfc((z0 - j) / rs);
        double log_s0 = log_t0 + (di * di - di) / s2 + log_e0;
        double log_s1 = log_t1 + (j * j - j) / s2 + log_e1;
        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);
        double total = log_add(log_a0, log_a1);
        double mx = log_s0 > log_s1 ? log_s0 : log_s1;
        if (log_s0 < last0 && log_s1 < last1 && mx < total - 30.0) return total;
        last0 = log_s0;
        last1 = log_s1;
    }
    /* dp_accounting logs and excludes the order too; routine for orders near 1 */
    SHOAL_LOG_DEBUG("RDP series did not converge after %d terms (q=%g sigma=%g order=%g); "
                    "order excluded",
                    MAX_FRAC_TERMS, q, sigma, alpha);
    return INFINITY;
}

/* log(e^x - e^y) for x >= y; NaN when x < y (the signed series went negative). */
static double log_sub(double x, double y) {
    if (x < y) return NAN;
    if (y == -INFINITY) return x;
    if (x == y) return -INFINITY;
    double d = expm1(x - y);
    if (isinf(d)) return x;
    return log(d) + y;
}

/* Opacus convention: signed terms, absolute stop rule (both terms below e^-30). */
static double log_a_frac_signed(double q, double sigma, double alpha) {
    double log_a0 = -INFINITY, log_a1 = -INFINITY;
    double z0 = sigma * sigma * log(1.0 / q - 1.0) + 0.5, lq = log(q), l1mq = log1p(-q);
    double s2 = 2.0 * sigma * sigma, rs = sqrt(2.0) * sigma;
    for (int i = 0; i < 100000; i++) {
        int sign = 1;
        double di = (double)i, lc = log_comb(alpha, di, &sign), j = alpha - di;
        double log_t0 = lc + di * lq + j * l1mq, log_t1 = lc + j * lq + di * l1mq;
        double log_e0 = log(0.5) + log_erfc((di - z0) / rs);
        double log_e1 = log(0.5) + log_erfc((z0 - j) / rs);
        double log_s0 = log_t0 + (di * di - di) / s2 + log_e0;
        double log_s1 = log_t1 + (j * j - j) / s2 + log_e1;
        if (sign > 0) {
            log_a0 = log_add(log_a0, log_s0);
            log_a1 = log_add(log_a1, log_s1);
        } else {
            log_a0 = log_sub(log_a0, log_s0);
            log_a1 = log_sub(log_a1, log_s1);
            if (isnan(log_a0) || isnan(log_a1)) return INFINITY;
        }
        if ((log_s0 > log_s1 ? log_s0 : log_s1) < -30.0) return log_add(log_a0, log_a1);
    }
    return INFINITY;
}

shoal_status shoal_dp_rdp_subsampled_gaussian(double q, double sigma, const double *orders,
                                              size_t n, shoal_dp_series series, double *rdp) {
    SHOAL_REQUIRE(q >= 0.0 && q <= 1.0, SHOAL_ERR_INVALID_ARG,
                  "sample rate q=%g: must be in [0, 1]", q);
    SHOAL_REQUIRE(sigma >= 0.0 && sigma <= SHOAL_DP_MAX_SIGMA, SHOAL_ERR_INVALID_ARG,
                  "noise multiplier sigma=%g: must be in [0, %g]", sigma, SHOAL_DP_MAX_SIGMA);
    SHOAL_REQUIRE(series == SHOAL_DP_SERIES_MAGNITUDE || series == SHOAL_DP_SERIES_SIGNED,
                  SHOAL_ERR_INVALID_ARG, "unknown RDP series convention %d", (int)series);
    SHOAL_REQUIRE(n == 0 || (orders && rdp), SHOAL_ERR_INVALID_ARG, "orders/rdp are NULL");
    for (size_t k = 0; k < n; k++) {
        double a = orders[k];
        SHOAL_REQUIRE(a > 1.0, SHOAL_ERR_INVALID_ARG, "RDP order %g: must be > 1", a);
        if (q == 0.0) {
            rdp[k] = 0.0;
        } else if (isinf(a) || sigma == 0.0) {
            rdp[k] = INFINITY;
        } else if (q == 1.0) {
            rdp[k] = a / (2.0 * sigma * sigma);
        } else if (a == floor(a) && a <= 1e6) {
            rdp[k] = log_a_int(q, sigma, (long)a) / (a - 1.0);
        } else {
            double la = series == SHOAL_DP_SERIES_SIGNED ? log_a_frac_signed(q, sigma, a)
                                                         : log_a_frac_magnitude(q, sigma, a);
            rdp[k] = la / (a - 1.0);
        }
        /* Rényi divergence is >= 0; at q ~ 1e-12 rounding leaves values like -1e-27 */
        if (rdp[k] < 0.0) rdp[k] = 0.0;
        /* a NaN can only come from extreme inputs (q near DBL_TRUE_MIN): exclude the order,
         * which is conservative (+inf never lowers ε) */
        if (isnan(rdp[k])) rdp[k] = INFINITY;
    }
    return SHOAL_OK;
}

shoal_status shoal_dp_rdp_to_epsilon(const double *orders, const double *rdp, size_t n,
                                     double delta, double *eps, double *opt_order) {
    SHOAL_REQUIRE(n > 0 && orders && rdp && eps, SHOAL_ERR_INVALID_ARG, "no RDP orders to convert");
    SHOAL_REQUIRE(delta >= 0.0 && delta < 1.0, SHOAL_ERR_INVALID_ARG, "delta=%g: must be in [0, 1)",
                  delta);
    if (delta == 0.0) {
        int all_zero = 1;
        for (size_t k = 0; k < n; k++)
            all_zero &= rdp[k] == 0.0;
        *eps = all_zero ? 0.0 : INFINITY;
        if (opt_order) *opt_order = 0.0;
        return SHOAL_OK;
    }
    double best = INFINITY, best_order = orders[0];
    for (size_t k = 0; k < n; k++) {
        double a = orders[k], r = rdp[k], e;
        SHOAL_REQUIRE(a >= 1.0, SHOAL_ERR_INVALID_ARG, "RDP order %g: must be >= 1", a);
        SHOAL_REQUIRE(!isnan(r), SHOAL_ERR_INVALID_ARG, "RDP at order %g is NaN", a);
        if (r < 0.0)
            e = 0.0; /* numerical noise of extreme events; dp_accounting does the same */
        else if (delta * delta + expm1(-r) > 0.0)
            e = 0.0; /* KL bound: δ <= sqrt(1 - e^-r) already holds at ε = 0 */
        else if (a > 1.01 && !isinf(a))
            e = r + log1p(-1.0 / a) - log(delta * a) / (a - 1.0);
        else
            e = INFINITY;
        if (e < best) {
            best = e;
            best_order = a;
        }
    }
    *eps = best > 0.0 ? best : 0.0;
    if (opt_order) *opt_order = best_order;
    return SHOAL_OK;
}

shoal_status shoal_dp_rdp_to_delta(const double *orders, const double *rdp, size_t n, double eps,
                                   double *delta, double *opt_order) {
    SHOAL_REQUIRE(n > 0 && orders && rdp && delta, SHOAL_ERR_INVALID_ARG,
                  "no RDP orders to convert");
    SHOAL_REQUIRE(eps >= 0.0 && !isnan(eps), SHOAL_ERR_INVALID_ARG, "epsilon=%g: must be >= 0",
                  eps);
    double best = INFINITY, best_order = orders[0];
    for (size_t k = 0; k < n; k++) {
        double a = orders[k], r = rdp[k], ld;
        SHOAL_REQUIRE(a >= 1.0, SHOAL_ERR_INVALID_ARG, "RDP order %g: must be >= 1", a);
        SHOAL_REQUIRE(!isnan(r), SHOAL_ERR_INVALID_ARG, "RDP at order %g is NaN", a);
        if (r <= 0.0)
            ld = -INFINITY;
        else
            ld = 0.5 * log1p(-exp(-r));
        if (a > 1.01 && !isinf(a) && !isinf(r)) {
            double b = (a - 1.0) * (r - eps + log1p(-1.0 / a)) - log(a);
            if (b < ld) ld = b;
        }
        if (k == 0 || ld < best) {
            best = ld;
            best_order = a;
        }
    }
    double d = exp(best);
    *delta = d < 1.0 ? d : 1.0;
    if (opt_order) *opt_order = best_order;
    return SHOAL_OK;
}

static shoal_status check_plan(double q, uint64_t steps, double delta) {
    SHOAL_REQUIRE(q >= 0.0 && q <= 1.0, SHOAL_ERR_INVALID_ARG,
                  "sample rate q=%g: must be in [0, 1]", q);
    SHOAL_REQUIRE(delta > 0.0 && delta < 1.0, SHOAL_ERR_INVALID_ARG, "delta=%g: must be in (0, 1)",
                  delta);
    SHOAL_REQUIRE(steps > 0 && steps <= (1ull << 53), SHOAL_ERR_INVALID_ARG,
                  "steps=%llu: must be in [1, 2^53]", (unsigned long long)steps);
    return SHOAL_OK;
}

/* ε for a plan; orders from the default grid. rdp is scratch of the grid's size. */
static shoal_status plan_epsilon(double q, double sigma, uint64_t steps, double delta, double *rdp,
                                 double *eps, double *order) {
    const double *orders;
    size_t n = shoal_dp_default_orders(&orders);
    SHOAL_CHECK(
        shoal_dp_rdp_subsampled_gaussian(q, sigma, orders, n, SHOAL_DP_SERIES_MAGNITUDE, rdp));
    for (size_t k = 0; k < n; k++)
        rdp[k] *= (double)steps;
    return shoal_dp_rdp_to_epsilon(orders, rdp, n, delta, eps, order);
}

#define N_DEFAULT_ORDERS (sizeof default_orders / sizeof default_orders[0])

shoal_status shoal_dp_epsilon(double q, double sigma, uint64_t steps, double delta, double *eps,
                              double *opt_order) {
    SHOAL_CHECK(check_plan(q, steps, delta));
    SHOAL_REQUIRE(eps != NULL, SHOAL_ERR_INVALID_ARG, "eps is NULL");
    double rdp[N_DEFAULT_ORDERS];
    return plan_epsilon(q, sigma, steps, delta, rdp, eps, opt_order);
}

shoal_status shoal_dp_noise_for_epsilon(double target_eps, double q, uint64_t steps, double delta,
                                        double *sigma) {
    SHOAL_CHECK(check_plan(q, steps, delta));
    SHOAL_REQUIRE(target_eps > 0.0 && isfinite(target_eps), SHOAL_ERR_INVALID_ARG,
                  "target epsilon=%g: must be finite and > 0", target_eps);
    SHOAL_REQUIRE(sigma != NULL, SHOAL_ERR_INVALID_ARG, "sigma is NULL");
    double rdp[N_DEFAULT_ORDERS], e;
    /* Bracket: hi meets the target, lo does not (ε is non-increasing in σ at every order,
     * hence after the minimum over orders). */
    double hi = 1.0, lo;
    SHOAL_CHECK(plan_epsilon(q, hi, steps, delta, rdp, &e, NULL));
    if (e <= target_eps) {
        lo = hi;
        while (e <= target_eps) {
            hi = lo;
            lo = hi / 2.0;
            if (lo < 1e-6) { /* even tiny noise meets it (q = 0, say) */
                *sigma = hi;
                return SHOAL_OK;
            }
            SHOAL_CHECK(plan_epsilon(q, lo, steps, delta, rdp, &e, NULL));
        }
    } else {
        lo = hi;
        while (e > target_eps) {
            lo = hi;
            hi *= 2.0;
            SHOAL_REQUIRE(hi <= SHOAL_DP_MAX_SIGMA, SHOAL_ERR_LIMIT,
                          "no noise multiplier <= 1e6 (SHOAL_DP_MAX_SIGMA) reaches epsilon=%g "
                          "(q=%g, steps=%llu, "
                          "delta=%g)",
                          target_eps, q, (unsigned long long)steps, delta);
            SHOAL_CHECK(plan_epsilon(q, hi, steps, delta, rdp, &e, NULL));
        }
    }
    while (hi - lo > 1e-10 * hi) {
        double mid = 0.5 * (lo + hi);
        SHOAL_CHECK(plan_epsilon(q, mid, steps, delta, rdp, &e, NULL));
        if (e <= target_eps)
            hi = mid;
        else
            lo = mid;
    }
    *sigma = hi;
    return SHOAL_OK;
}
