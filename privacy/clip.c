/* clip.c: pairwise double-accumulated L2 norm and clipping. See clip.h.
 * Tested by tests/privacy/test_clip.c. */
#define SHOAL_LOG_SUBSYS "privacy"
#include "privacy/clip.h"

#include <math.h>
#include <stdint.h>

#define BLOCK 1024

/* Sum of squares of x[n], pairwise over blocks of BLOCK, four lanes inside a block. */
static double sumsq(const float *x, size_t n) {
    if (n <= BLOCK) {
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        size_t i = 0;
        for (; i + 4 <= n; i += 4) {
            double v0 = x[i], v1 = x[i + 1], v2 = x[i + 2], v3 = x[i + 3];
            a0 += v0 * v0;
            a1 += v1 * v1;
            a2 += v2 * v2;
            a3 += v3 * v3;
        }
        for (; i < n; i++)
            a0 += (double)x[i] * x[i];
        return (a0 + a1) + (a2 + a3);
    }
    size_t half = (n / 2 + BLOCK - 1) / BLOCK * BLOCK; /* split on a block boundary */
    return sumsq(x, half) + sumsq(x + half, n - half);
}

shoal_status shoal_dp_l2_norm(const float *x, size_t n, double *norm) {
    SHOAL_REQUIRE(norm != NULL && (x != NULL || n == 0), SHOAL_ERR_INVALID_ARG,
                  "x or norm is NULL");
    double s = sumsq(x, n);
    if (!isfinite(s)) { /* only a non-finite element can do this */
        for (size_t i = 0; i < n; i++)
            SHOAL_REQUIRE(isfinite(x[i]), SHOAL_ERR_INVALID_ARG,
                          "element %zu of %zu is %g: cannot clip a non-finite gradient", i, n,
                          (double)x[i]);
    }
    *norm = sqrt(s);
    return SHOAL_OK;
}

static shoal_status check_c(double max_norm) {
    SHOAL_REQUIRE(max_norm > 0.0 && isfinite(max_norm), SHOAL_ERR_INVALID_ARG,
                  "clip norm %g: must be finite and > 0", max_norm);
    return SHOAL_OK;
}

static double factor_for(double norm, double c) {
    return norm > c ? (c / norm) * (1.0 - SHOAL_DP_CLIP_MARGIN) : 1.0;
}

shoal_status shoal_dp_clip_l2(float *x, size_t n, double max_norm, double *norm_before,
                              int *clipped) {
    SHOAL_CHECK(check_c(max_norm));
    double nrm;
    SHOAL_CHECK(shoal_dp_l2_norm(x, n, &nrm));
    double f = factor_for(nrm, max_norm);
    if (f < 1.0)
        for (size_t i = 0; i < n; i++)
            x[i] = (float)((double)x[i] * f);
    if (norm_before) *norm_before = nrm;
    if (clipped) *clipped = f < 1.0;
    return SHOAL_OK;
}

shoal_status shoal_dp_clip_factors(const double *norms, size_t batch, double max_norm,
                                   float *factors, size_t *n_clipped) {
    SHOAL_CHECK(check_c(max_norm));
    SHOAL_REQUIRE((norms && factors) || batch == 0, SHOAL_ERR_INVALID_ARG,
                  "norms or factors is NULL");
    for (size_t b = 0; b < batch; b++)
        SHOAL_REQUIRE(norms[b] >= 0.0 && isfinite(norms[b]), SHOAL_ERR_INVALID_ARG,
                      "per-example norm %zu is %g: must be finite and >= 0", b, norms[b]);
    size_t c = 0;
    for (size_t b = 0; b < batch; b++) {
        /* factor·norm must stay <= C after rounding the factor to float: round down */
        double f = factor_for(norms[b], max_norm);
        float ff = (float)f;
        if ((double)ff > f) ff = nextafterf(ff, 0.0f);
        factors[b] = ff;
        c += f < 1.0;
    }
    if (n_clipped) *n_clipped = c;
    return SHOAL_OK;
}

shoal_status shoal_dp_clip_rows(float *g, size_t batch, size_t dim, double max_norm, double *norms,
                                size_t *n_clipped) {
    SHOAL_CHECK(check_c(max_norm));
    SHOAL_REQUIRE(g != NULL || batch == 0 || dim == 0, SHOAL_ERR_INVALID_ARG, "g is NULL");
    SHOAL_REQUIRE(dim == 0 || batch <= SIZE_MAX / dim, SHOAL_ERR_INVALID_ARG,
                  "batch %zu x dim %zu overflows", batch, dim);
    size_t c = 0;
    for (size_t b = 0; b < batch; b++) {
        double nrm;
        int cl;
        SHOAL_CHECK(shoal_dp_clip_l2(g + b * dim, dim, max_norm, &nrm, &cl));
        if (norms) norms[b] = nrm;
        c += (size_t)cl;
    }
    if (n_clipped) *n_clipped = c;
    return SHOAL_OK;
}

shoal_status shoal_dp_clip_sum(const float *g, size_t batch, size_t dim, double max_norm,
                               float *sum, size_t *n_clipped) {
    SHOAL_CHECK(check_c(max_norm));
    SHOAL_REQUIRE((g && sum) || batch == 0 || dim == 0, SHOAL_ERR_INVALID_ARG, "g or sum is NULL");
    SHOAL_REQUIRE(dim == 0 || batch <= SIZE_MAX / dim, SHOAL_ERR_INVALID_ARG,
                  "batch %zu x dim %zu overflows", batch, dim);
    size_t c = 0;
    for (size_t b = 0; b < batch; b++) {
        double nrm;
        SHOAL_CHECK(shoal_dp_l2_norm(g + b * dim, dim, &nrm));
        double f = factor_for(nrm, max_norm);
        c += f < 1.0;
        for (size_t i = 0; i < dim; i++)
            sum[i] += (float)((double)g[b * dim + i] * f);
    }
    if (n_clipped) *n_clipped = c;
    return SHOAL_OK;
}
