/* bench_dpsgd.c: DP-SGD step time over non-private step time, same model, same batch.
 *
 * What: a random-init GPT (--model tiny: the fixture's geometry, 2 layers, 4 heads, 64
 * channels, vocab 301, with 64 positions so that T=64 fits; --model gpt2: 124M) trains on B
 * random examples of T tokens. Steps alternate: a non-private step (zero_grad, forward,
 * backward, AdamW) and a DP-SGD step (worker/train/dpsgd.h: ghost norms, weighted backward,
 * noise on the whole gradient, 1/(qN) scaling, accountant, then AdamW) over the same B
 * examples (q = 1 over N = B, so the Poisson draw is the whole batch). Reported per mode of
 * noise (exact, fast) and of drawing it (after the clipping pass, or ahead on threads of its
 * own while it runs; models over SHOAL_MAX_DP_PREDRAW_PARAMS always draw after, and say
 * so): median ms of each, the median of per-pair ratios, and inside the DP
 * step the time of forward + norms + clipped backward ("clip") and of the noise, with the
 * ratio of (DP step - noise) to the non-private step. Also printed: threads, GEMM path, load.
 * Usage: bench_dpsgd [--model tiny|gpt2] [--B 8] [--T 64] [--steps 5] [--threads 2]
 *                    [--dp-threads M] [--noise-threads N]
 * --threads is the non-private step's thread count; --dp-threads (default: --threads) the
 * model's threads inside the DP step and --noise-threads (default: --threads) the drawing
 * threads, so a split such as 1 + 1 on 2 cores (noise drawn ahead on its own core) can be
 * compared with the non-private step at its best thread count.
 * Not run in CI (label bench); figures in docs/BENCHMARKS.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "common/timeutil.h"
#include "worker/model/gpt.h"
#include "worker/train/dpsgd.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define DIE(st)                                                                                    \
    do {                                                                                           \
        if ((st) != SHOAL_OK) {                                                                    \
            fprintf(stderr, "bench_dpsgd: failed at line %d\n", __LINE__);                         \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv) {
    const char *model = "tiny";
    int B = 8, T = 64, steps = 5, threads = 2, dp_threads = 0, noise_threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model"))
            model = argv[i + 1];
        else if (!strcmp(argv[i], "--B"))
            B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--T"))
            T = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps"))
            steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dp-threads"))
            dp_threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--noise-threads"))
            noise_threads = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_dpsgd [--model tiny|gpt2] [--B 8] [--T 64] [--steps 5] "
                            "[--threads 2] [--dp-threads M] [--noise-threads N]\n");
            return 2;
        }
    }
    if (dp_threads <= 0) dp_threads = threads;
    if (noise_threads <= 0) noise_threads = threads;
    if (B < 1 || T < 1 || steps < 1 || steps > 1000 || threads < 1) return 2;
    shoal_gpt_config cfg = {2, 4, 64, 301, 64, 1e-5f};
    if (!strcmp(model, "gpt2")) cfg = (shoal_gpt_config){12, 12, 768, 50257, 1024, 1e-5f};
    shoal_gpt *m = NULL;
    DIE(shoal_gpt_create(&cfg, &m));
    DIE(shoal_gpt_set_threads(m, threads));
    DIE(shoal_gpt_init_random(m, 1));
    size_t P = shoal_gpt_num_params(m), BT = (size_t)B * T;
    int32_t *tok = malloc(BT * sizeof(int32_t)), *tgt = malloc(BT * sizeof(int32_t));
    float *am = calloc(P, sizeof(float)), *av = calloc(P, sizeof(float));
    if (!tok || !tgt || !am || !av) return 2;
    uint64_t s = 5;
    for (size_t i = 0; i < BT; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((s >> 33) % (uint64_t)cfg.vocab_size);
        tgt[i] = (int32_t)((s >> 17) % (uint64_t)cfg.vocab_size);
    }
    double load[3] = {0, 0, 0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
        fclose(f);
    }
    printf("# bench_dpsgd: model %s (%zu params), B=%d T=%d, %d threads (dp-sgd: %d model + %d "
           "noise), %s, load %.1f\n",
           model, P, B, T, threads, dp_threads, noise_threads, shoal_kernels_cpu_gemm_name(),
           load[0]);
    int adam_step = 0;
    {
        shoal_dpsgd_config c;
        shoal_dpsgd_config_default(&c);
        c.n_examples = (uint64_t)B;
        c.noise_threads = noise_threads;
        shoal_dpsgd *dp = NULL;
        if (dp_threads != threads) DIE(shoal_gpt_set_threads(m, dp_threads));
        DIE(shoal_dpsgd_init(&c, m, NULL, &dp));
        printf("# the default (noise_draw AUTO) draws %s here\n",
               shoal_dpsgd_draws_ahead(dp) ? "ahead" : "after");
        shoal_dpsgd_free(dp);
        if (dp_threads != threads) DIE(shoal_gpt_set_threads(m, threads));
    }
    for (int mode = 0; mode < 4; mode++) {
        shoal_dpsgd_config c;
        shoal_dpsgd_config_default(&c);
        c.n_examples = (uint64_t)B;
        c.sample_rate = 1.0;
        c.noise_mode = mode < 2 ? SHOAL_DP_NOISE_EXACT : SHOAL_DP_NOISE_FAST;
        c.noise_draw = mode % 2 == 0 ? SHOAL_DP_DRAW_AFTER : SHOAL_DP_DRAW_AHEAD;
        c.micro_batch = B;
        c.noise_threads = noise_threads;
        shoal_dpsgd *dp = NULL;
        DIE(shoal_dpsgd_init(&c, m, NULL, &dp));
        double *tn = calloc((size_t)steps, sizeof(double)),
               *td = calloc((size_t)steps, sizeof(double));
        double *ratio = calloc((size_t)steps, sizeof(double));
        double *rnn = calloc((size_t)steps, sizeof(double)),
               *tno = calloc((size_t)steps, sizeof(double));
        shoal_dpsgd_step_info info;
        uint64_t idx[4096];
        for (int k = -1; k < steps; k++) { /* k = -1: warm-up */
            if (dp_threads != threads) DIE(shoal_gpt_set_threads(m, threads));
            double t0 = shoal_now_s();
            shoal_gpt_zero_grad(m);
            DIE(shoal_gpt_forward(m, tok, tgt, NULL, B, T, NULL));
            DIE(shoal_gpt_backward(m));
            DIE(SHOAL_OP(shoal_gpt_ctx(m), adamw_update, shoal_gpt_params(m), shoal_gpt_grads(m), am, av, P,
                         1e-4f, 0.9f, 0.95f, 1e-8f, 0.0f, ++adam_step, 1.0f));
            if (dp_threads != threads) DIE(shoal_gpt_set_threads(m, dp_threads));
            double t1 = shoal_now_s();
            size_t n = 0;
            DIE(shoal_dpsgd_sample(dp, idx, 4096, &n));
            DIE(shoal_dpsgd_step(dp, m, tok, tgt, NULL, n, T, &info));
            DIE(SHOAL_OP(shoal_gpt_ctx(m), adamw_update, shoal_gpt_params(m), shoal_gpt_grads(m), am, av, P,
                         1e-4f, 0.9f, 0.95f, 1e-8f, 0.0f, ++adam_step, 1.0f));
            double t2 = shoal_now_s();
            if (k >= 0) {
                tn[k] = t1 - t0;
                td[k] = t2 - t1;
                ratio[k] = td[k] / tn[k];
                tno[k] = info.noise_s;
                rnn[k] = (td[k] - info.noise_s) / tn[k];
            }
        }
        double mr = median(ratio, steps), mn = median(tn, steps), md = median(td, steps);
        double mnoise = median(tno, steps), mrn = median(rnn, steps);
        printf(
            "noise %-5s %-7s non-private %9.2f ms  dp-sgd %9.2f ms  ratio %.3f  (noise %8.2f ms; "
            "dp-sgd without the noise / non-private %.3f)  medians of %d pairs\n",
            shoal_dp_noise_mode_name(c.noise_mode),
            shoal_dpsgd_draws_ahead(dp) ? "ahead" : "after", 1e3 * mn,
            1e3 * md, mr, 1e3 * mnoise, mrn, steps);
        free(rnn);
        free(tno);
        free(tn);
        free(td);
        free(ratio);
        shoal_dpsgd_free(dp);
    }
    free(tok);
    free(tgt);
    free(am);
    free(av);
    shoal_gpt_free(m);
    return 0;
}
