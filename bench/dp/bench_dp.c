/* bench_dp.c: throughput of privacy/ — noise samples/s in both modes, the noise step on a
 * float vector, and accountant evaluations/s — each beside a baseline from the same run.
 *
 * Baselines: for noise, the textbook sampler the secure ones replace (Box-Muller in double
 * over a xorshift128+ generator: fast, predictable, open to Mironov's 2012 attack) and the raw
 * ChaCha20 keystream rate that bounds both secure modes; for the accountant, the closed-form
 * plain-Gaussian RDP (q = 1) over the same order grid, so the ratio is the cost of the
 * subsampled series. Single thread. Targets (issue 7): >= 20 M samples/s fast, >= 2 M/s
 * exact. Label bench: not run in CI. `bench_dp [seconds-per-case]`.
 * The DP-SGD step-time ratio needs the training engine and is not measured here.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "common/version.h"
#include "privacy/accountant.h"
#include "privacy/noise.h"
#include "privacy/rdp.h"
#include "privacy/rng.h"

static double budget = 1.0;

static uint64_t xs[2] = {0x9e3779b97f4a7c15ull, 0xbf58476d1ce4e5b9ull};
static uint64_t xorshift128p(void) {
    uint64_t s1 = xs[0], s0 = xs[1];
    xs[0] = s0;
    s1 ^= s1 << 23;
    xs[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return xs[1] + s0;
}

static void cpu_name(char *out, size_t cap) {
    snprintf(out, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                snprintf(out, cap, "%s", c + 2);
                out[strcspn(out, "\n")] = 0;
            }
            break;
        }
    }
    fclose(f);
}

#define CHUNK 4096

static double rate_int(shoal_dp_rng *r, shoal_dp_noise_mode mode) {
    static int64_t buf[CHUNK];
    uint64_t n = 0;
    double t0 = shoal_now_s(), t;
    do {
        shoal_dp_gaussian_int(r, mode, 1u << SHOAL_DP_GRID_BITS, buf, CHUNK);
        n += CHUNK;
    } while ((t = shoal_now_s() - t0) < budget);
    return (double)n / t;
}

static double rate_textbook(void) {
    static double buf[CHUNK];
    uint64_t n = 0;
    double t0 = shoal_now_s(), t, sink = 0;
    do {
        for (int i = 0; i < CHUNK; i += 2) {
            double u1 = ((double)(xorshift128p() >> 11) + 0.5) * 0x1p-53;
            double u2 = (double)(xorshift128p() >> 11) * 0x1p-53;
            double rad = sqrt(-2.0 * log(u1)), th = 2.0 * M_PI * u2;
            buf[i] = rad * cos(th);
            buf[i + 1] = rad * sin(th);
        }
        sink += buf[n % CHUNK];
        n += CHUNK;
    } while ((t = shoal_now_s() - t0) < budget);
    if (sink == 12345.678) printf(" ");
    return (double)n / t;
}

static double rate_chacha_words(shoal_dp_rng *r) {
    uint64_t n = 0, sink = 0;
    double t0 = shoal_now_s(), t;
    do {
        for (int i = 0; i < CHUNK; i++)
            sink ^= shoal_dp_rng_u64(r);
        n += CHUNK;
    } while ((t = shoal_now_s() - t0) < budget);
    if (sink == 1) printf(" ");
    return (double)n / t;
}

static double rate_add_noise(shoal_dp_rng *r, shoal_dp_noise_mode mode, float *x, size_t d) {
    uint64_t n = 0;
    double t0 = shoal_now_s(), t;
    do {
        shoal_dp_add_noise(r, mode, 1.0, x, d);
        n += d;
    } while ((t = shoal_now_s() - t0) < budget);
    return (double)n / t;
}

static double rate_eval(double q, double sigma) {
    uint64_t n = 0;
    double t0 = shoal_now_s(), t, e, sink = 0;
    do {
        shoal_dp_epsilon(q, sigma, 10000, 1e-5, &e, NULL);
        sink += e;
        n++;
    } while ((t = shoal_now_s() - t0) < budget);
    if (sink < 0) printf(" ");
    return (double)n / t;
}

static double rate_query(const shoal_dp_accountant *a) {
    uint64_t n = 0;
    double t0 = shoal_now_s(), t, e, sink = 0;
    do {
        shoal_dp_accountant_epsilon(a, 1e-5, &e, NULL);
        sink += e;
        n++;
    } while ((t = shoal_now_s() - t0) < budget);
    if (sink < 0) printf(" ");
    return (double)n / t;
}

int main(int argc, char **argv) {
    if (argc > 1) budget = atof(argv[1]);
    if (!(budget > 0)) budget = 1.0;
    char cpu[128];
    cpu_name(cpu, sizeof cpu);
    const shoal_build_info *b = shoal_build();
    printf("bench_dp: shoal %s commit %s (%s), %s, 1 thread, %.1f s per case\n", b->version,
           b->commit, b->build_type, cpu, budget);
    shoal_dp_rng *r;
    if (shoal_dp_rng_init(&r) != SHOAL_OK) return 1;

    double fast = rate_int(r, SHOAL_DP_NOISE_FAST), exact = rate_int(r, SHOAL_DP_NOISE_EXACT);
    double text = rate_textbook(), words = rate_chacha_words(r);
    printf("\nnoise samples/s (integer, std 2^24)\n");
    printf("  fast  (rounded ziggurat, ChaCha20)   %8.2f M/s   target >= 20 M/s: %s\n", fast / 1e6,
           fast >= 20e6 ? "met" : "NOT met");
    printf("  exact (discrete Gaussian, CKS 2020)  %8.2f M/s   target >=  2 M/s: %s\n", exact / 1e6,
           exact >= 2e6 ? "met" : "NOT met");
    printf("  baseline: textbook Box-Muller, xorshift128+ (insecure) %8.2f M/s "
           "(fast = %.2fx of it)\n",
           text / 1e6, fast / text);
    printf("  baseline: ChaCha20 keystream, 64-bit words %8.2f M/s\n", words / 1e6);

    size_t d = 1u << 20;
    float *x = calloc(d, sizeof *x);
    if (!x) return 1;
    double af = rate_add_noise(r, SHOAL_DP_NOISE_FAST, x, d);
    double ae = rate_add_noise(r, SHOAL_DP_NOISE_EXACT, x, d);
    printf("\nnoise step shoal_dp_add_noise on a 2^20 float vector\n");
    printf("  fast %8.2f M elem/s (GPT-2 124M: %.2f s per step)\n", af / 1e6, 124e6 / af);
    printf("  exact %7.2f M elem/s (GPT-2 124M: %.2f s per step)\n", ae / 1e6, 124e6 / ae);
    free(x);

    double ev = rate_eval(0.01, 1.1), ev1 = rate_eval(1.0, 1.1);
    printf("\naccountant evaluations/s (156 default orders, 10000 steps, delta 1e-5)\n");
    printf("  epsilon(q=0.01, sigma=1.1) from scratch  %10.1f /s\n", ev);
    printf("  baseline: closed-form Gaussian (q=1)     %10.1f /s (series costs %.0fx)\n", ev1,
           ev1 / ev);
    shoal_dp_accountant *a;
    if (shoal_dp_accountant_init(&a, NULL, 0, SHOAL_DP_SERIES_MAGNITUDE) != SHOAL_OK) return 1;
    double t0 = shoal_now_s();
    uint64_t steps = 0;
    do {
        for (int i = 0; i < 1000; i++)
            shoal_dp_accountant_step(a, 0.01, 1.1, 1);
        steps += 1000;
    } while (shoal_now_s() - t0 < budget);
    double sr = (double)steps / (shoal_now_s() - t0);
    printf("  accountant step (same phase)             %10.3g /s\n", sr);
    printf("  accountant epsilon query (cached phase)  %10.1f /s\n", rate_query(a));
    shoal_dp_accountant_free(a);
    shoal_dp_rng_free(r);
    return 0;
}
