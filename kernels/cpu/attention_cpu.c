/* attention_cpu.c: causal multi-head self-attention on the CPU, forward, backward and the
 * KV-cache decode step.
 *
 * One (batch, head) pair per OpenMP task: a head touches only its own slices of q, k, v and
 * out, so no two threads write the same element. Within a head the products are dense
 * single-threaded GEMMs over (T, T) (sgemm through BLAS, or the loop kernel): the causal mask is
 * applied by zeroing probabilities above the diagonal, so the dense products are exact, and
 * sgemm at half-wasted work still beats dot-product loops several times. The forward keeps
 * only the softmax probabilities (B,NH,T,T); the backward rebuilds d(att) per head in a
 * per-thread (T, T) scratch instead of storing a second (B,NH,T,T) tensor. The decode step
 * (one query row) uses `omp simd` dot products.
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
    int hs = C / NH, ld = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) num_threads(nt) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * ld + (size_t)h * hs; /* (T, hs), row stride 3C */
            const float *k = q + C, *v = q + 2 * (size_t)C;
            float *a = att + ((size_t)b * NH + h) * T * T; /* (T, T) */
            /* scores for every (t, t2), then a causal softmax that zeroes t2 > t, so the dense
             * product with V below sums over t2 <= t only */
            shoal_gemm_1t(0, 1, T, T, hs, scale, q, ld, k, ld, 0.0f, a, T);
            for (int t = 0; t < T; t++) {
                float *row = a + (size_t)t * T;
                float mx = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) mx = row[t2] > mx ? row[t2] : mx;
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    row[t2] = expf(row[t2] - mx);
                    sum += row[t2];
                }
                float inv = 1.0f / sum;
                for (int t2 = 0; t2 <= t; t2++) row[t2] *= inv;
                for (int t2 = t + 1; t2 < T; t2++) row[t2] = 0.0f;
            }
            /* out[:, head] (T, hs) = att (T, T) @ v (T, hs) */
            shoal_gemm_1t(0, 0, T, hs, T, 1.0f, a, T, v, ld, 0.0f,
                          out + (size_t)b * T * C + (size_t)h * hs, C);
        }
    }
    return SHOAL_OK;
}

shoal_status shoal_attention_backward_cpu(shoal_ctx *ctx, float *dqkv, const float *dout,
                                          const float *qkv, const float *att, int B, int T, int C,
                                          int NH) {
    int nt = CPU_NT(ctx);
    int hs = C / NH, ld = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    float *scratch = malloc((size_t)nt * T * T * sizeof(float));
    if (!scratch) return SHOAL_ERR_NOMEM;
#pragma omp parallel for collapse(2) num_threads(nt) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float *da = scratch + (size_t)CPU_THREAD_NUM() * T * T; /* (T, T) d(att) */
            size_t off = (size_t)b * T * ld + (size_t)h * hs;
            const float *q = qkv + off, *k = q + C, *v = q + 2 * (size_t)C;
            float *dq = dqkv + off, *dk = dq + C, *dv = dq + 2 * (size_t)C;
            const float *a = att + ((size_t)b * NH + h) * T * T;
            const float *d = dout + (size_t)b * T * C + (size_t)h * hs; /* (T, hs), stride C */
            /* out = att @ v:  d(att) = d @ v^T,  dv += att^T @ d */
            shoal_gemm_1t(0, 1, T, T, hs, 1.0f, d, C, v, ld, 0.0f, da, T);
            shoal_gemm_1t(1, 0, T, hs, T, 1.0f, a, T, d, C, 1.0f, dv, ld);
            /* softmax backward, row by row; masked entries have att = 0 and stay 0 */
            for (int t = 0; t < T; t++) {
                const float *ar = a + (size_t)t * T;
                float *dr = da + (size_t)t * T;
                float sad = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) sad += ar[t2] * dr[t2];
                for (int t2 = 0; t2 <= t; t2++) dr[t2] = ar[t2] * (dr[t2] - sad) * scale;
                for (int t2 = t + 1; t2 < T; t2++) dr[t2] = 0.0f;
            }
            /* scores = scale * q @ k^T:  dq += dpre @ k,  dk += dpre^T @ q */
            shoal_gemm_1t(0, 0, T, hs, T, 1.0f, da, T, k, ld, 1.0f, dq, ld);
            shoal_gemm_1t(1, 0, T, hs, T, 1.0f, da, T, q, ld, 1.0f, dk, ld);
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
