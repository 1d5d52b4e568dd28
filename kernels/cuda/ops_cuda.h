/* ops_cuda.h: the CUDA backend of kernels/ops.h, plus the bf16 mixed-precision entry points.
 *
 * What: shoal_kernels_cuda() is the op table with exactly the ops.h semantics on fp32 device
 * pointers (accumulate conventions, weight layouts). shoal_ctx_init_cuda() makes the context:
 * a stream, a cuBLASLt handle and a device workspace. The bf16 functions below are what a
 * mixed-precision trainer calls directly: bf16 activations and weights, fp32 accumulation,
 * fp32 master weights in the optimizer.
 * Why so: one table per backend (STYLE.md), chosen once when the context is made; the model
 * code stays one model. Backend note on attention: the CUDA ops keep the row log-sum-exp
 * (B, NH, T) in the first B*NH*T floats of ops.h's `att` buffer instead of the T x T
 * probabilities (flash attention never materialises them); indexing in cuda_plan.h.
 * Determinism: no floating-point atomics anywhere; every reduction has a fixed grid and order,
 * so two runs on the same device give identical bits.
 * Tested by tests/kernels_cuda/test_ops_cuda.c (label gpu: every op against the CPU table on
 * fresh random inputs with poisoned outputs) and test_cuda_plan.c (label unit, no GPU).
 */
#ifndef SHOAL_KERNELS_CUDA_OPS_CUDA_H
#define SHOAL_KERNELS_CUDA_OPS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/ops.h"

/* bf16 storage as raw bits (the same bits as __nv_bfloat16), so C callers need no CUDA types. */
typedef uint16_t shoal_bf16;

/* Number of usable CUDA devices; 0 (not an error) when there is no driver or no device, so
 * CPU-only machines skip cleanly. Never fails. */
int shoal_cuda_device_count(void);

/* The CUDA op table (ops.h semantics on device pointers). */
const shoal_kernels *shoal_kernels_cuda(void);

/* Make a context on `device`: selects it, creates a non-blocking stream, a cuBLASLt handle and
 * a device workspace (grown on demand by ops that need scratch). INVALID_ARG for a NULL ctx or
 * a device out of range, CUDA when a call fails (logged). On failure nothing is left allocated.
 * Release with shoal_ctx_free() (or shoal_ctx_free_cuda(), which it calls). */
shoal_status shoal_ctx_init_cuda(shoal_ctx *ctx, int device);
/* Synchronise the stream and free what shoal_ctx_init_cuda made. NULL-safe; idempotent. */
void shoal_ctx_free_cuda(shoal_ctx *ctx);
/* Block until every op queued on the context has finished; CUDA on an asynchronous error. */
shoal_status shoal_cuda_sync(shoal_ctx *ctx);

/* ---- bf16 mixed precision (all pointers on the device) ---- */

/* out (n) bf16 = round-to-nearest-even(inp (n) fp32), and back. */
shoal_status shoal_cuda_f32_to_bf16(shoal_ctx *ctx, shoal_bf16 *out, const float *inp, size_t n);
shoal_status shoal_cuda_bf16_to_f32(shoal_ctx *ctx, float *out, const shoal_bf16 *inp, size_t n);

/* out (N,OC) bf16 = inp (N,IC) @ W (+ bias (OC), NULL = none), fp32 accumulation in cuBLASLt.
 * gelu != 0 applies the tanh-GELU epilogue; then pre_gelu (N,OC), when not NULL, receives the
 * value before GELU (for backward). */
shoal_status shoal_matmul_forward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *out, shoal_bf16 *pre_gelu,
                                            const shoal_bf16 *inp, const shoal_bf16 *w,
                                            const shoal_bf16 *bias, int N, int IC, int OC,
                                            shoal_wlayout layout, int gelu);
/* dinp (N,IC) bf16 += dout @ W^T; dw (fp32, w's layout) += inp^T @ dout; dbias (OC, fp32) +=
 * column sums of dout. Gradients of weights stay fp32 (they feed the fp32 optimizer). */
shoal_status shoal_matmul_backward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *dinp, float *dw,
                                             float *dbias, const shoal_bf16 *dout,
                                             const shoal_bf16 *inp, const shoal_bf16 *w, int N,
                                             int IC, int OC, shoal_wlayout layout);

/* Causal flash attention on tensor cores. qkv (B,T,3C) bf16, out (B,T,C) bf16, lse (B,NH,T)
 * fp32. Head dim C/NH must be 64 or 128; any T >= 1 (tails are masked). */
shoal_status shoal_attention_forward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *out, float *lse,
                                               const shoal_bf16 *qkv, int B, int T, int C, int NH);
/* dqkv (B,T,3C) bf16 += gradient, given dout, the forward's out and lse. Deterministic: a
 * query-parallel kernel writes dQ and a key-parallel kernel writes dK, dV (no atomics). */
shoal_status shoal_attention_backward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *dqkv,
                                                const shoal_bf16 *dout, const shoal_bf16 *qkv,
                                                const shoal_bf16 *out, const float *lse, int B,
                                                int T, int C, int NH);

/* The remaining training ops on bf16 activations, with ops.h's semantics (accumulate += into
 * gradients, NULL = skip) and fp32 arithmetic inside. Parameter gradients (dwte, dwpe, dw, db)
 * are fp32, activation gradients bf16. mean/rstd/lse/losses stay fp32. */
/* out (B,T,C) bf16 = wte[tokens] + wpe[pos0 + t] from the fp32 master embeddings. */
shoal_status shoal_encoder_forward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *out, const int32_t *tokens,
                                             const float *wte, const float *wpe, int B, int T,
                                             int C, int pos0);
shoal_status shoal_encoder_backward_bf16_cuda(shoal_ctx *ctx, float *dwte, float *dwpe,
                                              const shoal_bf16 *dout, const int32_t *tokens, int B,
                                              int T, int C);
shoal_status shoal_layernorm_forward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *out, float *mean,
                                               float *rstd, const shoal_bf16 *inp,
                                               const shoal_bf16 *w, const shoal_bf16 *b, int N,
                                               int C, float eps);
shoal_status shoal_layernorm_backward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *dinp, float *dw,
                                                float *db, const shoal_bf16 *dout,
                                                const shoal_bf16 *inp, const shoal_bf16 *w,
                                                const float *mean, const float *rstd, int N, int C);
/* GELU forward in bf16 is the matmul epilogue (shoal_matmul_forward_bf16_cuda, gelu = 1);
 * backward: dinp += gelu'(pre_gelu) * dout. */
shoal_status shoal_gelu_backward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *dinp, const shoal_bf16 *dout,
                                           const shoal_bf16 *inp, size_t n);
shoal_status shoal_residual_forward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *out, const shoal_bf16 *a,
                                              const shoal_bf16 *b, size_t n);
shoal_status shoal_residual_backward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *da, shoal_bf16 *db,
                                               const shoal_bf16 *dout, size_t n);
shoal_status shoal_crossentropy_forward_bf16_cuda(shoal_ctx *ctx, float *losses, float *lse,
                                                  const shoal_bf16 *logits, const int32_t *targets,
                                                  int N, int V);
/* OVERWRITES dlogits (bf16); may run in place. */
shoal_status shoal_crossentropy_backward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *dlogits,
                                                   const shoal_bf16 *logits, const float *lse,
                                                   const int32_t *targets, const uint8_t *mask,
                                                   float scale, int N, int V);

/* AdamW as ops.h's adamw_update on fp32 master weights, also writing the bf16 copy of the
 * updated parameters (params_bf16 may be NULL). grads fp32. */
shoal_status shoal_adamw_update_mixed_cuda(shoal_ctx *ctx, float *master, shoal_bf16 *params_bf16,
                                           const float *grads, float *m, float *v, size_t n,
                                           float lr, float beta1, float beta2, float eps,
                                           float weight_decay, int step, float grad_scale);

#ifdef __cplusplus
}
#endif

#endif
