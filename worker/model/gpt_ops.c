/* gpt_ops.c: one dispatch per op between the fp32 op table (kernels/ops.h) and the bf16
 * mixed-precision CUDA entry points (kernels/cuda/ops_cuda.h), for gpt.c's forward/backward.
 *
 * Why so: the model stays one model (one forward, one backward in gpt.c) whatever the
 * precision. Activations are `void *` here; in fp32 they are float buffers handed to the
 * context's table unchanged (so the CPU path is the table call it always was), in bf16 they
 * are bf16 buffers and the weights come from the model's bf16 copy of the fp32 masters
 * (params_lp, refreshed by gpt_sync_lp before a forward). Parameter gradients, layernorm
 * statistics, losses and the attention LSE stay fp32 in both. The bf16 branches exist only in
 * CUDA builds (SHOAL_MODEL_CUDA); a model is never made bf16 without them (gpt.c refuses).
 * Tested through the model: tests/model/test_gpt_ref.c and test_gpt_guarded.c (fp32 path, CI)
 * and tests/model/test_gpt_cuda.c (fp32 and bf16 on a device, label gpu).
 */
#define SHOAL_LOG_SUBSYS "model"
#include "worker/model/gpt_internal.h"

#ifdef SHOAL_MODEL_CUDA
#include "kernels/cuda/ops_cuda.h"
#define LP(m, p) ((m)->params_lp + ((p) - (m)->params))
#define IS_LP(m) ((m)->prec == SHOAL_PRECISION_BF16)
#else
#define IS_LP(m) 0
#endif

shoal_status gpt_sync_lp(shoal_gpt *m) {
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m) && m->lp_stale) {
        SHOAL_CHECK(shoal_cuda_f32_to_bf16(&m->ctx, m->params_lp, m->params, m->n_params));
        m->lp_stale = 0;
    }
#else
    (void)m;
#endif
    return SHOAL_OK;
}

shoal_status gpt_op_encoder_fwd(shoal_gpt *m, void *out, const int32_t *tokens, int B, int T) {
    int C = m->cfg.n_embd;
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m))
        return shoal_encoder_forward_bf16_cuda(&m->ctx, out, tokens, m->w.wte, m->w.wpe, B, T, C,
                                               0);
#endif
    return SHOAL_OP(&m->ctx, encoder_forward, out, tokens, m->w.wte, m->w.wpe, B, T, C, 0);
}

shoal_status gpt_op_encoder_bwd(shoal_gpt *m, const void *dout, const int32_t *tokens, int B,
                                int T) {
    int C = m->cfg.n_embd;
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m))
        return shoal_encoder_backward_bf16_cuda(&m->ctx, m->g.wte, m->g.wpe, dout, tokens, B, T,
                                                C);
#endif
    return SHOAL_OP(&m->ctx, encoder_backward, m->g.wte, m->g.wpe, dout, tokens, B, T, C);
}

shoal_status gpt_op_ln_fwd(shoal_gpt *m, void *out, float *mean, float *rstd, const void *inp,
                           const float *w, const float *b, int N) {
    int C = m->cfg.n_embd;
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m))
        return shoal_layernorm_forward_bf16_cuda(&m->ctx, out, mean, rstd, inp, LP(m, w),
                                                 LP(m, b), N, C, m->cfg.ln_eps);
#endif
    return SHOAL_OP(&m->ctx, layernorm_forward, out, mean, rstd, inp, w, b, N, C, m->cfg.ln_eps);
}

shoal_status gpt_op_ln_bwd(shoal_gpt *m, void *dinp, float *dw, float *db, const void *dout,
                           const void *inp, const float *w, const float *mean, const float *rstd,
                           int N) {
    int C = m->cfg.n_embd;
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m))
        return shoal_layernorm_backward_bf16_cuda(&m->ctx, dinp, dw, db, dout, inp, LP(m, w),
                                                  mean, rstd, N, C);
#endif
    return SHOAL_OP(&m->ctx, layernorm_backward, dinp, dw, db, dout, inp, w, mean, rstd, N, C);
}

shoal_status gpt_op_mm_fwd(shoal_gpt *m, void *out, const void *inp, const float *w,
                           const float *bias, int N, int IC, int OC, shoal_wlayout layout) {
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m))
        return shoal_matmul_forward_bf16_cuda(&m->ctx, out, NULL, inp, LP(m, w),
                                              bias ? LP(m, bias) : NULL, N, IC, OC, layout, 0);
#endif
    return SHOAL_OP(&m->ctx, matmul_forward, out, inp, w, bias, N, IC, OC, layout);
}

shoal_status gpt_op_mm_gelu_fwd(shoal_gpt *m, void *out, void *pre, const void *inp,
                                const float *w, const float *bias, int N, int IC, int OC) {
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m)) /* GELU in the GEMM epilogue, pre-GELU kept for backward */
        return shoal_matmul_forward_bf16_cuda(&m->ctx, out, pre, inp, LP(m, w), LP(m, bias), N,
                                              IC, OC, SHOAL_W_IN_OUT, 1);
#endif
    SHOAL_CHECK(SHOAL_OP(&m->ctx, matmul_forward, pre, inp, w, bias, N, IC, OC, SHOAL_W_IN_OUT));
    return SHOAL_OP(&m->ctx, gelu_forward, out, pre, (size_t)N * (size_t)OC);
}

shoal_status gpt_op_mm_bwd(shoal_gpt *m, void *dinp, float *dw, float *dbias, const void *dout,
                           const void *inp, const float *w, int N, int IC, int OC,
                           shoal_wlayout layout) {
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m))
        return shoal_matmul_backward_bf16_cuda(&m->ctx, dinp, dw, dbias, dout, inp, LP(m, w), N,
                                               IC, OC, layout);
#endif
    return SHOAL_OP(&m->ctx, matmul_backward, dinp, dw, dbias, dout, inp, w, N, IC, OC, layout);
}

shoal_status gpt_op_attn_fwd(shoal_gpt *m, void *out, float *att, const void *qkv, int B,
                             int T) {
    int C = m->cfg.n_embd, NH = m->cfg.n_head;
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m)) return shoal_attention_forward_bf16_cuda(&m->ctx, out, att, qkv, B, T, C, NH);
#endif
    return SHOAL_OP(&m->ctx, attention_forward, out, att, qkv, B, T, C, NH);
}

shoal_status gpt_op_attn_bwd(shoal_gpt *m, void *dqkv, const void *dout, const void *qkv,
                             const void *out, const float *att, int B, int T) {
    int C = m->cfg.n_embd, NH = m->cfg.n_head;
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m))
        return shoal_attention_backward_bf16_cuda(&m->ctx, dqkv, dout, qkv, out, att, B, T, C,
                                                  NH);
#endif
    (void)out; /* the fp32 ops recompute from qkv and the saved att */
    return SHOAL_OP(&m->ctx, attention_backward, dqkv, dout, qkv, att, B, T, C, NH);
}

shoal_status gpt_op_gelu_bwd(shoal_gpt *m, void *dinp, const void *dout, const void *pre,
                             size_t n) {
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m)) return shoal_gelu_backward_bf16_cuda(&m->ctx, dinp, dout, pre, n);
#endif
    return SHOAL_OP(&m->ctx, gelu_backward, dinp, dout, pre, n);
}

shoal_status gpt_op_residual_fwd(shoal_gpt *m, void *out, const void *a, const void *b,
                                 size_t n) {
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m)) return shoal_residual_forward_bf16_cuda(&m->ctx, out, a, b, n);
#endif
    return SHOAL_OP(&m->ctx, residual_forward, out, a, b, n);
}

shoal_status gpt_op_ce_fwd(shoal_gpt *m, float *losses, float *lse, const void *logits,
                           const int32_t *targets, int N) {
    int V = m->cfg.vocab_size;
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m))
        return shoal_crossentropy_forward_bf16_cuda(&m->ctx, losses, lse, logits, targets, N, V);
#endif
    return SHOAL_OP(&m->ctx, crossentropy_forward, losses, lse, logits, targets, N, V);
}

shoal_status gpt_op_ce_bwd(shoal_gpt *m, void *dlogits, const void *logits, const float *lse,
                           const int32_t *targets, const uint8_t *mask, float scale, int N) {
    int V = m->cfg.vocab_size;
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m))
        return shoal_crossentropy_backward_bf16_cuda(&m->ctx, dlogits, logits, lse, targets, mask,
                                                     scale, N, V);
#endif
    return SHOAL_OP(&m->ctx, crossentropy_backward, dlogits, logits, lse, targets, mask, scale, N,
                    V);
}

shoal_status gpt_act_to_f32(shoal_gpt *m, float *dst, const void *src, size_t n) {
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m)) return shoal_cuda_bf16_to_f32(&m->ctx, dst, src, n);
#endif
    return shoal_ctx_d2d(&m->ctx, dst, src, n * sizeof(float));
}

shoal_status gpt_op_adamw(shoal_gpt *m, size_t off, size_t n, float *ms, float *vs, float lr,
                          float beta1, float beta2, float eps, float wd, int step,
                          float grad_scale) {
#ifdef SHOAL_MODEL_CUDA
    if (IS_LP(m)) {
        /* the fused update writes the bf16 copy too, but only of this range: a stale copy
         * elsewhere is still refreshed before the next forward */
        return shoal_adamw_update_mixed_cuda(&m->ctx, m->params + off,
                                             m->lp_stale ? NULL : m->params_lp + off,
                                             m->grads + off, ms, vs, n, lr, beta1, beta2, eps,
                                             wd, step, grad_scale);
    }
#endif
    return SHOAL_OP(&m->ctx, adamw_update, m->params + off, m->grads + off, ms, vs, n, lr, beta1,
                    beta2, eps, wd, step, grad_scale);
}
