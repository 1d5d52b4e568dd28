/* attention_cpu.c: causal multi-head self-attention on the CPU, forward, backward and the
 * KV-cache decode step.
 *
 * One (batch, head) pair per OpenMP task: a head touches only its own slices of q, k, v and
 * out, so no two threads write the same element. The forward keeps only the softmax
 * probabilities (B,NH,T,T) for backward; the backward rebuilds d(att) one row at a time in a
 * per-thread scratch of T floats instead of storing a second (B,NH,T,T) tensor. Dot products
 * over the head dimension use `omp simd` reductions so they vectorise without -ffast-math.
 * Tested by tests/kernels/test_ops.c (finite differences, decode == full attention) and
 * through the model against PyTorch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/ops_cpu.h"

static inline float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

shoal_status shoal_attention_forward_cpu(shoal_ctx *ctx, float *out, float *att,
                                         const float *qkv, int B, int T, int C, int NH) {
    int nt = CPU_NT(ctx);
    (void)nt;
    int hs = C / NH;
    size_t C3 = (size_t)3 * C;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) num_threads(nt) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *base = qkv + (size_t)b * T * C3;
            for (int t = 0; t < T; t++) {
                const float *q = base + t * C3 + (size_t)h * hs;
                float *a = att + (((size_t)b * NH + h) * T + t) * T;
                float mx = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = base + t2 * C3 + C + (size_t)h * hs;
                    float s = dot(q, k, hs) * scale;
                    a[t2] = s;
                    mx = s > mx ? s : mx;
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    a[t2] = expf(a[t2] - mx);
                    sum += a[t2];
                }
                float inv = 1.0f / sum;
                for (int t2 = 0; t2 <= t; t2++) a[t2] *= inv;
                for (int t2 = t + 1; t2 < T; t2++) a[t2] = 0.0f;
                float *o = out + ((size_t)b * T + t) * C + (size_t)h * hs;
                memset(o, 0, (size_t)hs * sizeof(float));
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = base + t2 * C3 + 2 * (size_t)C + (size_t)h * hs;
                    float p = a[t2];
#pragma omp simd
                    for (int i = 0; i < hs; i++) o[i] += p * v[i];
                }
            }
        }
    }
    return SHOAL_OK;
}

shoal_status shoal_attention_backward_cpu(shoal_ctx *ctx, float *dqkv, const float *dout,
                                          const float *qkv, const float *att, int B, int T, int C,
                                          int NH) {
    int nt = CPU_NT(ctx);
    int hs = C / NH;
    size_t C3 = (size_t)3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    float *scratch = malloc((size_t)nt * T * sizeof(float));
    if (!scratch) return SHOAL_ERR_NOMEM;
#pragma omp parallel for collapse(2) num_threads(nt) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float *datt = scratch + (size_t)CPU_THREAD_NUM() * T;
            const float *base = qkv + (size_t)b * T * C3;
            float *dbase = dqkv + (size_t)b * T * C3;
            for (int t = 0; t < T; t++) {
                const float *a = att + (((size_t)b * NH + h) * T + t) * T;
                const float *d = dout + ((size_t)b * T + t) * C + (size_t)h * hs;
                /* out = sum a[t2] v[t2]: d(att) and d(v) */
                float sad = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = base + t2 * C3 + 2 * (size_t)C + (size_t)h * hs;
                    float *dv = dbase + t2 * C3 + 2 * (size_t)C + (size_t)h * hs;
                    datt[t2] = dot(d, v, hs);
                    sad += a[t2] * datt[t2];
                    float p = a[t2];
#pragma omp simd
                    for (int i = 0; i < hs; i++) dv[i] += p * d[i];
                }
                /* softmax backward, then the scaled q.k product */
                const float *q = base + t * C3 + (size_t)h * hs;
                float *dq = dbase + t * C3 + (size_t)h * hs;
                for (int t2 = 0; t2 <= t; t2++) {
                    float dpre = a[t2] * (datt[t2] - sad) * scale;
                    const float *k = base + t2 * C3 + C + (size_t)h * hs;
                    float *dk = dbase + t2 * C3 + C + (size_t)h * hs;
#pragma omp simd
                    for (int i = 0; i < hs; i++) {
                        dq[i] += dpre * k[i];
                        dk[i] += dpre * q[i];
                    }
                }
            }
        }
    }
    free(scratch);
    return SHOAL_OK;
}

shoal_status shoal_attention_decode_cpu(shoal_ctx *ctx, float *out, float *kcache,
                                        float *vcache, const float *qkv, int pos, int Tmax, int B,
                                        int C, int NH) {
    int nt = CPU_NT(ctx);
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    float *scratch = malloc((size_t)nt * (size_t)(pos + 1) * sizeof(float));
    if (!scratch) return SHOAL_ERR_NOMEM;
#pragma omp parallel for collapse(2) num_threads(nt) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float *a = scratch + (size_t)CPU_THREAD_NUM() * (size_t)(pos + 1);
            const float *q = qkv + (size_t)b * 3 * C + (size_t)h * hs;
            float *kc = kcache + (size_t)b * Tmax * C + (size_t)h * hs;
            float *vc = vcache + (size_t)b * Tmax * C + (size_t)h * hs;
            memcpy(kc + (size_t)pos * C, q + C, (size_t)hs * sizeof(float));
            memcpy(vc + (size_t)pos * C, q + 2 * (size_t)C, (size_t)hs * sizeof(float));
            float mx = -INFINITY;
            for (int t2 = 0; t2 <= pos; t2++) {
                a[t2] = dot(q, kc + (size_t)t2 * C, hs) * scale;
                mx = a[t2] > mx ? a[t2] : mx;
            }
            float sum = 0.0f;
            for (int t2 = 0; t2 <= pos; t2++) {
                a[t2] = expf(a[t2] - mx);
                sum += a[t2];
            }
            float inv = 1.0f / sum;
            float *o = out + (size_t)b * C + (size_t)h * hs;
            memset(o, 0, (size_t)hs * sizeof(float));
            for (int t2 = 0; t2 <= pos; t2++) {
                const float *v = vc + (size_t)t2 * C;
                float p = a[t2] * inv;
#pragma omp simd
                for (int i = 0; i < hs; i++) o[i] += p * v[i];
            }
        }
    }
    free(scratch);
    return SHOAL_OK;
}
