/* matmul_cpu.c: matmul with bias, forward and backward, on the CPU.
 *
 * Every product is one row-major GEMM: through OpenBLAS's cblas_sgemm when the build has BLAS
 * (SHOAL_HAVE_BLAS; each OpenMP thread runs a single-threaded sgemm on its slab of output rows,
 * so one thread pool serves every op), else through shoal_gemm_loops, a plain loop kernel parallel over output rows whose
 * inner loop runs along contiguous memory so the compiler vectorises it. Bias and bias
 * gradients are simple loops. HF Conv1D weights are (IC, OC) and the tied lm_head is (OC, IC);
 * the layout flag picks the transposes, so no weight is ever copied.
 * Tested by tests/kernels/test_ops.c (finite differences; loops vs BLAS on odd shapes).
 */
#include <string.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/ops_cpu.h"

#ifdef SHOAL_HAVE_BLAS
#include <cblas.h>
#endif

void shoal_gemm_loops(int n_threads, int ta, int tb, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C,
                      int ldc) {
    (void)n_threads;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) {
            memset(c, 0, (size_t)N * sizeof(float));
        } else if (beta != 1.0f) {
            for (int j = 0; j < N; j++) c[j] *= beta;
        }
        if (!tb) {
            /* c[j] += a(i,k) * B[k, j]: axpy along a contiguous row of B */
            for (int k = 0; k < K; k++) {
                float a = alpha * (ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
                const float *b = B + (size_t)k * ldb;
#pragma omp simd
                for (int j = 0; j < N; j++) c[j] += a * b[j];
            }
        } else {
            /* c[j] += dot(a(i,:), B[j,:]) */
            for (int j = 0; j < N; j++) {
                const float *b = B + (size_t)j * ldb;
                float s = 0.0f;
                if (!ta) {
                    const float *a = A + (size_t)i * lda;
#pragma omp simd reduction(+ : s)
                    for (int k = 0; k < K; k++) s += a[k] * b[k];
                } else {
                    for (int k = 0; k < K; k++) s += A[(size_t)k * lda + i] * b[k];
                }
                c[j] += alpha * s;
            }
        }
    }
}

void shoal_gemm_1t(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc) {
#ifdef SHOAL_HAVE_BLAS
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
                N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    shoal_gemm_loops(1, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

static void gemm(shoal_ctx *ctx, int ta, int tb, int M, int N, int K, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
#ifdef SHOAL_HAVE_BLAS
    /* One thread pool: OpenMP threads each run single-threaded sgemms on slabs of C (OpenBLAS
     * is set to 1 thread in shoal_ctx_init_cpu). Letting OpenBLAS's own pthread pool run beside
     * OpenMP's made the two pools spin against each other: a quarter of a training step went to
     * libgomp's spin-wait on 2 cores. */
    int nt = CPU_NT(ctx);
    if (nt == 1 || (M < 64 && N < 64)) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* Split the larger side of C into slabs, two per thread, handed out dynamically: on a
     * machine shared with other processes a descheduled thread's slab goes to another thread
     * instead of leaving it spinning at the barrier. Every slab re-packs the whole operand of
     * the other side, so the split runs along the larger dimension (splitting the 256 token rows
     * of the lm_head product re-packed all of wte, 154 MB, per slab) and slabs stay >= 64. */
    int rows = M >= N, D = rows ? M : N;
    int want = (D + 2 * nt - 1) / (2 * nt);
    int chunk = want < 64 ? 64 : (want + 15) & ~15;
    int nch = (D + chunk - 1) / chunk;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int c = 0; c < nch; c++) {
        int d0 = c * chunk, d1 = d0 + chunk < D ? d0 + chunk : D;
        const float *Ap = A, *Bp = B;
        int m = M, n = N;
        float *Cp = C;
        if (rows) { /* rows d0..d1 of C and of op(A) */
            Ap = ta ? A + d0 : A + (size_t)d0 * lda;
            Cp = C + (size_t)d0 * ldc;
            m = d1 - d0;
        } else { /* columns d0..d1 of C and of op(B) */
            Bp = tb ? B + (size_t)d0 * ldb : B + d0;
            Cp = C + d0;
            n = d1 - d0;
        }
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    m, n, K, 1.0f, Ap, lda, Bp, ldb, beta, Cp, ldc);
    }
#else
    shoal_gemm_loops(CPU_NT(ctx), ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
#endif
}

void shoal_cpu_blas_set_threads(int n) {
#ifdef SHOAL_HAVE_BLAS
    openblas_set_num_threads(n);
#else
    (void)n;
#endif
}

shoal_status shoal_matmul_forward_cpu(shoal_ctx *ctx, float *out, const float *inp,
                                      const float *w, const float *bias, int N, int IC, int OC,
                                      shoal_wlayout layout) {
    int nt = CPU_NT(ctx);
    (void)nt;
    if (bias) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
    }
    float beta = bias ? 1.0f : 0.0f;
    if (layout == SHOAL_W_IN_OUT) {
        gemm(ctx, 0, 0, N, OC, IC, inp, IC, w, OC, beta, out, OC);
    } else {
        gemm(ctx, 0, 1, N, OC, IC, inp, IC, w, IC, beta, out, OC);
    }
    return SHOAL_OK;
}

shoal_status shoal_matmul_backward_cpu(shoal_ctx *ctx, float *dinp, float *dw, float *dbias,
                                       const float *dout, const float *inp, const float *w, int N,
                                       int IC, int OC, shoal_wlayout layout) {
    int nt = CPU_NT(ctx);
    (void)nt;
    if (dinp) {
        if (layout == SHOAL_W_IN_OUT) { /* dinp (N,IC) += dout (N,OC) @ w(IC,OC)^T */
            gemm(ctx, 0, 1, N, IC, OC, dout, OC, w, OC, 1.0f, dinp, IC);
        } else { /* dinp += dout (N,OC) @ w (OC,IC) */
            gemm(ctx, 0, 0, N, IC, OC, dout, OC, w, IC, 1.0f, dinp, IC);
        }
    }
    if (dw) {
        if (layout == SHOAL_W_IN_OUT) { /* dw (IC,OC) += inp^T @ dout */
            gemm(ctx, 1, 0, IC, OC, N, inp, IC, dout, OC, 1.0f, dw, OC);
        } else { /* dw (OC,IC) += dout^T @ inp */
            gemm(ctx, 1, 0, OC, IC, N, dout, OC, inp, IC, 1.0f, dw, IC);
        }
    }
    if (dbias) {
        enum { BLK = 64 };
        int nblk = (OC + BLK - 1) / BLK;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int blk = 0; blk < nblk; blk++) {
            int o0 = blk * BLK, o1 = o0 + BLK < OC ? o0 + BLK : OC;
            for (int n = 0; n < N; n++) {
                const float *d = dout + (size_t)n * OC;
                for (int o = o0; o < o1; o++) dbias[o] += d[o];
            }
        }
    }
    return SHOAL_OK;
}
