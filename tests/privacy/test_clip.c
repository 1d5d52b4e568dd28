/* test_clip.c: L2 norm and clipping of privacy/clip.h.
 *
 * The norm is checked against a long-double Kahan reference on random vectors (1e-12
 * relative), on values whose squares overflow or underflow float (1e30, 1e-30, subnormals),
 * on a 2^24+ vector of ones where naive float accumulation stalls, and on NaN/Inf input.
 * Clipping: zero vector, vectors under, at and over the bound (bit-exact when not clipped,
 * norm <= C after clipping), per-example factors, clip_rows and clip_sum agreeing.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "privacy/clip.h"
#include "test.h"

static uint64_t lcg = 12345;
static float frand(void) {
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(lcg >> 11) * 0x1p-53 * 2.0 - 1.0);
}

static long double ref_norm(const float *x, size_t n) {
    long double s = 0, c = 0;
    for (size_t i = 0; i < n; i++) {
        long double y = (long double)x[i] * x[i] - c, t = s + y;
        c = (t - s) - y;
        s = t;
    }
    return sqrtl(s);
}

static void test_norm_random(void) {
    const size_t sizes[] = {0, 1, 3, 1023, 1024, 1025, 5000, 100003};
    for (int k = 0; k < 8; k++) {
        size_t n = sizes[k];
        float *x = malloc((n ? n : 1) * sizeof *x);
        for (size_t i = 0; i < n; i++)
            x[i] = frand();
        double nrm = -1;
        CHECK(shoal_dp_l2_norm(x, n, &nrm) == SHOAL_OK);
        long double r = ref_norm(x, n);
        CHECK(n == 0 ? nrm == 0.0 : fabs(nrm - (double)r) <= 1e-12 * (double)r);
        free(x);
    }
}

static void test_norm_extremes(void) {
    float big[4] = {1e30f, -1e30f, 1e30f, 1e30f};
    double nrm;
    CHECK(shoal_dp_l2_norm(big, 4, &nrm) == SHOAL_OK);
    CHECK(fabs(nrm - 2e30) <= 1e-6 * 2e30); /* float squares would overflow */
    float maxv[2] = {FLT_MAX, FLT_MAX};
    CHECK(shoal_dp_l2_norm(maxv, 2, &nrm) == SHOAL_OK);
    CHECK(isfinite(nrm) && fabs(nrm - sqrt(2.0) * FLT_MAX) <= 1e-12 * nrm);
    float tiny[4] = {1e-30f, 1e-30f, 1e-30f, 1e-30f};
    CHECK(shoal_dp_l2_norm(tiny, 4, &nrm) == SHOAL_OK);
    CHECK(fabs(nrm - 2e-30) <= 1e-6 * 2e-30); /* float squares would underflow to 0 */
    float sub[1] = {FLT_TRUE_MIN};
    CHECK(shoal_dp_l2_norm(sub, 1, &nrm) == SHOAL_OK);
    CHECK(nrm == (double)FLT_TRUE_MIN);
    /* 2^24 + 4096 ones: float accumulation would stop at 2^24 */
    size_t n = (1u << 24) + 4096;
    float *ones = malloc(n * sizeof *ones);
    for (size_t i = 0; i < n; i++)
        ones[i] = 1.0f;
    CHECK(shoal_dp_l2_norm(ones, n, &nrm) == SHOAL_OK);
    CHECK(nrm == sqrt((double)n));
    free(ones);
    float bad[3] = {1.0f, NAN, 2.0f};
    CHECK(shoal_dp_l2_norm(bad, 3, &nrm) == SHOAL_ERR_INVALID_ARG);
    bad[1] = INFINITY;
    CHECK(shoal_dp_l2_norm(bad, 3, &nrm) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_dp_l2_norm(NULL, 3, &nrm) == SHOAL_ERR_INVALID_ARG);
}

static void test_clip_cases(void) {
    float z[5] = {0};
    double nb;
    int cl = -1;
    CHECK(shoal_dp_clip_l2(z, 5, 1.0, &nb, &cl) == SHOAL_OK);
    CHECK(nb == 0.0 && cl == 0 && z[0] == 0.0f && z[4] == 0.0f);
    float under[3] = {0.3f, -0.4f, 0.0f}, keep[3];
    memcpy(keep, under, sizeof keep);
    CHECK(shoal_dp_clip_l2(under, 3, 1.0, &nb, &cl) == SHOAL_OK);
    CHECK(cl == 0 && memcmp(under, keep, sizeof keep) == 0);
    float at[2] = {3.0f, 4.0f};
    CHECK(shoal_dp_clip_l2(at, 2, 5.0, &nb, &cl) == SHOAL_OK);
    CHECK(cl == 0 && at[0] == 3.0f && at[1] == 4.0f); /* exactly at C: untouched */
    float over[2] = {30.0f, 40.0f};
    CHECK(shoal_dp_clip_l2(over, 2, 5.0, &nb, &cl) == SHOAL_OK);
    CHECK(cl == 1 && nb == 50.0);
    double after;
    CHECK(shoal_dp_l2_norm(over, 2, &after) == SHOAL_OK);
    CHECK(after <= 5.0 && after > 5.0 * (1 - 1e-6));
    /* many random vectors: after clipping the norm never exceeds C */
    int worst_ok = 1;
    for (int t = 0; t < 200; t++) {
        float v[257];
        double c = 0.01 + (t % 7) * 0.37;
        for (int i = 0; i < 257; i++)
            v[i] = frand() * (float)(1 + t);
        CHECK(shoal_dp_clip_l2(v, 257, c, NULL, NULL) == SHOAL_OK);
        CHECK(shoal_dp_l2_norm(v, 257, &after) == SHOAL_OK);
        worst_ok &= after <= c;
    }
    CHECK(worst_ok);
    CHECK(shoal_dp_clip_l2(over, 2, 0.0, NULL, NULL) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_dp_clip_l2(over, 2, NAN, NULL, NULL) == SHOAL_ERR_INVALID_ARG);
    over[1] = NAN;
    CHECK(shoal_dp_clip_l2(over, 2, 1.0, NULL, NULL) == SHOAL_ERR_INVALID_ARG);
}

static void test_per_example(void) {
    enum { B = 6, D = 333 };
    float g[B * D], g2[B * D], sum[D] = {0}, ref[D] = {0};
    for (int i = 0; i < B * D; i++)
        g[i] = frand() * (float)(1 + i / D);
    memcpy(g2, g, sizeof g);
    double norms[B], norms2[B];
    size_t nc, nc2, nc3;
    CHECK(shoal_dp_clip_sum(g, B, D, 5.0, sum, &nc) == SHOAL_OK);
    CHECK(shoal_dp_clip_rows(g2, B, D, 5.0, norms, &nc2) == SHOAL_OK);
    CHECK(nc == nc2);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++)
            ref[i] += g2[b * D + i];
    int same = 1;
    for (int i = 0; i < D; i++)
        same &= fabsf(sum[i] - ref[i]) <= 1e-5f * (1 + fabsf(ref[i]));
    CHECK(same);
    /* factors from norms: the ghost-norm path */
    float f[B];
    for (int b = 0; b < B; b++)
        CHECK(shoal_dp_l2_norm(g + b * D, D, &norms2[b]) == SHOAL_OK);
    CHECK(shoal_dp_clip_factors(norms2, B, 5.0, f, &nc3) == SHOAL_OK);
    CHECK(nc3 == nc);
    for (int b = 0; b < B; b++) {
        CHECK(f[b] <= 1.0f && f[b] > 0.0f);
        CHECK((double)f[b] * norms2[b] <= 5.0);
    }
    /* all clipped / none clipped / zero norm */
    double all[3] = {10, 20, 30}, none[3] = {0.1, 0.2, 0.0};
    CHECK(shoal_dp_clip_factors(all, 3, 1.0, f, &nc3) == SHOAL_OK && nc3 == 3);
    CHECK(shoal_dp_clip_factors(none, 3, 1.0, f, &nc3) == SHOAL_OK && nc3 == 0);
    CHECK(f[0] == 1.0f && f[1] == 1.0f && f[2] == 1.0f);
    double badn[2] = {1.0, -1.0};
    CHECK(shoal_dp_clip_factors(badn, 2, 1.0, f, NULL) == SHOAL_ERR_INVALID_ARG);
    badn[1] = NAN;
    CHECK(shoal_dp_clip_factors(badn, 2, 1.0, f, NULL) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_dp_clip_rows(g, SIZE_MAX / 2, 4, 1.0, NULL, NULL) == SHOAL_ERR_INVALID_ARG);
}

int main(void) {
    TEST_RUN(test_norm_random);
    TEST_RUN(test_norm_extremes);
    TEST_RUN(test_clip_cases);
    TEST_RUN(test_per_example);
    return TEST_EXIT();
}
