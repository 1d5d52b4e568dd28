/* ops_cpu.c: CPU reference for the element-wise, normalisation, embedding, loss and optimizer
 * ops of kernels/ops.h (matmul and attention live in their own files).
 *
 * Plain loops with OpenMP over rows; reductions that cross rows (parameter gradients of
 * layernorm and the embeddings) are split by columns instead, so no two threads write the same
 * element and no scratch is needed. Sums over a row stay in fp32 (as PyTorch's CPU kernels
 * do); the gradient-norm sum is in double because it spans the whole model.
 * Tested by tests/kernels/test_ops.c (finite differences, double-precision references).
 */
#include <math.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/ops_cpu.h"

/* Column block for column-split reductions: 64 floats = one 256-byte run per row. */
#define COLBLK 64

shoal_status shoal_encoder_forward_cpu(shoal_ctx *ctx, float *out, const int32_t *tokens,
                                       const float *wte, const float *wpe, int B, int T, int C,
                                       int pos0) {
    int nt = CPU_NT(ctx);
    (void)nt;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T;
        float *o = out + (size_t)bt * C;
        const float *te = wte + (size_t)tokens[bt] * C;
        const float *pe = wpe + (size_t)(pos0 + t) * C;
        for (int c = 0; c < C; c++) o[c] = te[c] + pe[c];
    }
    return SHOAL_OK;
}

shoal_status shoal_encoder_backward_cpu(shoal_ctx *ctx, float *dwte, float *dwpe,
                                        const float *dout, const int32_t *tokens, int B, int T,
                                        int C) {
    int nt = CPU_NT(ctx);
    (void)nt;
    int nblk = (C + COLBLK - 1) / COLBLK;
    /* Split by channel block: the same token may appear many times, so rows collide. */
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * COLBLK, c1 = c0 + COLBLK < C ? c0 + COLBLK : C;
        for (int bt = 0; bt < B * T; bt++) {
            const float *d = dout + (size_t)bt * C;
            if (dwte) {
                float *g = dwte + (size_t)tokens[bt] * C;
                for (int c = c0; c < c1; c++) g[c] += d[c];
            }
            if (dwpe) {
                float *g = dwpe + (size_t)(bt % T) * C;
                for (int c = c0; c < c1; c++) g[c] += d[c];
            }
        }
    }
    return SHOAL_OK;
}

shoal_status shoal_layernorm_forward_cpu(shoal_ctx *ctx, float *out, float *mean, float *rstd,
                                         const float *inp, const float *w, const float *b, int N,
                                         int C, float eps) {
    int nt = CPU_NT(ctx);
    (void)nt;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++) s += x[c];
        float m = s / (float)C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        float r = 1.0f / sqrtf(v / (float)C + eps);
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * w[c] + b[c];
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = r;
    }
    return SHOAL_OK;
}

shoal_status shoal_layernorm_backward_cpu(shoal_ctx *ctx, float *dinp, float *dw, float *db,
                                          const float *dout, const float *inp, const float *w,
                                          const float *mean, const float *rstd, int N, int C) {
    int nt = CPU_NT(ctx);
    (void)nt;
    if (dinp) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            float m = mean[n], r = rstd[n];
            float sd = 0.0f, sdn = 0.0f; /* mean of dnorm and of dnorm * norm */
#pragma omp simd reduction(+ : sd, sdn)
            for (int c = 0; c < C; c++) {
                float dn = w[c] * d[c];
                sd += dn;
                sdn += dn * (x[c] - m) * r;
            }
            sd /= (float)C;
            sdn /= (float)C;
            float *g = dinp + (size_t)n * C;
            for (int c = 0; c < C; c++) {
                float norm = (x[c] - m) * r;
                g[c] += (w[c] * d[c] - sd - norm * sdn) * r;
            }
        }
    }
    if (dw || db) {
        int nblk = (C + COLBLK - 1) / COLBLK;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * COLBLK, c1 = c0 + COLBLK < C ? c0 + COLBLK : C;
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
                float m = mean[n], r = rstd[n];
                for (int c = c0; c < c1; c++) {
                    if (dw) dw[c] += (x[c] - m) * r * d[c];
                    if (db) db[c] += d[c];
                }
            }
        }
    }
    return SHOAL_OK;
}

/* sqrt(2/pi) */
#define GELU_K 0.7978845608028654f

/* tanh through one expf: 1 - 2/(e^{2u}+1). About twice as fast as tanhf here (GELU runs three
 * times per layer per step); its absolute error (~1e-7) vanishes in 0.5*(1+tanh). Saturates
 * correctly: e^{2u} = inf gives 1, e^{2u} = 0 gives -1. */
static inline float tanh_fast(float u) { return 1.0f - 2.0f / (expf(2.0f * u) + 1.0f); }

shoal_status shoal_gelu_forward_cpu(shoal_ctx *ctx, float *out, const float *inp, size_t n) {
    int nt = CPU_NT(ctx);
    (void)nt;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanh_fast(GELU_K * (x + 0.044715f * x * x * x)));
    }
    return SHOAL_OK;
}

shoal_status shoal_gelu_backward_cpu(shoal_ctx *ctx, float *dinp, const float *dout,
                                     const float *inp, size_t n) {
    int nt = CPU_NT(ctx);
    (void)nt;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_K * (x + 0.044715f * x * x * x);
        float th = tanh_fast(u);
        float sech2 = 1.0f - th * th;
        float g = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += g * dout[i];
    }
    return SHOAL_OK;
}

shoal_status shoal_residual_forward_cpu(shoal_ctx *ctx, float *out, const float *a,
                                        const float *b, size_t n) {
    int nt = CPU_NT(ctx);
    (void)nt;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
    return SHOAL_OK;
}

shoal_status shoal_residual_backward_cpu(shoal_ctx *ctx, float *da, float *db, const float *dout,
                                         size_t n) {
    int nt = CPU_NT(ctx);
    (void)nt;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; i++) {
        if (da) da[i] += dout[i];
        if (db) db[i] += dout[i];
    }
    return SHOAL_OK;
}

shoal_status shoal_crossentropy_forward_cpu(shoal_ctx *ctx, float *losses, float *lse,
                                            const float *logits, const int32_t *targets, int N,
                                            int V) {
    int nt = CPU_NT(ctx);
    (void)nt;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        float mx = -INFINITY;
        for (int i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < V; i++) s += expf(x[i] - mx);
        float l = mx + logf(s);
        if (lse) lse[n] = l;
        losses[n] = targets[n] >= 0 ? l - x[targets[n]] : 0.0f;
    }
    return SHOAL_OK;
}

shoal_status shoal_crossentropy_backward_cpu(shoal_ctx *ctx, float *dlogits, const float *logits,
                                             const float *lse, const int32_t *targets,
                                             const uint8_t *mask, float scale, int N, int V) {
    int nt = CPU_NT(ctx);
    (void)nt;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        float *d = dlogits + (size_t)n * V;
        int tgt = targets[n];
        float wgt = (tgt < 0 || (mask && !mask[n])) ? 0.0f : scale;
        if (wgt == 0.0f) {
            memset(d, 0, (size_t)V * sizeof(float));
            continue;
        }
        float l = lse[n];
        for (int i = 0; i < V; i++) d[i] = expf(x[i] - l) * wgt;
        d[tgt] -= wgt;
    }
    return SHOAL_OK;
}

shoal_status shoal_adamw_update_cpu(shoal_ctx *ctx, float *params, const float *grads, float *m,
                                    float *v, size_t n, float lr, float beta1, float beta2,
                                    float eps, float weight_decay, int step, float grad_scale) {
    int nt = CPU_NT(ctx);
    (void)nt;
    /* Same order of operations as torch.optim.AdamW's single-tensor path, so trajectories
     * agree to rounding: decay, lerp into m, v, then p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2)+eps). */
    double bc1 = 1.0 - pow((double)beta1, (double)step);
    double bc2 = 1.0 - pow((double)beta2, (double)step);
    float step_size = (float)((double)lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float decay = 1.0f - lr * weight_decay;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] * grad_scale;
        float mi = m[i] + (1.0f - beta1) * (g - m[i]);
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        params[i] = params[i] * decay - step_size * (mi / denom);
    }
    return SHOAL_OK;
}

shoal_status shoal_norm_sq_cpu(shoal_ctx *ctx, const float *x, size_t n, double *out) {
    int nt = CPU_NT(ctx);
    (void)nt;
    double s = 0.0;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    *out = s;
    return SHOAL_OK;
}

shoal_status shoal_scale_cpu(shoal_ctx *ctx, float *x, size_t n, float s) {
    int nt = CPU_NT(ctx);
    (void)nt;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; i++) x[i] *= s;
    return SHOAL_OK;
}

shoal_status shoal_zero_cpu(shoal_ctx *ctx, void *p, size_t bytes) {
    int nt = CPU_NT(ctx);
    if (!p || !bytes) return SHOAL_OK;
    /* zero_grad clears ~0.5 GB for GPT-2 124M: split it so every core's store bandwidth helps */
    size_t chunk = (size_t)1 << 22;
    size_t nch = (bytes + chunk - 1) / chunk;
    (void)nt;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < nch; i++) {
        size_t off = i * chunk, len = bytes - off < chunk ? bytes - off : chunk;
        memset((char *)p + off, 0, len);
    }
    return SHOAL_OK;
}
