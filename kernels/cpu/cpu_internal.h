/* cpu_internal.h: private helpers shared by the kernels/cpu files (OpenMP shims, the loop GEMM).
 * Not part of the public interface. Tested through tests/kernels/test_ops.c.
 */
#ifndef SHOAL_KERNELS_CPU_INTERNAL_H
#define SHOAL_KERNELS_CPU_INTERNAL_H

#include <stddef.h>

#ifdef _OPENMP
#include <omp.h>
#define CPU_THREAD_NUM() omp_get_thread_num()
#define CPU_NUM_THREADS() omp_get_num_threads()
#else
#define CPU_THREAD_NUM() 0
#define CPU_NUM_THREADS() 1
#endif

/* Threads an op may use on this context (at least 1). */
#define CPU_NT(ctx) ((ctx) && (ctx)->n_threads > 0 ? (ctx)->n_threads : 1)

/* Row-major C (M,N) = alpha * op(A) (M,K) @ op(B) (K,N) + beta * C, op = transpose when the
 * flag is set (A stored (K,M) when ta; B stored (N,K) when tb). Plain loops parallel over rows
 * of C: the fallback when shoal is built without BLAS, and the cross-check for the BLAS path. */
void shoal_gemm_loops(int n_threads, int ta, int tb, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C,
                      int ldc);

/* The same product on the calling thread only: cblas_sgemm (OpenBLAS runs at 1 thread) or the
 * loop kernel. For ops that already parallelise outside (attention: one task per head). */
void shoal_gemm_1t(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc);

#endif
