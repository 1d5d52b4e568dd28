/* noise.c: exact discrete Gaussian (Canonne, Kamath, Steinke 2020) and the fast rounded
 * Gaussian, both integer-valued, and the grid-exact noise addition. See noise.h; the security
 * argument is in docs/privacy.md. Tested by tests/privacy/test_noise.c. */
#define SHOAL_LOG_SUBSYS "privacy"
#include "privacy/noise.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "privacy/rng_impl.h"

typedef unsigned __int128 u128;

shoal_status shoal_dp_noise_mode_parse(const char *s, shoal_dp_noise_mode *out) {
    if (s && strcmp(s, "exact") == 0)
        *out = SHOAL_DP_NOISE_EXACT;
    else if (s && strcmp(s, "fast") == 0)
        *out = SHOAL_DP_NOISE_FAST;
    else {
        SHOAL_LOG_ERROR("noise mode \"%s\": expected \"exact\" or \"fast\"", s ? s : "(null)");
        return SHOAL_ERR_INVALID_ARG;
    }
    return SHOAL_OK;
}

const char *shoal_dp_noise_mode_name(shoal_dp_noise_mode m) {
    return m == SHOAL_DP_NOISE_EXACT ? "exact" : m == SHOAL_DP_NOISE_FAST ? "fast" : "unknown";
}

/* ---- exact integer randomness ---- */

/* Uniform in [0, d), d >= 1. Ranges below 2^32 use Lemire's multiply-and-reject (one 32-bit
 * word almost always, exact); larger ones reject on the covering power of two. */
static uint64_t uniform_below64(shoal_dp_rng *r, uint64_t d) {
    if (d <= 1) return 0;
    if (d <= 0xffffffffu) {
        uint32_t d32 = (uint32_t)d;
        uint64_t m = (uint64_t)rng_u32(r) * d32;
        uint32_t lo = (uint32_t)m;
        if (lo < d32) {
            uint32_t thresh = (uint32_t)(-d32) % d32; /* 2^32 mod d */
            while (lo < thresh) {
                m = (uint64_t)rng_u32(r) * d32;
                lo = (uint32_t)m;
            }
        }
        return m >> 32;
    }
    int bits = 64 - __builtin_clzll(d - 1);
    uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1ull;
    for (;;) {
        uint64_t u = rng_u64(r) & mask;
        if (u < d) return u;
    }
}

/* Bernoulli(num/den), num <= den, den >= 1, by lazy comparison: is U < num/den, for a
 * uniform real U in [0, 1) whose binary digits are drawn one word (w bits) at a time? With u
 * the next word and U = (u + f)/2^w, f uniform in [0, 1): u·den >= num·2^w means no;
 * (u + 1)·den <= num·2^w means yes; otherwise (probability at most 2^-w) the answer is
 * f < (num·2^w - u·den)/den: the same question with num' = num·2^w - u·den < den and fresh
 * digits. Exact; no division and no rejection: one word almost always (32-bit words while
 * den fits in 32 bits, 64-bit words with 192-bit products above). den < 2^127 keeps every
 * intermediate in range. A power-of-two den = 2^e needs no lazy step at all: an e-bit uniform
 * integer u is below num with probability num/2^e exactly. */
static inline int bernoulli32(shoal_dp_rng *r, uint64_t n, uint64_t d) { /* d < 2^32 */
    if (n >= d) return 1;
    if (n == 0) return 0;
    if ((d & (d - 1)) == 0) /* d = 2^e, e < 32: the top e bits of one word */
        return (rng_u32(r) >> (32 - __builtin_ctzll(d))) < n;
    for (;;) {
        uint64_t p = (uint64_t)rng_u32(r) * d, nw = n << 32; /* both < 2^64 */
        if (p >= nw) return 0;
        uint64_t diff = nw - p; /* in (0, 2^64) */
        if (diff >= d) return 1;
        n = diff;
    }
}

static int bernoulli(shoal_dp_rng *r, u128 num, u128 den) {
    if (den <= 0xffffffffu) return bernoulli32(r, (uint64_t)num, (uint64_t)den);
    if (num >= den) return 1;
    if (num == 0) return 0;
    uint64_t dl = (uint64_t)den, dh = (uint64_t)(den >> 64);
    if (dh == 0 && (dl & (dl - 1)) == 0) /* den = 2^e, 32 <= e < 64 */
        return (rng_u64(r) >> (64 - __builtin_ctzll(dl))) < (uint64_t)num;
    for (;;) {
        uint64_t u = rng_u64(r);
        u128 lo = (u128)u * dl;
        /* u·den = phi·2^64 + p0, phi < 2^127 */
        u128 phi = (lo >> 64) + (u128)u * dh;
        uint64_t p0 = (uint64_t)lo;
        if (phi >= num) return 0; /* u·den >= num·2^64 */
        u128 hi = num - phi;      /* num·2^64 - u·den = hi·2^64 - p0 > 0 */
        if (hi >> 64) return 1;   /* >= 2^128 - 2^64 > den */
        u128 diff = ((u128)(uint64_t)hi << 64) - p0;
        if (diff >= den) return 1;
        num = diff;
    }
}

/* Bernoulli(exp(-1)): CKS20 Algorithm 1 at γ = 1. Its first trial, Bernoulli(1/1), always
 * succeeds and its second, Bernoulli(1/2), is one random bit; K (the first failing trial)
 * is even, and the answer 0, when that bit is 0. */
static inline int bernoulli_exp_minus1(shoal_dp_rng *r) {
    if (!rng_bit(r)) return 0; /* K = 2 */
    uint64_t k = 3;
    while (bernoulli32(r, 1, k))
        k++;
    return (int)(k & 1u);
}

/* Bernoulli(exp(-num/den)) for 0 <= num/den <= 1: CKS20 Algorithm 1 (first case). The loop's
 * Bernoulli(γ/k) is drawn as one Bernoulli(num/(den·k)) (one word) while den·k fits (below
 * 2^32 for small den; den below 2^106 and k below 2^20 keep it under 2^126 otherwise); past
 * that, as Bernoulli(num/den) AND Bernoulli(1/k), the same law. */
static inline int bernoulli_exp_le1_small(shoal_dp_rng *r, uint64_t num, uint64_t den) {
    uint64_t k = 1; /* den < 2^32 */
    for (;;) {
        int a;
        if (k == 1)
            a = bernoulli32(r, num, den);
        else if (k <= 0xffffffffu && den * k <= 0xffffffffu) /* both < 2^32: no overflow */
            a = bernoulli32(r, num, den * k);
        else
            a = bernoulli32(r, num, den) && bernoulli32(r, 1, k);
        if (!a) break;
        k++;
    }
    return (int)(k & 1u);
}

static int bernoulli_exp_le1(shoal_dp_rng *r, u128 num, u128 den) {
    if (den <= 0xffffffffu) return bernoulli_exp_le1_small(r, (uint64_t)num, (uint64_t)den);
    uint64_t k = 1;
    for (;;) {
        int a;
        if (k == 1)
            a = bernoulli(r, num, den);
        else if ((den >> 106) == 0 && k < ((uint64_t)1 << 20))
            a = bernoulli(r, num, den * k);
        else
            a = bernoulli(r, num, den) && bernoulli(r, 1, k);
        if (!a) break;
        k++;
    }
    return (int)(k & 1u);
}

/* Bernoulli(exp(-num/den)) for any num/den >= 0: CKS20 Algorithm 1 (second case):
 * floor(γ) independent Bernoulli(exp(-1)), then Bernoulli(exp(-(γ - floor γ))). */
static int bernoulli_exp(shoal_dp_rng *r, u128 num, u128 den) {
    while (num > den) {
        if (!bernoulli_exp_minus1(r)) return 0;
        num -= den;
    }
    return bernoulli_exp_le1(r, num, den);
}

/* Discrete Laplace with scale t (P(x) ∝ exp(-|x|/t)): CKS20 Algorithm 2 with s = 1. U is
 * uniform in [0, t) (t bits of one word when t is a power of two, as t = 2^24 is). */
static int64_t discrete_laplace(shoal_dp_rng *r, uint64_t t) {
    int pow2 = t <= 0xffffffffu && (t & (t - 1)) == 0;
    unsigned tb = pow2 ? (unsigned)__builtin_ctzll(t) : 0;
    for (;;) {
        uint64_t u = pow2 ? (tb ? rng_u32(r) >> (32 - tb) : 0) : uniform_below64(r, t);
        if (!bernoulli_exp_le1_small(r, u, t)) continue;
        uint64_t v = 0;
        while (bernoulli_exp_minus1(r))
            v++;
        uint64_t x = u + t * v;
        int neg = rng_bit(r);
        if (neg && x == 0) continue;
        return neg ? -(int64_t)x : (int64_t)x;
    }
}

/* Discrete Gaussian N_Z(0, s²), s integer: CKS20 Algorithm 3 with the Laplace scale t = s
 * (the paper takes t = floor(s) + 1; any t > 0 is exact, see below). The proposal Y has
 * P(Y = y) ∝ exp(-|y|/t), and exp(-|y|/t)·exp(-(|y| - s²/t)²/(2s²)) =
 * exp(-y²/(2s²))·exp(-s²/(2t²)) for every y, so accepting Y with probability
 * exp(-(|Y| - s²/t)²/(2s²)) <= 1 leaves exactly P(y) ∝ exp(-y²/(2s²)). With t = s that
 * probability is exp(-(|Y| - s)²/(2s²)): numerator (|Y| - s)², denominator 2s² — a power of
 * two for s = 2^24, so the Bernoulli trials of the test are plain comparisons of random bits,
 * and the proposal's uniform is 24 bits; the acceptance rate differs from t = s + 1 by
 * O(1/s). */
static int64_t discrete_gaussian(shoal_dp_rng *r, uint64_t s) {
    uint64_t t = s;
    u128 den = (u128)2 * s * s;
    for (;;) {
        int64_t y = discrete_laplace(r, t);
        uint64_t ay = y < 0 ? (uint64_t)(-y) : (uint64_t)y;
        /* |Y| above 2^36 s has proposal probability below e^{-2^36}; the acceptance
         * probability there is below e^{-2^71}: treat it as the rejection it is to 128-bit
         * precision (keeps (|Y| - s)² inside 128 bits). */
        if (ay > ((uint64_t)1 << 36) * t) continue;
        u128 diff = ay > s ? ay - s : s - ay;
        if (bernoulli_exp(r, diff * diff, den)) return y;
    }
}

/* ---- fast: rounded Box-Muller ---- */

/* Uniform in (0, 1] with 53 significant bits at every magnitude down to 2^-1074: leading
 * zero words and bits move the exponent instead of losing precision (so -log(u) is exact to
 * a relative 2^-53 and the Gaussian tail reaches sqrt(2·1074·ln 2) ≈ 38.6). */
static double uniform_open0(shoal_dp_rng *r) {
    int e = 0;
    uint64_t x;
    while ((x = rng_u64(r)) == 0) {
        e -= 64;
        if (e < -1024) return 0x1p-1074; /* probability 2^-1088 */
    }
    int lz = __builtin_clzll(x);
    uint64_t m = x << lz;
    if (lz > 11) m |= rng_u64(r) >> (64 - lz);
    /* m in [2^63, 2^64); value = (m + 1/2 ulp) · 2^(e - lz - 64): never 0 */
    return ldexp((double)(m | 1u), e - lz - 64);
}

/* Standard normal by the ziggurat method of Marsaglia & Tsang (2000) in Doornik's ZIGNOR form
 * (2005: 128 layers, layer index and abscissa from disjoint bits of one word, so they are
 * independent), with Marsaglia's exact tail method beyond R. One 64-bit word per sample in
 * ~98.8% of cases, no transcendental function on that path. */
#define ZN 128
#define ZR 3.442619855899
#define ZV 9.91256303526217e-3
static double zig_x[ZN + 1], zig_r[ZN];
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

static void zig_init(void) {
    double f = exp(-0.5 * ZR * ZR);
    zig_x[0] = ZV / f;
    zig_x[1] = ZR;
    zig_x[ZN] = 0.0;
    for (int i = 2; i < ZN; i++) {
        zig_x[i] = sqrt(-2.0 * log(ZV / zig_x[i - 1] + f));
        f = exp(-0.5 * zig_x[i] * zig_x[i]);
    }
    for (int i = 0; i < ZN; i++)
        zig_r[i] = zig_x[i + 1] / zig_x[i];
}

static double zig_normal(shoal_dp_rng *r) {
    for (;;) {
        uint64_t w = rng_u64(r);
        unsigned i = (unsigned)(w & 0x7f);
        double u = (double)(w >> 11) * 0x1p-52 - 1.0; /* [-1, 1), 53 bits */
        if (fabs(u) < zig_r[i]) return u * zig_x[i];
        if (i == 0) { /* tail beyond R: exact, full-precision uniforms reach ~38 sd */
            double x, y;
            do {
                x = log(uniform_open0(r)) / ZR;
                y = log(uniform_open0(r));
            } while (-2.0 * y < x * x);
            return u < 0 ? x - ZR : ZR - x;
        }
        double x = u * zig_x[i];
        double f0 = exp(-0.5 * (zig_x[i] * zig_x[i] - x * x));
        double f1 = exp(-0.5 * (zig_x[i + 1] * zig_x[i + 1] - x * x));
        if (f1 + uniform_open0(r) * (f0 - f1) < 1.0) return x;
    }
}

static void rounded_gaussian(shoal_dp_rng *r, double s, int64_t *out, size_t n) {
    pthread_once(&zig_once, zig_init);
    for (size_t i = 0; i < n; i++)
        out[i] = llround(s * zig_normal(r));
}

shoal_status shoal_dp_gaussian_int(shoal_dp_rng *r, shoal_dp_noise_mode mode, uint32_t sigma_int,
                                   int64_t *out, size_t n) {
    SHOAL_REQUIRE(r != NULL && (out != NULL || n == 0), SHOAL_ERR_INVALID_ARG,
                  "rng or out is NULL");
    SHOAL_REQUIRE(sigma_int >= 1 && sigma_int <= SHOAL_DP_MAX_SIGMA_INT, SHOAL_ERR_INVALID_ARG,
                  "integer noise std %u: must be in [1, %u]", sigma_int, SHOAL_DP_MAX_SIGMA_INT);
    if (mode == SHOAL_DP_NOISE_EXACT) {
        for (size_t i = 0; i < n; i++)
            out[i] = discrete_gaussian(r, sigma_int);
    } else if (mode == SHOAL_DP_NOISE_FAST) {
        rounded_gaussian(r, (double)sigma_int, out, n);
    } else {
        SHOAL_LOG_ERROR("unknown noise mode %d", (int)mode);
        return SHOAL_ERR_INVALID_ARG;
    }
    return SHOAL_OK;
}

#define GRID_SIGMA (1u << SHOAL_DP_GRID_BITS)
#define CHUNK 256

static shoal_status check_stddev(double stddev) {
    SHOAL_REQUIRE(stddev > 0.0 && isfinite(stddev), SHOAL_ERR_INVALID_ARG,
                  "noise stddev %g: must be finite and > 0", stddev);
    return SHOAL_OK;
}

shoal_status shoal_dp_gaussian(shoal_dp_rng *r, shoal_dp_noise_mode mode, double stddev,
                               double *out, size_t n) {
    SHOAL_CHECK(check_stddev(stddev));
    SHOAL_REQUIRE(out != NULL || n == 0, SHOAL_ERR_INVALID_ARG, "out is NULL");
    double g = stddev / GRID_SIGMA;
    int64_t k[CHUNK];
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t m = n - i < CHUNK ? n - i : CHUNK;
        SHOAL_CHECK(shoal_dp_gaussian_int(r, mode, GRID_SIGMA, k, m));
        for (size_t j = 0; j < m; j++)
            out[i + j] = g * (double)k[j];
    }
    return SHOAL_OK;
}

/* Checks shared by both noise-addition entry points: every x[i] finite and within 2^62
 * grid steps (noise K is at most ~40·2^24 in magnitude, so the integer sum stays in range). */
static shoal_status check_data(const float *x, size_t n, double inv, double g) {
    const double lim = 0x1p62 - 0x1p32;
    for (size_t i = 0; i < n; i++) {
        SHOAL_REQUIRE(isfinite(x[i]), SHOAL_ERR_INVALID_ARG,
                      "value %zu is %g: clip and check gradients before adding noise", i,
                      (double)x[i]);
        SHOAL_REQUIRE(fabs((double)x[i] * inv) < lim, SHOAL_ERR_LIMIT,
                      "value %zu (%g) is 2^62 grid steps of %g or more", i, (double)x[i], g);
    }
    return SHOAL_OK;
}

/* x[i] <- γ·(round(x[i]/γ) + k[i]) in exact integer arithmetic. */
static void add_grid(float *x, const int64_t *k, size_t m, double inv, double g) {
    for (size_t j = 0; j < m; j++) {
        int64_t v = llround((double)x[j] * inv) + k[j];
        x[j] = (float)((double)v * g);
    }
}

shoal_status shoal_dp_add_noise(shoal_dp_rng *r, shoal_dp_noise_mode mode, double stddev, float *x,
                                size_t n) {
    SHOAL_CHECK(check_stddev(stddev));
    SHOAL_REQUIRE(r != NULL && (x != NULL || n == 0), SHOAL_ERR_INVALID_ARG, "rng or x is NULL");
    SHOAL_REQUIRE(mode == SHOAL_DP_NOISE_EXACT || mode == SHOAL_DP_NOISE_FAST,
                  SHOAL_ERR_INVALID_ARG, "unknown noise mode %d", (int)mode);
    double g = stddev / GRID_SIGMA, inv = GRID_SIGMA / stddev;
    SHOAL_CHECK(check_data(x, n, inv, g));
    int64_t k[CHUNK];
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t m = n - i < CHUNK ? n - i : CHUNK;
        SHOAL_CHECK(shoal_dp_gaussian_int(r, mode, GRID_SIGMA, k, m));
        add_grid(x + i, k, m, inv, g);
    }
    return SHOAL_OK;
}

shoal_status shoal_dp_add_noise_drawn(double stddev, const int64_t *k, float *x, size_t n) {
    SHOAL_CHECK(check_stddev(stddev));
    SHOAL_REQUIRE((x != NULL && k != NULL) || n == 0, SHOAL_ERR_INVALID_ARG, "k or x is NULL");
    double g = stddev / GRID_SIGMA, inv = GRID_SIGMA / stddev;
    SHOAL_CHECK(check_data(x, n, inv, g));
    add_grid(x, k, n, inv, g);
    return SHOAL_OK;
}

double shoal_dp_effective_noise_multiplier(double sigma, uint64_t d) {
    return sigma / (1.0 + sigma * sqrt((double)d) * (1.0 / GRID_SIGMA));
}

double shoal_dp_noise_epsilon_slack(shoal_dp_noise_mode mode, uint64_t d, double sigma) {
    if (mode == SHOAL_DP_NOISE_FAST) return 2.0 * (double)d * 0x1p-26;
    if (!(sigma > 0.0)) return INFINITY;
    double s2 = (double)GRID_SIGMA * (double)GRID_SIGMA;
    double dz = 1.0 / sigma, z = sqrt((double)d) + 10.0;
    return 2.0 * (2.0 * z * dz + dz * dz) / (24.0 * s2);
}
