/* test_noise.c: the CSPRNG and the Gaussian samplers of privacy/noise.h.
 *
 * ChaCha20 against the RFC 8439 Sec. 2.3.2 block vector; reproducibility of the test-only
 * seeded mode and fork re-keying of the real one; then, with fixed seeds, the statistics of
 * both noise modes at the production grid std 2^24 (moments, Kolmogorov-Smirnov against the
 * normal CDF, tail frequencies beyond 3σ and 4σ) and, at small integer std, the exact pmf:
 * EXACT must follow the discrete Gaussian exp(-k²/2σ²)/Z and FAST the rounded Gaussian
 * Φ((k+½)/σ) - Φ((k-½)/σ) (chi-square; at σ = 1 the two pmfs differ by 4% at 0, so each
 * test would catch the other mode). Thresholds are set at p ≈ 1e-4 or tighter; seeds fixed.
 */
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

#include "privacy/noise.h"
#include "privacy/rng.h"
#include "test.h"

static void test_chacha20_rfc8439(void) {
    uint32_t in[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};
    for (int i = 0; i < 8; i++)
        in[4 + i] = (uint32_t)(4 * i) | (uint32_t)(4 * i + 1) << 8 | (uint32_t)(4 * i + 2) << 16 |
                    (uint32_t)(4 * i + 3) << 24;
    in[12] = 1;
    in[13] = 0x09000000;
    in[14] = 0x4a000000;
    in[15] = 0;
    const uint8_t want[64] = {0x10, 0xf1, 0xe7, 0xe4, 0xd1, 0x3b, 0x59, 0x15, 0x50, 0x0f, 0xdd,
                              0x1f, 0xa3, 0x20, 0x71, 0xc4, 0xc7, 0xd1, 0xf4, 0xc7, 0x33, 0xc0,
                              0x68, 0x03, 0x04, 0x22, 0xaa, 0x9a, 0xc3, 0xd4, 0x6c, 0x4e, 0xd2,
                              0x82, 0x64, 0x46, 0x07, 0x9f, 0xaa, 0x09, 0x14, 0xc2, 0xd7, 0x05,
                              0xd9, 0x8b, 0x02, 0xa2, 0xb5, 0x12, 0x9c, 0xd1, 0xde, 0x16, 0x4e,
                              0xb9, 0xcb, 0xd0, 0x83, 0xe8, 0xa2, 0x50, 0x3c, 0x4e};
    uint32_t out[16];
    shoal_dp_chacha20_block(in, out);
    for (int i = 0; i < 64; i++)
        CHECK((uint8_t)(out[i / 4] >> (8 * (i % 4))) == want[i]);
}

/* The generator's vectorised refill equals the reference block function with counters 0,
 * 1, 2, ... under the key the seeded mode derives (seed bytes LE, zeros, 0x5a last). */
static void test_stream_matches_block_function(void) {
    shoal_dp_rng *r;
    CHECK(shoal_dp_rng_init_deterministic(&r, 0x0123456789abcdefull) == SHOAL_OK);
    uint8_t key[32] = {0};
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)(0x0123456789abcdefull >> (8 * i));
    key[31] = 0x5a;
    uint32_t st[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};
    for (int i = 0; i < 8; i++)
        st[4 + i] = (uint32_t)key[4 * i] | (uint32_t)key[4 * i + 1] << 8 |
                    (uint32_t)key[4 * i + 2] << 16 | (uint32_t)key[4 * i + 3] << 24;
    int same = 1;
    for (uint32_t blk = 0; blk < 200; blk++) { /* spans several refills (32 blocks each) */
        uint32_t out[16];
        st[12] = blk;
        shoal_dp_chacha20_block(st, out);
        for (int w = 0; w < 16; w += 2) {
            uint64_t want = (uint64_t)out[w] | (uint64_t)out[w + 1] << 32;
            same &= shoal_dp_rng_u64(r) == want;
        }
    }
    CHECK(same);
    shoal_dp_rng_free(r);
}

/* Both 8-block implementations (portable vector code, AVX2 where the CPU has it) equal the
 * reference block function on random keys, nonces and counters, including counters that
 * carry from word 12 into word 13 inside the 8 blocks, over 2000 calls each. */
static void test_blocks8_implementations(void) {
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int ran[2] = {0, 0}, same = 1;
    for (int it = 0; it < 2000; it++) {
        uint32_t st[16], ref[128];
        for (int i = 0; i < 16; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64: test inputs only */
            st[i] = (uint32_t)x;
        }
        if (it % 4 == 0) st[12] = 0xfffffffcu - (uint32_t)(it % 8); /* carry into st[13] */
        for (int b = 0; b < 8; b++) {
            uint32_t in[16];
            memcpy(in, st, sizeof in);
            uint64_t c = ((uint64_t)st[13] << 32 | st[12]) + (uint64_t)b;
            in[12] = (uint32_t)c;
            in[13] = (uint32_t)(c >> 32);
            shoal_dp_chacha20_block(in, ref + 16 * b);
        }
        for (int impl = 0; impl < 2; impl++) {
            uint32_t s2[16], out[128];
            memcpy(s2, st, sizeof s2);
            if (!shoal_dp_chacha20_blocks8(s2, out, impl)) continue;
            ran[impl]++;
            same &= memcmp(out, ref, sizeof ref) == 0;
            uint64_t c = ((uint64_t)st[13] << 32 | st[12]) + 8;
            same &= s2[12] == (uint32_t)c && s2[13] == (uint32_t)(c >> 32);
        }
    }
    printf("blocks8: portable %d calls, avx2 %d calls, all equal: %d\n", ran[0], ran[1], same);
    CHECK(ran[0] == 2000);
    CHECK(same);
}

static void test_rng_modes(void) {
    shoal_dp_rng *a, *b, *c, *s;
    CHECK(shoal_dp_rng_init_deterministic(&a, 42) == SHOAL_OK);
    CHECK(shoal_dp_rng_init_deterministic(&b, 42) == SHOAL_OK);
    CHECK(shoal_dp_rng_init_deterministic(&c, 43) == SHOAL_OK);
    CHECK(shoal_dp_rng_init(&s) == SHOAL_OK);
    CHECK(shoal_dp_rng_is_deterministic(a) && !shoal_dp_rng_is_deterministic(s));
    int same = 1, diff = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = shoal_dp_rng_u64(a), y = shoal_dp_rng_u64(b), z = shoal_dp_rng_u64(c);
        same &= x == y;
        diff += x != z;
    }
    CHECK(same);
    CHECK(diff == 1000);
    /* bit balance of the secure stream: 2^20 bits, |ones - half| < 5 sd */
    uint8_t buf[131072];
    shoal_dp_rng_bytes(s, buf, sizeof buf);
    long ones = 0;
    for (size_t i = 0; i < sizeof buf; i++)
        ones += __builtin_popcount(buf[i]);
    CHECK(fabs((double)ones - 524288.0) < 5 * 512.0);
    shoal_dp_rng_free(a);
    shoal_dp_rng_free(b);
    shoal_dp_rng_free(c);
    shoal_dp_rng_free(s);
    shoal_dp_rng_free(NULL);
}

/* A forked child must not replay the parent's keystream, not even its buffered words. */
static void test_fork_rekey(void) {
    shoal_dp_rng *s;
    CHECK(shoal_dp_rng_init(&s) == SHOAL_OK);
    (void)shoal_dp_rng_u64(s); /* buffer filled, 254 words left */
    int fd[2];
    CHECK(pipe(fd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        uint64_t v[8];
        for (int i = 0; i < 8; i++)
            v[i] = shoal_dp_rng_u64(s);
        ssize_t w = write(fd[1], v, sizeof v);
        _exit(w == (ssize_t)sizeof v ? 0 : 1);
    }
    uint64_t mine[8], theirs[8];
    for (int i = 0; i < 8; i++)
        mine[i] = shoal_dp_rng_u64(s);
    CHECK(read(fd[0], theirs, sizeof theirs) == (ssize_t)sizeof theirs);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    int equal = 0;
    for (int i = 0; i < 8; i++)
        equal += mine[i] == theirs[i];
    CHECK(equal == 0);
    close(fd[0]);
    close(fd[1]);
    shoal_dp_rng_free(s);
}

static double phi(double x) {
    return 0.5 * erfc(-x / sqrt(2.0));
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Moments, KS and tails at the production std 2^24. */
static void check_continuous_stats(shoal_dp_noise_mode mode, uint64_t seed, size_t n) {
    shoal_dp_rng *r;
    CHECK(shoal_dp_rng_init_deterministic(&r, seed) == SHOAL_OK);
    int64_t *k = malloc(n * sizeof *k);
    const double s = 16777216.0;
    CHECK(shoal_dp_gaussian_int(r, mode, 1u << 24, k, n) == SHOAL_OK);
    double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
    size_t t3 = 0, t4 = 0;
    for (size_t i = 0; i < n; i++) {
        double z = (double)k[i] / s;
        m1 += z;
        m2 += z * z;
        m3 += z * z * z;
        m4 += z * z * z * z;
        t3 += fabs(z) > 3.0;
        t4 += fabs(z) > 4.0;
    }
    double dn = (double)n;
    m1 /= dn;
    m2 /= dn;
    m3 /= dn;
    m4 /= dn;
    printf("%s: n=%zu mean %.5f var %.5f skew %.5f kurt %.5f  >3sd %zu >4sd %zu\n",
           shoal_dp_noise_mode_name(mode), n, m1, m2, m3, m4, t3, t4);
    CHECK(fabs(m1) < 5.0 / sqrt(dn));
    CHECK(fabs(m2 - 1.0) < 5.0 * sqrt(2.0 / dn));
    CHECK(fabs(m3) < 5.0 * sqrt(15.0 / dn));
    CHECK(fabs(m4 - 3.0) < 5.0 * sqrt(96.0 / dn));
    double p3 = 2 * phi(-3.0) * dn, p4 = 2 * phi(-4.0) * dn;
    CHECK(fabs((double)t3 - p3) < 5.0 * sqrt(p3));
    CHECK(fabs((double)t4 - p4) < 5.0 * sqrt(p4) + 3);
    /* KS: D·sqrt(n) above 1.95 has p ≈ 0.001 under the null */
    qsort(k, n, sizeof *k, cmp_i64);
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double f = phi(((double)k[i] + 0.5) / s);
        double lo = f - (double)i / dn, hi = (double)(i + 1) / dn - f;
        if (lo > d) d = lo;
        if (hi > d) d = hi;
    }
    printf("%s: KS D*sqrt(n) = %.4f\n", shoal_dp_noise_mode_name(mode), d * sqrt(dn));
    CHECK(d * sqrt(dn) < 1.95);
    free(k);
    shoal_dp_rng_free(r);
}

static void test_exact_stats(void) {
    check_continuous_stats(SHOAL_DP_NOISE_EXACT, 7, 400000);
}
static void test_fast_stats(void) {
    check_continuous_stats(SHOAL_DP_NOISE_FAST, 8, 1000000);
}

/* Chi-square of integer samples at std sigma against pmf(k); bins |k| <= lim_sd·σ, tails
 * lumped. */
static double chi_square(shoal_dp_noise_mode mode, uint32_t sigma, int discrete, size_t n,
                         int lim_sd, int *dof) {
    shoal_dp_rng *r;
    CHECK(shoal_dp_rng_init_deterministic(&r, 1000 + sigma + (unsigned)mode) == SHOAL_OK);
    int64_t *k = malloc(n * sizeof *k);
    CHECK(shoal_dp_gaussian_int(r, mode, sigma, k, n) == SHOAL_OK);
    int lim = lim_sd * (int)sigma, nb = 2 * lim + 3;
    double *cnt = calloc((size_t)nb, sizeof *cnt), *p = calloc((size_t)nb, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        int64_t v = k[i];
        int b = v < -lim ? 0 : v > lim ? nb - 1 : (int)v + lim + 1;
        cnt[b] += 1;
    }
    double z = 0;
    for (int v = -60 * (int)sigma; v <= 60 * (int)sigma; v++)
        z += exp(-(double)v * v / (2.0 * sigma * sigma));
    for (int b = 0; b < nb; b++) {
        if (discrete) {
            if (b == 0 || b == nb - 1) {
                double t = 0;
                for (int v = lim + 1; v <= 60 * (int)sigma; v++)
                    t += exp(-(double)v * v / (2.0 * sigma * sigma));
                p[b] = t / z;
            } else {
                int v = b - lim - 1;
                p[b] = exp(-(double)v * v / (2.0 * sigma * sigma)) / z;
            }
        } else {
            if (b == 0 || b == nb - 1)
                p[b] = phi(-(lim + 0.5) / sigma);
            else {
                int v = b - lim - 1;
                p[b] = phi((v + 0.5) / sigma) - phi((v - 0.5) / sigma);
            }
        }
    }
    double chi = 0;
    for (int b = 0; b < nb; b++) {
        double e = p[b] * (double)n;
        chi += (cnt[b] - e) * (cnt[b] - e) / e;
    }
    *dof = nb - 1;
    free(cnt);
    free(p);
    free(k);
    shoal_dp_rng_free(r);
    return chi;
}

/* chi-square critical value at p = 1e-4 (Wilson-Hilferty) */
static double chi_crit(int dof) {
    double z = 3.719, a = 2.0 / (9.0 * dof);
    return dof * pow(1 - a + z * sqrt(a), 3);
}

/* Chi-square of EXACT samples at a large std sigma (a multiple of 8) in 64 bins of sigma/8
 * over [-4σ, 4σ) plus two tail bins, against the discrete Gaussian's mass in each bin. */
static double chi_square_binned(uint32_t sigma, size_t n, int *dof) {
    shoal_dp_rng *r;
    CHECK(shoal_dp_rng_init_deterministic(&r, 5000 + sigma) == SHOAL_OK);
    int64_t *k = malloc(n * sizeof *k);
    CHECK(shoal_dp_gaussian_int(r, SHOAL_DP_NOISE_EXACT, sigma, k, n) == SHOAL_OK);
    enum { NB = 66 };
    int64_t w = sigma / 8, lim = 4 * (int64_t)sigma;
    double cnt[NB] = {0}, p[NB] = {0}, z = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t v = k[i];
        int b = v < -lim ? 0 : v >= lim ? NB - 1 : (int)((v + lim) / w) + 1;
        cnt[b] += 1;
    }
    double s2 = 2.0 * (double)sigma * sigma;
    for (int64_t v = -40 * (int64_t)sigma; v <= 40 * (int64_t)sigma; v++) {
        double e = exp(-(double)v * (double)v / s2);
        z += e;
        int b = v < -lim ? 0 : v >= lim ? NB - 1 : (int)((v + lim) / w) + 1;
        p[b] += e;
    }
    double chi = 0;
    for (int b = 0; b < NB; b++) {
        double e = p[b] / z * (double)n;
        chi += (cnt[b] - e) * (cnt[b] - e) / e;
    }
    *dof = NB - 1;
    free(k);
    shoal_dp_rng_free(r);
    return chi;
}

static void test_exact_pmf(void) {
    const uint32_t sig[] = {1, 2, 5};
    for (int i = 0; i < 3; i++) {
        int dof;
        double c = chi_square(SHOAL_DP_NOISE_EXACT, sig[i], 1, 300000, 4, &dof);
        printf("exact sigma=%u: chi2 %.1f (dof %d, crit %.1f)\n", sig[i], c, dof, chi_crit(dof));
        CHECK(c < chi_crit(dof));
    }
    /* σ = 300 and 256 (a power of two: uniform bits and plain bit comparisons replace the
     * lazy Bernoulli in the proposal and the acceptance test); bins |k| <= 2σ */
    const uint32_t mid[] = {300, 256};
    for (int i = 0; i < 2; i++) {
        int dof;
        double c = chi_square(SHOAL_DP_NOISE_EXACT, mid[i], 1, 600000, 2, &dof);
        printf("exact sigma=%u: chi2 %.1f (dof %d, crit %.1f)\n", mid[i], c, dof, chi_crit(dof));
        CHECK(c < chi_crit(dof));
    }
    /* σ = 50000: the acceptance test's denominator 2σ² exceeds 2^32, so the 64-bit lazy
     * Bernoulli path (192-bit products) runs; σ = 65536 = 2^16: its power-of-two shortcut
     * with 64-bit words. Binned: 64 bins of σ/8 over |k| < 4σ, tails lumped. */
    const uint32_t big[] = {50000, 65536};
    for (int i = 0; i < 2; i++) {
        int dof;
        double c = chi_square_binned(big[i], 400000, &dof);
        printf("exact sigma=%u (binned): chi2 %.1f (dof %d, crit %.1f)\n", big[i], c, dof,
               chi_crit(dof));
        CHECK(c < chi_crit(dof));
    }
    /* and the discrete Gaussian is NOT the rounded Gaussian: the test has power */
    int dof;
    double c = chi_square(SHOAL_DP_NOISE_EXACT, 1, 0, 300000, 4, &dof);
    CHECK(c > 10 * chi_crit(dof));
}

static void test_fast_pmf(void) {
    const uint32_t sig[] = {1, 3};
    for (int i = 0; i < 2; i++) {
        int dof;
        double c = chi_square(SHOAL_DP_NOISE_FAST, sig[i], 0, 300000, 4, &dof);
        printf("fast sigma=%u: chi2 %.1f (dof %d, crit %.1f)\n", sig[i], c, dof, chi_crit(dof));
        CHECK(c < chi_crit(dof));
    }
}

static void test_add_noise(void) {
    shoal_dp_rng *r;
    CHECK(shoal_dp_rng_init_deterministic(&r, 99) == SHOAL_OK);
    enum { N = 200000 };
    float *x = malloc(N * sizeof *x);
    for (int mode = 0; mode < 2; mode++) {
        for (int i = 0; i < N; i++)
            x[i] = 3.0f;
        CHECK(shoal_dp_add_noise(r, (shoal_dp_noise_mode)mode, 0.5, x, N) == SHOAL_OK);
        double m = 0, v = 0;
        for (int i = 0; i < N; i++)
            m += x[i];
        m /= N;
        for (int i = 0; i < N; i++)
            v += (x[i] - m) * (x[i] - m);
        v /= N;
        CHECK(fabs(m - 3.0) < 5 * 0.5 / sqrt(N));
        CHECK(fabs(v / 0.25 - 1.0) < 5 * sqrt(2.0 / N));
    }
    /* bad input leaves x untouched */
    for (int i = 0; i < 8; i++)
        x[i] = (float)i;
    x[5] = NAN;
    CHECK(shoal_dp_add_noise(r, SHOAL_DP_NOISE_FAST, 1.0, x, 8) == SHOAL_ERR_INVALID_ARG);
    CHECK(x[0] == 0.0f && x[7] == 7.0f);
    x[5] = 1e30f;
    CHECK(shoal_dp_add_noise(r, SHOAL_DP_NOISE_FAST, 1e-20, x, 8) == SHOAL_ERR_LIMIT);
    CHECK(x[0] == 0.0f && x[7] == 7.0f);
    CHECK(shoal_dp_add_noise(r, SHOAL_DP_NOISE_FAST, 0.0, x, 8) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_dp_add_noise(r, SHOAL_DP_NOISE_FAST, INFINITY, x, 8) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_dp_add_noise(r, (shoal_dp_noise_mode)7, 1.0, x, 8) == SHOAL_ERR_INVALID_ARG);
    int64_t k;
    CHECK(shoal_dp_gaussian_int(r, SHOAL_DP_NOISE_EXACT, 0, &k, 1) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_dp_gaussian_int(r, SHOAL_DP_NOISE_EXACT, SHOAL_DP_MAX_SIGMA_INT + 1, &k, 1) ==
          SHOAL_ERR_INVALID_ARG);
    shoal_dp_noise_mode m;
    CHECK(shoal_dp_noise_mode_parse("exact", &m) == SHOAL_OK && m == SHOAL_DP_NOISE_EXACT);
    CHECK(shoal_dp_noise_mode_parse("fast", &m) == SHOAL_OK && m == SHOAL_DP_NOISE_FAST);
    CHECK(shoal_dp_noise_mode_parse("gauss", &m) == SHOAL_ERR_INVALID_ARG);
    /* the largest integer std still samples correctly (128-bit path) */
    int64_t big[2000];
    CHECK(shoal_dp_gaussian_int(r, SHOAL_DP_NOISE_EXACT, SHOAL_DP_MAX_SIGMA_INT, big, 2000) ==
          SHOAL_OK);
    double v = 0;
    for (int i = 0; i < 2000; i++)
        v += (double)big[i] * (double)big[i];
    v /= 2000.0 * (double)SHOAL_DP_MAX_SIGMA_INT * (double)SHOAL_DP_MAX_SIGMA_INT;
    CHECK(fabs(v - 1.0) < 5 * sqrt(2.0 / 2000));
    /* effective noise multiplier: the grid-rounding correction */
    CHECK(fabs(shoal_dp_effective_noise_multiplier(1.0, 124000000) -
               1.0 / (1.0 + sqrt(124e6) / 16777216.0)) < 1e-15);
    CHECK(shoal_dp_effective_noise_multiplier(1.0, 1) < 1.0);
    /* GPT-2 size, σ = 1, 10^4 steps: EXACT slack negligible, FAST vacuous */
    CHECK(1e4 * shoal_dp_noise_epsilon_slack(SHOAL_DP_NOISE_EXACT, 124000000, 1.0) < 1e-6);
    CHECK(1e4 * shoal_dp_noise_epsilon_slack(SHOAL_DP_NOISE_FAST, 124000000, 1.0) > 1.0);
    CHECK(shoal_dp_noise_epsilon_slack(SHOAL_DP_NOISE_FAST, 1000, 1.0) < 1e-4);
    CHECK(isinf(shoal_dp_noise_epsilon_slack(SHOAL_DP_NOISE_EXACT, 10, 0.0)));
    free(x);
    shoal_dp_rng_free(r);
}

int main(void) {
    TEST_RUN(test_chacha20_rfc8439);
    TEST_RUN(test_stream_matches_block_function);
    TEST_RUN(test_blocks8_implementations);
    TEST_RUN(test_rng_modes);
    TEST_RUN(test_fork_rekey);
    TEST_RUN(test_exact_stats);
    TEST_RUN(test_fast_stats);
    TEST_RUN(test_exact_pmf);
    TEST_RUN(test_fast_pmf);
    TEST_RUN(test_add_noise);
    return TEST_EXIT();
}
