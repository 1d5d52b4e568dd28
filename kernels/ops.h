/* ops.h: every compute op the GPT needs, forward and backward, behind one backend table.
 *
 * Why this shape (ggml backends, llm.c kernels): an op is a plain function that takes a
 * context and raw pointers with explicit shapes. The context says which backend runs it (CPU,
 * or later a CUDA stream + cuBLAS handle) and carries that backend's handles; a small table of
 * function pointers (shoal_kernels) holds one implementation per op. The model calls ops only
 * through the table (SHOAL_OP), so kernels/cuda can slot in with the same signatures. Which
 * backend runs is decided once, when the context is created; nothing falls back silently.
 *
 * Conventions every backend follows:
 *  - fp32 tensors, row-major, shapes in the comments; on a CUDA context every pointer is a
 *    device pointer, except explicit host outputs (`double *out` of norm_sq).
 *  - Backward ops ACCUMULATE (+=) into every gradient they write (parameter gradients and
 *    activation gradients alike), so gradient accumulation and shared residual gradients need
 *    no copies. A NULL gradient pointer means "not needed" and is skipped. The one exception is
 *    crossentropy_backward, which OVERWRITES dlogits and may run in place (dlogits == logits).
 *  - Arguments are trusted: the model validates shapes and token ids before calling. Ops
 *    return SHOAL_OK, or NOMEM/CUDA when a resource fails; never abort.
 *  - Weight layouts: SHOAL_W_IN_OUT is HF Conv1D, weight (IC, OC), out = inp @ w;
 *    SHOAL_W_OUT_IN is nn.Linear / the tied lm_head, weight (OC, IC), out = inp @ w^T.
 *
 * The CPU reference lives in kernels/cpu (plain loops with OpenMP over batch and heads; GEMM
 * through OpenBLAS when SHOAL_HAVE_BLAS, a blocked loop fallback otherwise). CPU twins are
 * named shoal_<op>_forward_cpu / shoal_<op>_backward_cpu and declared in kernels/cpu/ops_cpu.h.
 * Backend note (CUDA, kernels/cuda): attention never materialises T x T; the `att` buffer of
 * attention_forward/backward holds the row log-sum-exp (B, NH, T) in its first B*NH*T floats
 * instead of the probabilities (layout: kernels/cuda/cuda_plan.h shoal_plan_lse_index). Callers
 * may keep allocating B*NH*T*T; only the CUDA backend's own forward output is valid input to
 * its backward. A CUDA context is released with shoal_ctx_free_cuda (kernels/cuda/ops_cuda.h).
 * Memory: buffers come from the table's mem_alloc and move with explicit copies (copy_h2d,
 * copy_d2h, copy_d2d), so code above the kernels never dereferences backend memory unless the
 * table says host_visible; tests/model/test_gpt_guarded.c enforces that with a CPU table whose
 * buffers are PROT_NONE outside ops and copies.
 * Tested by tests/kernels/test_ops.c: every backward against central finite differences in
 * double on small shapes, forwards against naive double-precision references, and through the
 * whole model against PyTorch (tests/model/test_gpt_ref.c).
 */
#ifndef SHOAL_KERNELS_OPS_H
#define SHOAL_KERNELS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef enum { SHOAL_BACKEND_CPU = 0, SHOAL_BACKEND_CUDA = 1 } shoal_backend;

typedef enum {
    SHOAL_W_IN_OUT = 0, /* weight (IC, OC): HF Conv1D (c_attn, c_proj, c_fc) */
    SHOAL_W_OUT_IN = 1  /* weight (OC, IC): nn.Linear, tied lm_head = wte (V, C) */
} shoal_wlayout;

typedef struct shoal_kernels shoal_kernels;

/* Execution context. Created once per worker thread of compute (not shared between threads
 * that call ops concurrently). */
typedef struct shoal_ctx {
    shoal_backend backend;
    int n_threads;              /* CPU: OpenMP + BLAS threads for every op on this context */
    void *stream;               /* CUDA: cudaStream_t; NULL on CPU */
    void *blas;                 /* CUDA: cublasHandle_t / cublasLtHandle_t; NULL on CPU */
    void *workspace;            /* backend scratch (CUDA: cuBLASLt workspace); owned */
    size_t workspace_bytes;
    const shoal_kernels *k;     /* the op table of this backend; never NULL after init */
    /* backend teardown that shoal_ctx_free() calls (CUDA: stream, cuBLASLt, workspace); NULL
     * when the context owns nothing beyond `workspace` (CPU) */
    void (*release)(struct shoal_ctx *ctx);
} shoal_ctx;

/* ---- the op table ---- */
struct shoal_kernels {
    const char *name; /* "cpu", "cuda" */

    /* out[b,t,:] = wte[tokens[b,t],:] + wpe[pos0 + t,:]
     * out (B,T,C), tokens (B,T), wte (V,C), wpe (n_positions,C) */
    shoal_status (*encoder_forward)(shoal_ctx *ctx, float *out, const int32_t *tokens,
                                    const float *wte, const float *wpe, int B, int T, int C,
                                    int pos0);
    /* dwte[tokens[b,t],:] += dout[b,t,:]; dwpe[t,:] += dout[b,t,:] (positions from 0) */
    shoal_status (*encoder_backward)(shoal_ctx *ctx, float *dwte, float *dwpe,
                                     const float *dout, const int32_t *tokens, int B, int T,
                                     int C);

    /* out = (inp - mean) * rstd * w + b over the last dim. out, inp (N,C); w, b (C);
     * mean, rstd (N) saved for backward (either may be NULL at inference). */
    shoal_status (*layernorm_forward)(shoal_ctx *ctx, float *out, float *mean, float *rstd,
                                      const float *inp, const float *w, const float *b, int N,
                                      int C, float eps);
    shoal_status (*layernorm_backward)(shoal_ctx *ctx, float *dinp, float *dw, float *db,
                                       const float *dout, const float *inp, const float *w,
                                       const float *mean, const float *rstd, int N, int C);

    /* out (N,OC) = inp (N,IC) @ W + bias (OC; NULL = none); W as `layout` says. */
    shoal_status (*matmul_forward)(shoal_ctx *ctx, float *out, const float *inp, const float *w,
                                   const float *bias, int N, int IC, int OC,
                                   shoal_wlayout layout);
    /* dinp (N,IC) += dout @ W^T; dw += inp^T @ dout (in w's layout); dbias (OC) += sum_n dout */
    shoal_status (*matmul_backward)(shoal_ctx *ctx, float *dinp, float *dw, float *dbias,
                                    const float *dout, const float *inp, const float *w, int N,
                                    int IC, int OC, shoal_wlayout layout);

    /* Causal multi-head self-attention. qkv (B,T,3C) holds q | k | v, each C = NH heads of
     * C/NH; out (B,T,C) heads concatenated; att (B,NH,T,T) the softmax probabilities saved for
     * backward (row t holds keys 0..t; entries past t are written as 0). Scale 1/sqrt(C/NH). */
    shoal_status (*attention_forward)(shoal_ctx *ctx, float *out, float *att, const float *qkv,
                                      int B, int T, int C, int NH);
    /* dqkv (B,T,3C) += gradient through attention, given dout (B,T,C) and the saved att. */
    shoal_status (*attention_backward)(shoal_ctx *ctx, float *dqkv, const float *dout,
                                       const float *qkv, const float *att, int B, int T, int C,
                                       int NH);
    /* One decoding step with a KV cache: copies k, v of qkv (B,3C) into kcache/vcache
     * (B,Tmax,C) at row pos, then attends the query over rows 0..pos. out (B,C). */
    shoal_status (*attention_decode)(shoal_ctx *ctx, float *out, float *kcache, float *vcache,
                                     const float *qkv, int pos, int Tmax, int B, int C, int NH);

    /* GELU, tanh approximation (GPT-2 "gelu_new"). out, inp (n) */
    shoal_status (*gelu_forward)(shoal_ctx *ctx, float *out, const float *inp, size_t n);
    /* dinp += gelu'(inp) * dout */
    shoal_status (*gelu_backward)(shoal_ctx *ctx, float *dinp, const float *dout,
                                  const float *inp, size_t n);

    /* out = a + b (n); out may alias a or b */
    shoal_status (*residual_forward)(shoal_ctx *ctx, float *out, const float *a, const float *b,
                                     size_t n);
    /* da += dout; db += dout (either may be NULL) */
    shoal_status (*residual_backward)(shoal_ctx *ctx, float *da, float *db, const float *dout,
                                      size_t n);

    /* Per-row softmax cross-entropy. logits (N,V), targets (N): a target < 0 is ignored (loss
     * 0). losses (N) = logsumexp - logit[target]; lse (N) the row logsumexp, for backward. */
    shoal_status (*crossentropy_forward)(shoal_ctx *ctx, float *losses, float *lse,
                                         const float *logits, const int32_t *targets, int N,
                                         int V);
    /* dlogits (N,V) = (softmax(logits) - onehot(target)) * scale * w_n, where w_n = mask[n]
     * (1 when mask is NULL) and 0 for ignored targets. OVERWRITES dlogits; may run in place.
     * For the mean over masked tokens, scale = 1 / (number of counted tokens). */
    shoal_status (*crossentropy_backward)(shoal_ctx *ctx, float *dlogits, const float *logits,
                                          const float *lse, const int32_t *targets,
                                          const uint8_t *mask, float scale, int N, int V);

    /* AdamW (Loshchilov & Hutter; PyTorch torch.optim.AdamW semantics) on n elements:
     *   g = grads * grad_scale; p -= lr * weight_decay * p;
     *   m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
     *   p -= lr * (m / (1-b1^step)) / (sqrt(v / (1-b2^step)) + eps)
     * step is 1-based. m and v are state the caller owns (zeroed before step 1). */
    shoal_status (*adamw_update)(shoal_ctx *ctx, float *params, const float *grads, float *m,
                                 float *v, size_t n, float lr, float beta1, float beta2,
                                 float eps, float weight_decay, int step, float grad_scale);

    /* *out = sum x[i]^2, accumulated in double; out is a host pointer on every backend. */
    shoal_status (*norm_sq)(shoal_ctx *ctx, const float *x, size_t n, double *out);
    /* x *= s */
    shoal_status (*scale)(shoal_ctx *ctx, float *x, size_t n, float s);
    /* bytes of p set to zero */
    shoal_status (*zero)(shoal_ctx *ctx, void *p, size_t bytes);

    /* ---- memory of this backend (call through shoal_ctx_alloc & co. below) ----
     * Every buffer handed to an op above comes from mem_alloc on the same context. */
    /* *out = `bytes` (> 0) of ZEROED backend memory, aligned to at least 64 bytes. NOMEM. */
    shoal_status (*mem_alloc)(shoal_ctx *ctx, void **out, size_t bytes);
    /* Release a mem_alloc buffer after the work queued on it; NULL is a no-op. */
    void (*mem_free)(shoal_ctx *ctx, void *p);
    /* Copies. h2d and d2h are complete when they return (the host buffer may be reused or
     * read at once); d2d is ordered with the ops on the context. */
    shoal_status (*copy_h2d)(shoal_ctx *ctx, void *dst, const void *src, size_t bytes);
    shoal_status (*copy_d2h)(shoal_ctx *ctx, void *dst, const void *src, size_t bytes);
    shoal_status (*copy_d2d)(shoal_ctx *ctx, void *dst, const void *src, size_t bytes);
    /* 1 when backend memory is plain host memory that host code may read and write directly
     * (the CPU table): the model then skips its staging copies. 0 on CUDA (and on the guarded
     * test context, which exists to prove the model never relies on it). */
    int host_visible;
};

/* Call an op through the context's table: SHOAL_OP(ctx, gelu_forward, out, inp, n). */
#define SHOAL_OP(ctx, op, ...) ((ctx)->k->op((ctx), __VA_ARGS__))

/* Backend memory through the context's table. alloc: zeroed, NOMEM logged with `what`; free:
 * NULL-safe; h2d/d2h/d2d: copies of `bytes` as the table's entries (0 is a no-op). */
shoal_status shoal_ctx_alloc(shoal_ctx *ctx, void **out, size_t bytes, const char *what);
void shoal_ctx_mem_free(shoal_ctx *ctx, void *p);
shoal_status shoal_ctx_h2d(shoal_ctx *ctx, void *dst, const void *src, size_t bytes);
shoal_status shoal_ctx_d2h(shoal_ctx *ctx, void *dst, const void *src, size_t bytes);
shoal_status shoal_ctx_d2d(shoal_ctx *ctx, void *dst, const void *src, size_t bytes);

/* The CPU table (always built). */
const shoal_kernels *shoal_kernels_cpu(void);

/* Set up a CPU context. n_threads <= 0 takes OMP_NUM_THREADS, else the number of online CPUs.
 * Sets the BLAS library to 1 thread: GEMMs are split across the context's OpenMP threads, so
 * one thread pool serves every op. INVALID_ARG when ctx is NULL. */
shoal_status shoal_ctx_init_cpu(shoal_ctx *ctx, int n_threads);
/* Release what the context owns (CPU: nothing). NULL-safe. */
void shoal_ctx_free(shoal_ctx *ctx);

/* Global gradient-norm clipping over n elements (one contiguous buffer): computes the L2 norm
 * into *norm_out (may be NULL) and, when max_norm > 0 and the norm exceeds it, scales x by
 * max_norm / (norm + 1e-6), as torch.nn.utils.clip_grad_norm_ does. Non-finite norms are
 * reported and leave x untouched (INVALID_ARG) so the caller can skip the step. */
shoal_status shoal_grad_clip(shoal_ctx *ctx, float *x, size_t n, float max_norm,
                             float *norm_out);

/* "cpu+openblas" or "cpu+loops": the GEMM path this build uses (for benchmarks and logs). */
const char *shoal_kernels_cpu_gemm_name(void);

#endif
