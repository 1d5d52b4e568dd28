/* bench_attention.c: our flash attention (bf16 tensor cores) forward and backward, timed on the
 * GPU, with FLOPs as FlashAttention counts them (forward 4*B*H*T^2*D, halved when causal;
 * backward 2.5x forward), plus the device's measured bf16 GEMM ceiling (cuBLASLt) for scale.
 *
 * Why so (device METHOD.md): cudaEvent timing around each call, warm-up first, median of N,
 * several input sets rotated so repeated runs do not just measure L2; random inputs (never
 * zeros). The PyTorch SDPA baseline runs in the same command (run.sh). Exits 77 without a GPU.
 * Label bench (not run in CI). Output: one line per shape, "ours fwd|bwd B H T D ms tflops".
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_plan.h"
#include "kernels/cuda/ops_cuda.h"

#define SETS 3

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define SK(call)                                                                                   \
    do {                                                                                           \
        shoal_status s_ = (call);                                                                  \
        if (s_ != SHOAL_OK) {                                                                      \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, shoal_status_str(s_));   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static shoal_bf16 *rand_bf16(size_t n, unsigned seed) {
    shoal_bf16 *h = malloc(n * sizeof(shoal_bf16));
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        h[i] = shoal_plan_f32_to_bf16(((float)(x >> 8) / 16777216.0f - 0.5f) * 2.0f);
    }
    shoal_bf16 *d = NULL;
    CK(cudaMalloc((void **)&d, n * sizeof(shoal_bf16)));
    CK(cudaMemcpy(d, h, n * sizeof(shoal_bf16), cudaMemcpyHostToDevice));
    free(h);
    return d;
}

typedef enum { RUN_FWD, RUN_BWD, RUN_GEMM } which_run;

typedef struct {
    shoal_ctx *ctx;
    int B, T, C, NH;
    shoal_bf16 *qkv[SETS], *out[SETS], *dout[SETS], *dqkv[SETS];
    float *lse[SETS];
} att_bufs;

static void run_once(att_bufs *a, which_run w, int set) {
    if (w == RUN_FWD)
        SK(shoal_attention_forward_bf16_cuda(a->ctx, a->out[set], a->lse[set], a->qkv[set], a->B,
                                             a->T, a->C, a->NH));
    else
        SK(shoal_attention_backward_bf16_cuda(a->ctx, a->dqkv[set], a->dout[set], a->qkv[set],
                                              a->out[set], a->lse[set], a->B, a->T, a->C, a->NH));
}

/* Median milliseconds of `reps` timed calls after `warm` untimed ones. */
static float time_ms(att_bufs *a, which_run w, int warm, int reps) {
    cudaStream_t s = (cudaStream_t)a->ctx->stream;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int i = 0; i < warm; i++)
        run_once(a, w, i % SETS);
    float *ms = malloc(reps * sizeof(float));
    for (int i = 0; i < reps; i++) {
        CK(cudaEventRecord(e0, s));
        run_once(a, w, i % SETS);
        CK(cudaEventRecord(e1, s));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&ms[i], e0, e1));
    }
    CK(cudaGetLastError());
    qsort(ms, reps, sizeof(float), cmp_float);
    float med = ms[reps / 2];
    free(ms);
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    return med;
}

static void bench_shape(shoal_ctx *ctx, int B, int NH, int T, int D, int reps) {
    att_bufs a = {.ctx = ctx, .B = B, .T = T, .C = NH * D, .NH = NH};
    size_t nq = (size_t)B * T * 3 * a.C, no = (size_t)B * T * a.C, nl = (size_t)B * NH * T;
    for (int s = 0; s < SETS; s++) {
        a.qkv[s] = rand_bf16(nq, 1 + s);
        a.dout[s] = rand_bf16(no, 100 + s);
        a.dqkv[s] = rand_bf16(nq, 200 + s);
        CK(cudaMalloc((void **)&a.out[s], no * sizeof(shoal_bf16)));
        CK(cudaMalloc((void **)&a.lse[s], nl * sizeof(float)));
    }
    float fwd = time_ms(&a, RUN_FWD, 5, reps);
    float bwd = time_ms(&a, RUN_BWD, 5, reps);
    double ff = shoal_plan_fa_flops_fwd(B, NH, T, D, 1),
           fb = shoal_plan_fa_flops_bwd(B, NH, T, D, 1);
    printf("ours fwd %d %d %d %d %.4f %.2f\n", B, NH, T, D, fwd, ff / (fwd * 1e-3) / 1e12);
    printf("ours bwd %d %d %d %d %.4f %.2f\n", B, NH, T, D, bwd, fb / (bwd * 1e-3) / 1e12);
    fflush(stdout);
    for (int s = 0; s < SETS; s++) {
        cudaFree(a.qkv[s]);
        cudaFree(a.dout[s]);
        cudaFree(a.dqkv[s]);
        cudaFree(a.out[s]);
        cudaFree(a.lse[s]);
    }
}

/* bf16 GEMM ceiling through cuBLASLt: M = N = K = n. */
static void bench_gemm(shoal_ctx *ctx, int n, int reps) {
    size_t nn = (size_t)n * n;
    shoal_bf16 *a = rand_bf16(nn, 7), *b = rand_bf16(nn, 8), *c = NULL;
    CK(cudaMalloc((void **)&c, nn * sizeof(shoal_bf16)));
    cudaStream_t s = (cudaStream_t)ctx->stream;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float *ms = malloc(reps * sizeof(float));
    for (int i = 0; i < reps + 3; i++) {
        CK(cudaEventRecord(e0, s));
        SK(shoal_matmul_forward_bf16_cuda(ctx, c, NULL, a, b, NULL, n, n, n, SHOAL_W_IN_OUT, 0));
        CK(cudaEventRecord(e1, s));
        CK(cudaEventSynchronize(e1));
        if (i >= 3) CK(cudaEventElapsedTime(&ms[i - 3], e0, e1));
    }
    qsort(ms, reps, sizeof(float), cmp_float);
    printf("gemm bf16 %d %.4f %.2f\n", n, ms[reps / 2],
           2.0 * n * n * (double)n / (ms[reps / 2] * 1e-3) / 1e12);
    free(ms);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
}

int main(int argc, char **argv) {
    if (shoal_cuda_device_count() == 0) {
        printf("skipped: no CUDA device\n");
        return 77;
    }
    int reps = argc > 1 ? atoi(argv[1]) : 30;
    if (reps < 1) reps = 30;
    shoal_ctx ctx;
    SK(shoal_ctx_init_cuda(&ctx, 0));
    struct cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    printf("device %s sms %d\n", p.name, p.multiProcessorCount);
    bench_gemm(&ctx, 8192, reps);
    /* GPT-2 124M geometry (hd 64, 12 heads, T 1024) at B 8 and 16; then hd 128. */
    bench_shape(&ctx, 8, 12, 1024, 64, reps);
    bench_shape(&ctx, 16, 12, 1024, 64, reps);
    bench_shape(&ctx, 8, 6, 1024, 128, reps);
    bench_shape(&ctx, 16, 6, 1024, 128, reps);
    shoal_ctx_free_cuda(&ctx);
    return 0;
}
