/* attention_f32.cu: causal attention in fp32 for the ops.h table: forward (online softmax,
 * saves the row log-sum-exp), backward (recomputes probabilities from the LSE), and the
 * KV-cache decode step.
 *
 * Why so: this is the exact-precision path the fp32 model runs and the bf16 tensor-core
 * kernels (attention_bf16.cu) are checked against; it favours obvious correctness and any head
 * dim up to 128 (tiny test models use 8 or 16) over speed. One warp owns one query row (or one
 * key row in the dK/dV kernel); lane l holds elements l, l+32, ... of the head, so dot products
 * are a lane partial plus a shuffle sum. T x T is never stored: the LSE (B,NH,T) goes into the
 * first B*NH*T floats of ops.h's att buffer (backend note in ops.h and ops_cuda.h). The backward
 * is two kernels with no atomics (deterministic): one per query row writes dQ and
 * Di = sum_j P_ij dP_ij, one per key row writes dK and dV.
 * Tested by tests/kernels_cuda/test_ops_cuda.c against the CPU table at T = 1, 17, 1000 and
 * head dims 64 and 128 (label gpu).
 */
#include <float.h>

#include "kernels/cuda/cuda_internal.h"

namespace {

constexpr int WARPS = 4;

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Load the lane's EPL elements of a head row (zeros past hd). */
template <int EPL>
__device__ __forceinline__ void load_row(float (&r)[EPL], const float *p, int lane, int hd) {
#pragma unroll
    for (int e = 0; e < EPL; e++) {
        int d = lane + 32 * e;
        r[e] = d < hd ? p[d] : 0.0f;
    }
}

template <int EPL>
__device__ __forceinline__ float dot_row(const float (&a)[EPL], const float *p, int lane, int hd) {
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < EPL; e++) {
        int d = lane + 32 * e;
        if (d < hd) s += a[e] * p[d];
    }
    return warp_sum(s);
}

/* One warp per (b, h, t). */
template <int EPL>
__global__ void attention_forward_f32_kernel(float *out, float *lse, const float *qkv, int B, int T,
                                             int C, int NH) {
    int lane = threadIdx.x & 31;
    long long g = (long long)blockIdx.x * WARPS + (threadIdx.x >> 5);
    if (g >= (long long)B * NH * T) return;
    int t = (int)(g % T), bh = (int)(g / T), b = bh / NH, h = bh % NH;
    int hd = C / NH;
    float scale = (1.0f / sqrtf((float)hd));
    size_t C3 = 3 * (size_t)C;
    const float *base = qkv + (size_t)b * T * C3 + (size_t)h * hd;
    float q[EPL], acc[EPL];
    load_row<EPL>(q, base + (size_t)t * C3, lane, hd);
#pragma unroll
    for (int e = 0; e < EPL; e++)
        acc[e] = 0.0f;
    float m = -FLT_MAX, l = 0.0f;
    for (int j = 0; j <= t; j++) {
        const float *kj = base + (size_t)j * C3 + C, *vj = kj + C;
        float s = dot_row<EPL>(q, kj, lane, hd) * scale;
        float mn = fmaxf(m, s);
        float corr = expf(m - mn), p = expf(s - mn);
        l = l * corr + p;
#pragma unroll
        for (int e = 0; e < EPL; e++) {
            int d = lane + 32 * e;
            acc[e] = acc[e] * corr + (d < hd ? p * vj[d] : 0.0f);
        }
        m = mn;
    }
    float inv = 1.0f / l;
    float *o = out + ((size_t)b * T + t) * C + (size_t)h * hd;
#pragma unroll
    for (int e = 0; e < EPL; e++) {
        int d = lane + 32 * e;
        if (d < hd) o[d] = acc[e] * inv;
    }
    if (lane == 0) lse[((size_t)b * NH + h) * T + t] = m + logf(l);
}

/* One warp per query row i: Di = sum_j P_ij (dO_i . v_j), then dq_i += scale * sum_j
 * P_ij (dP_ij - Di) k_j. Writes Di for the dK/dV kernel. */
template <int EPL>
__global__ void attention_backward_dq_f32_kernel(float *dqkv, float *Dbuf, const float *dout,
                                                 const float *qkv, const float *lse, int B, int T,
                                                 int C, int NH) {
    int lane = threadIdx.x & 31;
    long long g = (long long)blockIdx.x * WARPS + (threadIdx.x >> 5);
    if (g >= (long long)B * NH * T) return;
    int i = (int)(g % T), bh = (int)(g / T), b = bh / NH, h = bh % NH;
    int hd = C / NH;
    float scale = (1.0f / sqrtf((float)hd));
    size_t C3 = 3 * (size_t)C;
    const float *base = qkv + (size_t)b * T * C3 + (size_t)h * hd;
    float q[EPL], go[EPL], dq[EPL];
    load_row<EPL>(q, base + (size_t)i * C3, lane, hd);
    load_row<EPL>(go, dout + ((size_t)b * T + i) * C + (size_t)h * hd, lane, hd);
    float L = lse[((size_t)b * NH + h) * T + i];
    float Di = 0.0f;
    for (int j = 0; j <= i; j++) {
        const float *kj = base + (size_t)j * C3 + C, *vj = kj + C;
        float p = expf(dot_row<EPL>(q, kj, lane, hd) * scale - L);
        Di += p * dot_row<EPL>(go, vj, lane, hd);
    }
#pragma unroll
    for (int e = 0; e < EPL; e++)
        dq[e] = 0.0f;
    for (int j = 0; j <= i; j++) {
        const float *kj = base + (size_t)j * C3 + C, *vj = kj + C;
        float p = expf(dot_row<EPL>(q, kj, lane, hd) * scale - L);
        float ds = p * (dot_row<EPL>(go, vj, lane, hd) - Di);
#pragma unroll
        for (int e = 0; e < EPL; e++) {
            int d = lane + 32 * e;
            if (d < hd) dq[e] += ds * kj[d];
        }
    }
    float *dqi = dqkv + (size_t)b * T * C3 + (size_t)i * C3 + (size_t)h * hd;
#pragma unroll
    for (int e = 0; e < EPL; e++) {
        int d = lane + 32 * e;
        if (d < hd) dqi[d] += scale * dq[e];
    }
    if (lane == 0) Dbuf[((size_t)b * NH + h) * T + i] = Di;
}

/* One warp per key row j: dv_j += sum_{i>=j} P_ij dO_i; dk_j += scale * sum_i dS_ij q_i. */
template <int EPL>
__global__ void attention_backward_dkv_f32_kernel(float *dqkv, const float *Dbuf, const float *dout,
                                                  const float *qkv, const float *lse, int B, int T,
                                                  int C, int NH) {
    int lane = threadIdx.x & 31;
    long long g = (long long)blockIdx.x * WARPS + (threadIdx.x >> 5);
    if (g >= (long long)B * NH * T) return;
    int j = (int)(g % T), bh = (int)(g / T), b = bh / NH, h = bh % NH;
    int hd = C / NH;
    float scale = (1.0f / sqrtf((float)hd));
    size_t C3 = 3 * (size_t)C;
    const float *base = qkv + (size_t)b * T * C3 + (size_t)h * hd;
    float k[EPL], v[EPL], dk[EPL], dv[EPL];
    load_row<EPL>(k, base + (size_t)j * C3 + C, lane, hd);
    load_row<EPL>(v, base + (size_t)j * C3 + 2 * (size_t)C, lane, hd);
#pragma unroll
    for (int e = 0; e < EPL; e++)
        dk[e] = dv[e] = 0.0f;
    const float *lrow = lse + ((size_t)b * NH + h) * T, *Drow = Dbuf + ((size_t)b * NH + h) * T;
    for (int i = j; i < T; i++) {
        const float *qi = base + (size_t)i * C3;
        const float *goi = dout + ((size_t)b * T + i) * C + (size_t)h * hd;
        float p = expf(dot_row<EPL>(k, qi, lane, hd) * scale - lrow[i]);
        float ds = p * (dot_row<EPL>(v, goi, lane, hd) - Drow[i]);
#pragma unroll
        for (int e = 0; e < EPL; e++) {
            int d = lane + 32 * e;
            if (d < hd) {
                dv[e] += p * goi[d];
                dk[e] += ds * qi[d];
            }
        }
    }
    float *dkj = dqkv + (size_t)b * T * C3 + (size_t)j * C3 + C + (size_t)h * hd;
    float *dvj = dkj + C;
#pragma unroll
    for (int e = 0; e < EPL; e++) {
        int d = lane + 32 * e;
        if (d < hd) {
            dkj[d] += scale * dk[e];
            dvj[d] += dv[e];
        }
    }
}

/* One warp per (b, h): store this step's k, v at row pos, then attend over rows 0..pos. Each
 * lane reads back only the elements it wrote itself, so no barrier is needed. */
template <int EPL>
__global__ void attention_decode_f32_kernel(float *out, float *kcache, float *vcache,
                                            const float *qkv, int pos, int Tmax, int B, int C,
                                            int NH) {
    int lane = threadIdx.x & 31;
    int g = blockIdx.x * WARPS + (threadIdx.x >> 5);
    if (g >= B * NH) return;
    int b = g / NH, h = g % NH, hd = C / NH;
    float scale = (1.0f / sqrtf((float)hd));
    const float *row = qkv + (size_t)b * 3 * C + (size_t)h * hd;
    float *kc = kcache + (size_t)b * Tmax * C + (size_t)h * hd;
    float *vc = vcache + (size_t)b * Tmax * C + (size_t)h * hd;
    float q[EPL], acc[EPL];
    load_row<EPL>(q, row, lane, hd);
#pragma unroll
    for (int e = 0; e < EPL; e++) {
        int d = lane + 32 * e;
        if (d < hd) {
            kc[(size_t)pos * C + d] = row[C + d];
            vc[(size_t)pos * C + d] = row[2 * C + d];
        }
        acc[e] = 0.0f;
    }
    float m = -FLT_MAX, l = 0.0f;
    for (int j = 0; j <= pos; j++) {
        const float *kj = kc + (size_t)j * C, *vj = vc + (size_t)j * C;
        float s = dot_row<EPL>(q, kj, lane, hd) * scale;
        float mn = fmaxf(m, s);
        float corr = expf(m - mn), p = expf(s - mn);
        l = l * corr + p;
#pragma unroll
        for (int e = 0; e < EPL; e++) {
            int d = lane + 32 * e;
            acc[e] = acc[e] * corr + (d < hd ? p * vj[d] : 0.0f);
        }
        m = mn;
    }
    float *o = out + (size_t)b * C + (size_t)h * hd;
#pragma unroll
    for (int e = 0; e < EPL; e++) {
        int d = lane + 32 * e;
        if (d < hd) o[d] = acc[e] / l;
    }
}

unsigned warp_blocks(long long rows) {
    return (unsigned)shoal_plan_ceil_div(rows, WARPS);
}

/* Dispatch on elements per lane: head dims 1..32, ..., 97..128. */
#define SHOAL_F32_DISPATCH(hd, KERNEL, GRID, STREAM, ...)                                          \
    do {                                                                                           \
        int epl_ = (int)shoal_plan_ceil_div((hd), 32);                                             \
        if (epl_ == 1)                                                                             \
            KERNEL<1><<<(GRID), WARPS * 32, 0, (STREAM)>>>(__VA_ARGS__);                           \
        else if (epl_ == 2)                                                                        \
            KERNEL<2><<<(GRID), WARPS * 32, 0, (STREAM)>>>(__VA_ARGS__);                           \
        else if (epl_ == 3)                                                                        \
            KERNEL<3><<<(GRID), WARPS * 32, 0, (STREAM)>>>(__VA_ARGS__);                           \
        else                                                                                       \
            KERNEL<4><<<(GRID), WARPS * 32, 0, (STREAM)>>>(__VA_ARGS__);                           \
    } while (0)

} // namespace

extern "C" {

shoal_status shoal_attention_forward_cuda(shoal_ctx *ctx, float *out, float *att, const float *qkv,
                                          int B, int T, int C, int NH) {
    SHOAL_CHECK(shoal_plan_attention_check(SHOAL_FA_PATH_F32, B, T, C, NH, 0));
    unsigned grid = warp_blocks((long long)B * NH * T);
    SHOAL_F32_DISPATCH(C / NH, attention_forward_f32_kernel, grid, SHOAL_CUDA_STREAM(ctx), out, att,
                       qkv, B, T, C, NH);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

shoal_status shoal_attention_backward_cuda(shoal_ctx *ctx, float *dqkv, const float *dout,
                                           const float *qkv, const float *att, int B, int T, int C,
                                           int NH) {
    SHOAL_CHECK(shoal_plan_attention_check(SHOAL_FA_PATH_F32, B, T, C, NH, 0));
    if (!dqkv) return SHOAL_OK;
    void *scratch = NULL;
    SHOAL_CHECK(shoal_cuda_scratch(ctx, (size_t)B * NH * T * sizeof(float), &scratch));
    float *Dbuf = (float *)scratch;
    cudaStream_t s = SHOAL_CUDA_STREAM(ctx);
    unsigned grid = warp_blocks((long long)B * NH * T);
    SHOAL_F32_DISPATCH(C / NH, attention_backward_dq_f32_kernel, grid, s, dqkv, Dbuf, dout, qkv,
                       att, B, T, C, NH);
    SHOAL_CUDA_LAUNCHED();
    SHOAL_F32_DISPATCH(C / NH, attention_backward_dkv_f32_kernel, grid, s, dqkv, Dbuf, dout, qkv,
                       att, B, T, C, NH);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

shoal_status shoal_attention_decode_cuda(shoal_ctx *ctx, float *out, float *kcache, float *vcache,
                                         const float *qkv, int pos, int Tmax, int B, int C,
                                         int NH) {
    SHOAL_CHECK(shoal_plan_attention_check(SHOAL_FA_PATH_F32, B, Tmax, C, NH, 0));
    if (pos < 0 || pos >= Tmax) {
        SHOAL_LOG_ERROR("attention_decode: pos %d outside the cache (Tmax %d)", pos, Tmax);
        return SHOAL_ERR_INVALID_ARG;
    }
    unsigned grid = warp_blocks((long long)B * NH);
    SHOAL_F32_DISPATCH(C / NH, attention_decode_f32_kernel, grid, SHOAL_CUDA_STREAM(ctx), out,
                       kcache, vcache, qkv, pos, Tmax, B, C, NH);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

} // extern "C"
