/* train_cpu.c: CPU training throughput of the GPT-2 124M geometry, against this machine's
 * sgemm rate measured in the same run.
 *
 * What: a random-init GPT-2 (12 layers, 12 heads, 768 channels, vocab 50257, 1024 positions)
 * trains at B=4 and the given T: forward, backward, global-norm clipping and AdamW (the whole
 * step a trainer runs). Reported: ms/step, tok/s, achieved GFLOP/s with the usual model count
 * (6*N per token, N = parameters without wpe, plus 12*L*C*T per token of attention, as PaLM
 * and nanoGPT count it), the sgemm GFLOP/s of the same GEMM path on the model's three matmul
 * shapes at this token count (the best of them, so the ratio errs low; measured right before
 * and after every step), their ratio (and the median of per-step ratios), the share of the
 * threads' CPU time the process actually got (lower means other load), and peak
 * RSS (getrusage). Baseline and figure come from one process, so load from other processes
 * on the machine hits both; the load average is printed too.
 * Usage: train_cpu [--T 256] [--B 4] [--threads 2] [--steps 3]
 * Not run in CI (label bench): see docs/BENCHMARKS.md and bench/train_cpu/run.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/timeutil.h"
#include "common/version.h"
#include "kernels/ops.h"
#include "worker/model/gpt.h"

static double sgemm_rate(shoal_ctx *ctx, int N, int IC, int OC, double secs) {
    float *a = malloc((size_t)N * IC * sizeof(float)), *w = malloc((size_t)IC * OC * sizeof(float));
    float *o = malloc((size_t)N * OC * sizeof(float));
    if (!a || !w || !o) exit(2);
    for (size_t i = 0; i < (size_t)N * IC; i++) a[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)IC * OC; i++) w[i] = (float)(i % 7) * 0.01f;
    SHOAL_OP(ctx, matmul_forward, o, a, w, NULL, N, IC, OC, SHOAL_W_IN_OUT); /* warm up */
    double flop = 2.0 * N * IC * OC, t0 = shoal_now_s(), el;
    int reps = 0;
    do {
        SHOAL_OP(ctx, matmul_forward, o, a, w, NULL, N, IC, OC, SHOAL_W_IN_OUT);
        reps++;
        el = shoal_now_s() - t0;
    } while (el < secs);
    free(a), free(w), free(o);
    return flop * reps / el / 1e9;
}

/* Best of the model's three matmul shapes for N tokens (so the ratio errs low). */
static double best_sgemm(shoal_ctx *ctx, int N) {
    double r1 = sgemm_rate(ctx, N, 768, 3072, 0.5), r2 = sgemm_rate(ctx, N, 3072, 768, 0.5);
    double r3 = sgemm_rate(ctx, N, 768, 2304, 0.5);
    double r = r1 > r2 ? r1 : r2;
    return r > r3 ? r : r3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int T = 256, B = 4, threads = 2, steps = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--T")) T = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--B")) B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: %s [--T 256] [--B 4] [--threads 2] [--steps 3]\n", argv[0]);
            return 2;
        }
    }
    if (T < 1 || T > 1024 || B < 1 || B > 64 || threads < 1 || steps < 1) {
        fprintf(stderr, "train_cpu: T in 1..1024, B in 1..64, threads >= 1, steps >= 1\n");
        return 2;
    }
    shoal_gpt_config cfg = {12, 12, 768, 50257, 1024, 1e-5f};
    shoal_gpt *m = NULL;
    if (shoal_gpt_create(&cfg, &m) != SHOAL_OK || shoal_gpt_set_threads(m, threads) != SHOAL_OK ||
        shoal_gpt_init_random(m, 1) != SHOAL_OK)
        return 1;
    shoal_ctx *ctx = shoal_gpt_ctx(m);
    size_t np = shoal_gpt_num_params(m);
    float *mom = calloc(np, sizeof(float)), *vel = calloc(np, sizeof(float));
    int32_t *tok = malloc((size_t)B * T * sizeof(int32_t)), *tgt = malloc((size_t)B * T * sizeof(int32_t));
    if (!mom || !vel || !tok || !tgt) return 1;
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < B * T; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        tok[i] = (int32_t)(s % 50257);
    }
    for (int i = 0; i < B * T; i++) tgt[i] = tok[(i + 1) % (B * T)];

    int N = B * T;
    double sg_sum = 0, ratios[64], cpu_share = 0;
    if (steps > 64) steps = 64;

    size_t n_nonemb = np - (size_t)1024 * 768;
    double flop_step = (6.0 * (double)n_nonemb + 12.0 * 12 * 768 * T) * B * T;
    double total = 0, loss_first = 0, loss_last = 0, sg_prev = 0;
    for (int step = 0; step <= steps; step++) { /* step 0 warms up (allocations, caches) */
        /* The baseline is measured right before and right after every timed step, and each
         * step's ratio uses the mean of the two: on cores shared with other work the load
         * drifts, and only adjacent measurements see the same load. */
        double sg_pre = sg_prev;
        if (step == 1) sg_pre = best_sgemm(ctx, N);
        struct rusage u0, u1;
        getrusage(RUSAGE_SELF, &u0);
        double t0 = shoal_now_s();
        float loss;
        if (shoal_gpt_forward(m, tok, tgt, NULL, B, T, &loss) != SHOAL_OK) return 1;
        shoal_gpt_zero_grad(m);
        if (shoal_gpt_backward(m) != SHOAL_OK) return 1;
        float norm;
        if (shoal_grad_clip(ctx, shoal_gpt_grads(m), np, 1.0f, &norm) != SHOAL_OK) return 1;
        for (int i = 0; i < shoal_gpt_num_tensors(m); i++) {
            const shoal_gpt_tensor *t = shoal_gpt_tensor_at(m, i);
            SHOAL_OP(ctx, adamw_update, shoal_gpt_params(m) + t->offset, shoal_gpt_grads(m) + t->offset,
                     mom + t->offset, vel + t->offset, t->numel, 3e-4f, 0.9f, 0.95f, 1e-8f,
                     t->decay ? 0.1f : 0.0f, step + 1, 1.0f);
        }
        double el = shoal_now_s() - t0;
        getrusage(RUSAGE_SELF, &u1);
        if (step == 0) {
            loss_first = loss;
        } else {
            double cpu = (double)(u1.ru_utime.tv_sec - u0.ru_utime.tv_sec + u1.ru_stime.tv_sec -
                                  u0.ru_stime.tv_sec) +
                         1e-6 * (double)(u1.ru_utime.tv_usec - u0.ru_utime.tv_usec +
                                         u1.ru_stime.tv_usec - u0.ru_stime.tv_usec);
            cpu_share += cpu / (el * threads);
            total += el;
            sg_prev = best_sgemm(ctx, N);
            double sg = 0.5 * (sg_pre + sg_prev);
            sg_sum += sg;
            ratios[step - 1] = flop_step / el / 1e9 / sg;
        }
        loss_last = loss;
        fprintf(stderr, "step %d: %.0f ms loss %.4f\n", step, el * 1e3, loss);
    }
    double sec = total / steps, sg = sg_sum / steps;
    double gflops = flop_step / sec / 1e9;
    qsort(ratios, (size_t)steps, sizeof ratios[0], cmp_double);
    double ratio_med = steps % 2 ? ratios[steps / 2] : 0.5 * (ratios[steps / 2 - 1] + ratios[steps / 2]);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double load[3] = {0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
        fclose(f);
    }
    char cpu[128] = "unknown";
    f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                char *c = strchr(line, ':');
                if (c) snprintf(cpu, sizeof cpu, "%s", c + 2);
                cpu[strcspn(cpu, "\n")] = 0;
                break;
            }
        fclose(f);
    }
    const char *wait = getenv("OMP_WAIT_POLICY");
    printf("train_cpu: GPT-2 124M (%zu params) B=%d T=%d threads=%d gemm=%s OMP_WAIT_POLICY=%s "
           "commit=%s cpu=\"%s\" load=%.2f\n",
           np, B, T, threads, shoal_kernels_cpu_gemm_name(), wait ? wait : "(default)",
           shoal_build()->commit, cpu, load[0]);
    printf("  step %.1f ms  %.0f tok/s  %.1f GFLOP/s achieved  sgemm %.1f GFLOP/s  ratio %.2f "
           "(median of per-step ratios %.2f, range %.2f-%.2f)  CPU share %.0f%%  peak RSS %.2f GB  "
           "loss %.3f -> %.3f\n",
           sec * 1e3, B * T / sec, gflops, sg, gflops / sg, ratio_med, ratios[0],
           ratios[steps - 1], 100.0 * cpu_share / steps, ru.ru_maxrss / 1048576.0, loss_first,
           loss_last);
    free(tok), free(tgt), free(mom), free(vel);
    shoal_gpt_free(m);
    return 0;
}
