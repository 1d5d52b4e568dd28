/* cuda_internal.h: what the CUDA backend's files share and nobody else includes: error checks,
 * the context's scratch memory, and the launchers each .cu file exports to the op table.
 *
 * Why: one check macro (logs file:line and the CUDA error string, returns SHOAL_ERR_CUDA) so no
 * call goes unchecked; after every launch SHOAL_CUDA_LAUNCHED() reads cudaGetLastError. Scratch
 * lives in the context's workspace after the cuBLASLt part and grows on demand in stream order
 * (cudaMallocAsync), so ops need no allocation of their own. C-compatible: matmul.c uses it.
 * Tested through the ops (tests/kernels_cuda/test_ops_cuda.c, label gpu).
 */
#ifndef SHOAL_KERNELS_CUDA_INTERNAL_H
#define SHOAL_KERNELS_CUDA_INTERNAL_H

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "common/log.h"
#include "common/status.h"
#include "kernels/cuda/cuda_plan.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/ops.h"

#undef SHOAL_LOG_SUBSYS
#define SHOAL_LOG_SUBSYS "cuda"

/* Bytes at the start of the workspace reserved for cuBLASLt (its recommended size on Hopper). */
#define SHOAL_CUDA_LT_WORKSPACE ((size_t)32 << 20)

#define SHOAL_CUDA_TRY(call)                                                                       \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            SHOAL_LOG_ERROR("%s:%d: %s failed: %s", __FILE__, __LINE__, #call,                     \
                            cudaGetErrorString(e_));                                               \
            return SHOAL_ERR_CUDA;                                                                 \
        }                                                                                          \
    } while (0)

/* After a <<<>>> launch: launch-configuration errors surface here. */
#define SHOAL_CUDA_LAUNCHED() SHOAL_CUDA_TRY(cudaGetLastError())

#define SHOAL_CUDA_STREAM(ctx) ((cudaStream_t)(ctx)->stream)

/* A pointer to at least `bytes` of device scratch, valid for the op in progress (stream order).
 * Grows the workspace when needed. NOMEM/CUDA on failure. */
shoal_status shoal_cuda_scratch(shoal_ctx *ctx, size_t bytes, void **out);

/* Deterministic column sums: out[c] += sum_n x[n, c] (x (N,C) fp32), or with xhat weights for
 * layernorm: out_w[c] += sum dout*xhat, out_b[c] += sum dout (layernorm.cu). */
shoal_status shoal_cuda_colsum_f32(shoal_ctx *ctx, float *out, const float *x, int N, int C);
shoal_status shoal_cuda_colsum_bf16(shoal_ctx *ctx, float *out, const shoal_bf16 *x, int N, int C);

/* Each .cu file's ops, as they go in the table (signatures of ops.h). */
shoal_status shoal_encoder_forward_cuda(shoal_ctx *ctx, float *out, const int32_t *tokens,
                                        const float *wte, const float *wpe, int B, int T, int C,
                                        int pos0);
shoal_status shoal_encoder_backward_cuda(shoal_ctx *ctx, float *dwte, float *dwpe,
                                         const float *dout, const int32_t *tokens, int B, int T,
                                         int C);
shoal_status shoal_layernorm_forward_cuda(shoal_ctx *ctx, float *out, float *mean, float *rstd,
                                          const float *inp, const float *w, const float *b, int N,
                                          int C, float eps);
shoal_status shoal_layernorm_backward_cuda(shoal_ctx *ctx, float *dinp, float *dw, float *db,
                                           const float *dout, const float *inp, const float *w,
                                           const float *mean, const float *rstd, int N, int C);
shoal_status shoal_matmul_forward_cuda(shoal_ctx *ctx, float *out, const float *inp, const float *w,
                                       const float *bias, int N, int IC, int OC,
                                       shoal_wlayout layout);
shoal_status shoal_matmul_backward_cuda(shoal_ctx *ctx, float *dinp, float *dw, float *dbias,
                                        const float *dout, const float *inp, const float *w, int N,
                                        int IC, int OC, shoal_wlayout layout);
shoal_status shoal_attention_forward_cuda(shoal_ctx *ctx, float *out, float *att, const float *qkv,
                                          int B, int T, int C, int NH);
shoal_status shoal_attention_backward_cuda(shoal_ctx *ctx, float *dqkv, const float *dout,
                                           const float *qkv, const float *att, int B, int T, int C,
                                           int NH);
shoal_status shoal_attention_decode_cuda(shoal_ctx *ctx, float *out, float *kcache, float *vcache,
                                         const float *qkv, int pos, int Tmax, int B, int C, int NH);
shoal_status shoal_gelu_forward_cuda(shoal_ctx *ctx, float *out, const float *inp, size_t n);
shoal_status shoal_gelu_backward_cuda(shoal_ctx *ctx, float *dinp, const float *dout,
                                      const float *inp, size_t n);
shoal_status shoal_residual_forward_cuda(shoal_ctx *ctx, float *out, const float *a, const float *b,
                                         size_t n);
shoal_status shoal_residual_backward_cuda(shoal_ctx *ctx, float *da, float *db, const float *dout,
                                          size_t n);
shoal_status shoal_crossentropy_forward_cuda(shoal_ctx *ctx, float *losses, float *lse,
                                             const float *logits, const int32_t *targets, int N,
                                             int V);
shoal_status shoal_crossentropy_backward_cuda(shoal_ctx *ctx, float *dlogits, const float *logits,
                                              const float *lse, const int32_t *targets,
                                              const uint8_t *mask, float scale, int N, int V);
shoal_status shoal_adamw_update_cuda(shoal_ctx *ctx, float *params, const float *grads, float *m,
                                     float *v, size_t n, float lr, float beta1, float beta2,
                                     float eps, float weight_decay, int step, float grad_scale);
shoal_status shoal_norm_sq_cuda(shoal_ctx *ctx, const float *x, size_t n, double *out);
shoal_status shoal_scale_cuda(shoal_ctx *ctx, float *x, size_t n, float s);
shoal_status shoal_zero_cuda(shoal_ctx *ctx, void *p, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif
