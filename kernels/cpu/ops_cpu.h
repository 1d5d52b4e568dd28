/* ops_cpu.h: the CPU twins of every op in kernels/ops.h (shoal_<op>_forward_cpu / _backward_cpu).
 *
 * These are the readable reference: plain loops with shape comments, OpenMP across rows, batch
 * and heads, GEMM through OpenBLAS (or a blocked loop when built with SHOAL_BLAS=OFF). The CUDA
 * ops are tested against them. Semantics and shapes are documented once, in kernels/ops.h.
 * Tested by tests/kernels/test_ops.c.
 */
#ifndef SHOAL_KERNELS_CPU_OPS_CPU_H
#define SHOAL_KERNELS_CPU_OPS_CPU_H

#include "kernels/ops.h"

shoal_status shoal_encoder_forward_cpu(shoal_ctx *ctx, float *out, const int32_t *tokens,
                                       const float *wte, const float *wpe, int B, int T, int C,
                                       int pos0);
shoal_status shoal_encoder_backward_cpu(shoal_ctx *ctx, float *dwte, float *dwpe,
                                        const float *dout, const int32_t *tokens, int B, int T,
                                        int C);
shoal_status shoal_layernorm_forward_cpu(shoal_ctx *ctx, float *out, float *mean, float *rstd,
                                         const float *inp, const float *w, const float *b, int N,
                                         int C, float eps);
shoal_status shoal_layernorm_backward_cpu(shoal_ctx *ctx, float *dinp, float *dw, float *db,
                                          const float *dout, const float *inp, const float *w,
                                          const float *mean, const float *rstd, int N, int C);
shoal_status shoal_matmul_forward_cpu(shoal_ctx *ctx, float *out, const float *inp,
                                      const float *w, const float *bias, int N, int IC, int OC,
                                      shoal_wlayout layout);
shoal_status shoal_matmul_backward_cpu(shoal_ctx *ctx, float *dinp, float *dw, float *dbias,
                                       const float *dout, const float *inp, const float *w, int N,
                                       int IC, int OC, shoal_wlayout layout);
shoal_status shoal_attention_forward_cpu(shoal_ctx *ctx, float *out, float *att,
                                         const float *qkv, int B, int T, int C, int NH);
shoal_status shoal_attention_backward_cpu(shoal_ctx *ctx, float *dqkv, const float *dout,
                                          const float *qkv, const float *att, int B, int T, int C,
                                          int NH);
shoal_status shoal_attention_decode_cpu(shoal_ctx *ctx, float *out, float *kcache,
                                        float *vcache, const float *qkv, int pos, int Tmax, int B,
                                        int C, int NH);
shoal_status shoal_gelu_forward_cpu(shoal_ctx *ctx, float *out, const float *inp, size_t n);
shoal_status shoal_gelu_backward_cpu(shoal_ctx *ctx, float *dinp, const float *dout,
                                     const float *inp, size_t n);
shoal_status shoal_residual_forward_cpu(shoal_ctx *ctx, float *out, const float *a,
                                        const float *b, size_t n);
shoal_status shoal_residual_backward_cpu(shoal_ctx *ctx, float *da, float *db, const float *dout,
                                         size_t n);
shoal_status shoal_crossentropy_forward_cpu(shoal_ctx *ctx, float *losses, float *lse,
                                            const float *logits, const int32_t *targets, int N,
                                            int V);
shoal_status shoal_crossentropy_backward_cpu(shoal_ctx *ctx, float *dlogits, const float *logits,
                                             const float *lse, const int32_t *targets,
                                             const uint8_t *mask, float scale, int N, int V);
shoal_status shoal_adamw_update_cpu(shoal_ctx *ctx, float *params, const float *grads, float *m,
                                    float *v, size_t n, float lr, float beta1, float beta2,
                                    float eps, float weight_decay, int step, float grad_scale);
shoal_status shoal_norm_sq_cpu(shoal_ctx *ctx, const float *x, size_t n, double *out);
shoal_status shoal_scale_cpu(shoal_ctx *ctx, float *x, size_t n, float s);
shoal_status shoal_zero_cpu(shoal_ctx *ctx, void *p, size_t bytes);

/* Set the BLAS library's thread count (no-op without BLAS). */
void shoal_cpu_blas_set_threads(int n);

#endif
