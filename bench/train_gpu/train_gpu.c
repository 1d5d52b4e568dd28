/* train_gpu.c: GPU training throughput and MFU of the GPT-2 124M geometry.
 *
 * What: a random-init GPT-2 (12 layers, 12 heads, 768 channels, vocab 50257, 1024 positions)
 * on CUDA device 0 in bf16 mixed precision (or fp32 with --precision fp32) runs the whole step
 * a trainer runs: grad_accum x (forward + backward) at B x T, global-norm clipping at 1.0 and
 * AdamW on the fp32 masters (moments in device memory, the fused mixed update). Warm-up steps,
 * then timed steps (stream synchronised around each); reported: device name, ms/step (median
 * and mean), tok/s, achieved TFLOP/s and MFU.
 * FLOPs (stated, as llm.c and nanoGPT count them): per token 6*N + 6*L*T*C, where N is the
 * parameter count without wpe (the position table does no matmul; wte counts once, as the tied
 * lm_head GEMM) and 6*L*T*C the causal attention's QK^T and PV, forward and backward (12*L*T*C
 * for full attention, halved by the mask). MFU = tok/s * FLOPs per token / peak bf16 FLOP/s;
 * the peak comes from --peak-tflops, else from the device name: 989.4 TFLOP/s dense bf16 for
 * H100 SXM and H200 (NVIDIA datasheets), 756 for H100 PCIe; other devices need the flag (MFU
 * is printed as n/a without it). Target (issue #5): >= 35% MFU on an H100.
 * Baseline: bench/train_gpu/torch_baseline.py, the same geometry and step in PyTorch (bf16
 * autocast, fused AdamW, no torch.compile); bench/train_gpu/run.sh runs both.
 * Usage: bench_train_gpu [--B 8] [--T 1024] [--accum 1] [--warmup 3] [--steps 10]
 *                        [--precision bf16|fp32] [--peak-tflops X]
 * Exit 77 without a CUDA device. Label bench (never in CI).
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "common/version.h"
#include "kernels/cuda/ops_cuda.h"
#include "worker/model/gpt.h"

#define DIE(call)                                                                                  \
    do {                                                                                           \
        shoal_status st_ = (call);                                                                 \
        if (st_ != SHOAL_OK) {                                                                     \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, shoal_status_str(st_));  \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double default_peak(const char *name) {
    if (strstr(name, "H100") && strstr(name, "PCIe")) return 756.0;
    if (strstr(name, "H100") || strstr(name, "H200")) return 989.4;
    return 0.0;
}

int main(int argc, char **argv) {
    int B = 8, T = 1024, accum = 1, warm = 3, steps = 10;
    double peak_tflops = 0.0;
    const char *prec = "bf16";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--B") == 0) B = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--T") == 0) T = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--accum") == 0) accum = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--warmup") == 0) warm = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--steps") == 0) steps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--precision") == 0) prec = argv[i + 1];
        else if (strcmp(argv[i], "--peak-tflops") == 0) peak_tflops = atof(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (B < 1 || T < 1 || T > 1024 || accum < 1 || warm < 0 || steps < 1) {
        fprintf(stderr, "bad geometry: B=%d T=%d (<= 1024) accum=%d warmup=%d steps=%d\n", B, T,
                accum, warm, steps);
        return 2;
    }
    if (shoal_gpt_cuda_device_count() == 0) {
        printf("skipped: no CUDA device\n");
        return 77;
    }
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        fprintf(stderr, "cudaGetDeviceProperties failed\n");
        return 1;
    }
    if (peak_tflops <= 0) peak_tflops = default_peak(prop.name);

    shoal_gpt_config cfg = {12, 12, 768, 50257, 1024, 1e-5f};
    shoal_gpt_device dev = {SHOAL_BACKEND_CUDA, 0, SHOAL_PRECISION_BF16, 0};
    DIE(shoal_precision_parse(prec, &dev.precision));
    shoal_gpt *m = NULL;
    DIE(shoal_gpt_create(&cfg, &m));
    DIE(shoal_gpt_init_random(m, 1));
    DIE(shoal_gpt_to_device(m, &dev));
    shoal_ctx *ctx = shoal_gpt_ctx(m);
    size_t np = shoal_gpt_num_params(m);
    float *ms = NULL, *vs = NULL;
    DIE(shoal_ctx_alloc(ctx, (void **)&ms, np * sizeof(float), "adam m"));
    DIE(shoal_ctx_alloc(ctx, (void **)&vs, np * sizeof(float), "adam v"));

    size_t n = (size_t)B * T;
    int32_t *tok = malloc(n * sizeof *tok), *tgt = malloc(n * sizeof *tgt);
    if (!tok || !tgt) return 2;
    uint64_t r = 12345;
    for (size_t i = 0; i < n; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((r >> 33) % 50257);
    }
    for (size_t i = 0; i < n; i++) tgt[i] = (i + 1) % (size_t)T ? tok[i + 1] : tok[i - T + 1];

    /* FLOPs per token: 6N (N without wpe) + 6 L T C (causal attention, fwd + bwd) */
    double N = (double)np - (double)cfg.n_positions * cfg.n_embd;
    double flop_tok = 6.0 * N + 6.0 * cfg.n_layer * (double)T * cfg.n_embd;
    double *t = malloc((size_t)steps * sizeof *t);
    float first = 0, last = 0;
    for (int s = 0; s < warm + steps; s++) {
        DIE(shoal_cuda_sync(ctx));
        double t0 = shoal_now_s();
        shoal_gpt_zero_grad(m);
        float loss = 0;
        for (int a = 0; a < accum; a++) {
            DIE(shoal_gpt_forward(m, tok, tgt, NULL, B, T, &loss));
            DIE(shoal_gpt_backward(m));
        }
        if (accum > 1) DIE(SHOAL_OP(ctx, scale, shoal_gpt_grads(m), np, 1.0f / (float)accum));
        DIE(shoal_grad_clip(ctx, shoal_gpt_grads(m), np, 1.0f, NULL));
        for (int i = 0; i < shoal_gpt_num_tensors(m); i++) {
            const shoal_gpt_tensor *tt = shoal_gpt_tensor_at(m, i);
            DIE(shoal_gpt_adamw_update(m, tt->offset, tt->numel, ms + tt->offset,
                                       vs + tt->offset, 3e-4f, 0.9f, 0.95f, 1e-8f,
                                       tt->decay ? 0.1f : 0.0f, s + 1, 1.0f));
        }
        DIE(shoal_cuda_sync(ctx));
        double el = shoal_now_s() - t0;
        if (s == 0) first = loss;
        last = loss;
        if (s >= warm) t[s - warm] = el;
        printf("step %d%s: %.2f ms, loss %.4f\n", s + 1, s < warm ? " (warm-up)" : "", el * 1e3,
               loss);
    }
    double mean = 0;
    for (int s = 0; s < steps; s++) mean += t[s] / steps;
    qsort(t, (size_t)steps, sizeof *t, cmp_double);
    double med = t[steps / 2];
    double tps = (double)n * accum / med, tflops = tps * flop_tok / 1e12;
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    printf("device=\"%s\" sms=%d commit=%s precision=%s\n", prop.name, prop.multiProcessorCount,
           shoal_build()->commit, shoal_precision_name(dev.precision));
    printf("GPT-2 124M (N=%.1fM without wpe) B=%d T=%d accum=%d: %.2f ms/step median (%.2f "
           "mean over %d), %.0f tok/s, %.1f TFLOP/s at %.3f GFLOP/token",
           N / 1e6, B, T, accum, med * 1e3, mean * 1e3, steps, tps, tflops, flop_tok / 1e9);
    if (peak_tflops > 0)
        printf(", MFU %.1f%% of %.1f TFLOP/s\n", 100.0 * tflops / peak_tflops, peak_tflops);
    else
        printf(", MFU n/a (unknown device: pass --peak-tflops)\n");
    printf("loss %.4f -> %.4f; device memory in use %.2f GB of %.2f\n", first, last,
           (double)(total_b - free_b) / 1e9, (double)total_b / 1e9);
    free(t);
    free(tok);
    free(tgt);
    shoal_ctx_mem_free(ctx, ms);
    shoal_ctx_mem_free(ctx, vs);
    shoal_gpt_free(m);
    return 0;
}
