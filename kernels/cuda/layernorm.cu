/* layernorm.cu: LayerNorm forward/backward, softmax cross-entropy forward/backward, and the
 * deterministic column sums (bias gradients, LayerNorm weight gradients).
 *
 * Why so: a row op gets one warp per row (rows are C = 768..1600 wide: a warp strides it with
 * coalesced loads and reduces with shuffles); cross-entropy rows are V = 50257 wide and get a
 * block each. Column sums (dbias, dw, db) are reduced without atomics: slices of
 * SHOAL_COLSUM_ROWS rows write partials, then one thread per column adds the slices in order,
 * so the result is the same bits every run.
 * Tested by tests/kernels_cuda/test_ops_cuda.c against the CPU table (label gpu).
 */
#include <cuda_bf16.h>
#include <float.h>

#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/cuda_types.cuh"

namespace {

using shoal_cuda::from_f32;
using shoal_cuda::to_f32;
typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide sum/max for blocks of 256 threads (8 warps); every thread gets the result. */
__device__ float block_reduce(float v, bool is_max, float *sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = is_max ? warp_max(v) : warp_sum(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    float r = is_max ? -FLT_MAX : 0.0f;
    for (int i = 0; i < nw; i++)
        r = is_max ? fmaxf(r, sh[i]) : r + sh[i];
    __syncthreads();
    return r;
}

template <typename T>
__global__ void layernorm_forward_kernel(T *out, float *mean, float *rstd, const T *inp, const T *w,
                                         const T *b, int N, int C, float eps) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= N) return;
    const T *x = inp + (size_t)row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32)
        s += to_f32(x[c]);
    float m = warp_sum(s) / C;
    float v = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = to_f32(x[c]) - m;
        v += d * d;
    }
    float r = 1.0f / sqrtf(warp_sum(v) / C + eps);
    T *o = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32)
        o[c] = from_f32<T>((to_f32(x[c]) - m) * r * to_f32(w[c]) + to_f32(b[c]));
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = r;
    }
}

template <typename T>
__global__ void layernorm_backward_dinp_kernel(T *dinp, const T *dout, const T *inp, const T *w,
                                               const float *mean, const float *rstd, int N, int C) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= N) return;
    const T *x = inp + (size_t)row * C, *g = dout + (size_t)row * C;
    float m = mean[row], r = rstd[row];
    float a = 0.0f, bsum = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float dn = to_f32(w[c]) * to_f32(g[c]);
        a += dn;
        bsum += dn * (to_f32(x[c]) - m) * r;
    }
    float dn_mean = warp_sum(a) / C, dn_xhat_mean = warp_sum(bsum) / C;
    T *d = dinp + (size_t)row * C;
    for (int c = lane; c < C; c += 32) {
        float xhat = (to_f32(x[c]) - m) * r;
        float upd = r * (to_f32(w[c]) * to_f32(g[c]) - dn_mean - xhat * dn_xhat_mean);
        d[c] = from_f32<T>(to_f32(d[c]) + upd);
    }
}

/* Partial column sums over row slice blockIdx.y: pb[s,c] = sum dout[n,c]; with inp (layernorm)
 * also pw[s,c] = sum dout[n,c] * xhat[n,c]. */
template <typename T>
__global__ void colsum_partial_kernel(float *pw, float *pb, const T *dout, const T *inp,
                                      const float *mean, const float *rstd, int N, int C,
                                      int rows_per_slice) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int s = blockIdx.y;
    if (c >= C) return;
    int n0 = s * rows_per_slice, n1 = min(N, n0 + rows_per_slice);
    float accb = 0.0f, accw = 0.0f;
    for (int n = n0; n < n1; n++) {
        float g = to_f32(dout[(size_t)n * C + c]);
        accb += g;
        if (inp) accw += g * (to_f32(inp[(size_t)n * C + c]) - mean[n]) * rstd[n];
    }
    pb[(size_t)s * C + c] = accb;
    if (inp) pw[(size_t)s * C + c] = accw;
}

__global__ void colsum_final_kernel(float *out, const float *partial, int slices, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float acc = 0.0f;
    for (int s = 0; s < slices; s++)
        acc += partial[(size_t)s * C + c];
    out[c] += acc;
}

/* Cross-entropy forward: one block per row. */
template <typename T>
__global__ void crossentropy_forward_kernel(float *losses, float *lse, const T *logits,
                                            const int32_t *targets, int V) {
    __shared__ float sh[32];
    int row = blockIdx.x;
    const T *x = logits + (size_t)row * V;
    float mx = -FLT_MAX;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        mx = fmaxf(mx, to_f32(x[i]));
    mx = block_reduce(mx, true, sh);
    float s = 0.0f;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        s += expf(to_f32(x[i]) - mx);
    s = block_reduce(s, false, sh);
    if (threadIdx.x == 0) {
        float l = mx + logf(s);
        if (lse) lse[row] = l;
        int t = targets[row];
        losses[row] = t < 0 ? 0.0f : l - to_f32(x[t]);
    }
}

/* Cross-entropy backward: OVERWRITES dlogits (may alias logits: each element is read and then
 * written by the same thread). */
template <typename T>
__global__ void crossentropy_backward_kernel(T *dlogits, const T *logits, const float *lse,
                                             const int32_t *targets, const uint8_t *mask,
                                             float scale, int V) {
    int row = blockIdx.x;
    int t = targets[row];
    float wgt = (t < 0 || (mask && !mask[row])) ? 0.0f : scale; /* as the CPU twin: mask is 0/1 */
    float l = lse[row];
    const T *x = logits + (size_t)row * V;
    T *d = dlogits + (size_t)row * V;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float p = expf(to_f32(x[i]) - l);
        d[i] = from_f32<T>((p - (i == t ? 1.0f : 0.0f)) * wgt);
    }
}

int colsum_slices(int N) {
    long long s = shoal_plan_ceil_div(N, SHOAL_COLSUM_ROWS);
    if (s > SHOAL_COLSUM_MAX_SLICES) s = SHOAL_COLSUM_MAX_SLICES;
    return s < 1 ? 1 : (int)s;
}

template <typename T>
shoal_status colsum_launch(shoal_ctx *ctx, float *dw, float *db, const T *dout, const T *inp,
                           const float *mean, const float *rstd, int N, int C) {
    if (N <= 0 || C <= 0 || (!dw && !db)) return SHOAL_OK;
    int slices = colsum_slices(N);
    int rows = (int)shoal_plan_ceil_div(N, slices);
    void *scratch = NULL;
    SHOAL_CHECK(shoal_cuda_scratch(ctx, 2 * (size_t)slices * C * sizeof(float), &scratch));
    float *pb = (float *)scratch, *pw = pb + (size_t)slices * C;
    cudaStream_t s = SHOAL_CUDA_STREAM(ctx);
    dim3 grid((unsigned)shoal_plan_ceil_div(C, 256), (unsigned)slices);
    colsum_partial_kernel<T>
        <<<grid, 256, 0, s>>>(dw ? pw : NULL, pb, dout, dw ? inp : NULL, mean, rstd, N, C, rows);
    SHOAL_CUDA_LAUNCHED();
    unsigned g1 = (unsigned)shoal_plan_ceil_div(C, 256);
    if (db) {
        colsum_final_kernel<<<g1, 256, 0, s>>>(db, pb, slices, C);
        SHOAL_CUDA_LAUNCHED();
    }
    if (dw) {
        colsum_final_kernel<<<g1, 256, 0, s>>>(dw, pw, slices, C);
        SHOAL_CUDA_LAUNCHED();
    }
    return SHOAL_OK;
}

template <typename T>
shoal_status layernorm_forward_launch(shoal_ctx *ctx, T *out, float *mean, float *rstd,
                                      const T *inp, const T *w, const T *b, int N, int C,
                                      float eps) {
    if (N <= 0) return SHOAL_OK;
    unsigned blocks = (unsigned)shoal_plan_ceil_div(N, 8);
    layernorm_forward_kernel<T>
        <<<blocks, 256, 0, SHOAL_CUDA_STREAM(ctx)>>>(out, mean, rstd, inp, w, b, N, C, eps);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

template <typename T>
shoal_status layernorm_backward_launch(shoal_ctx *ctx, T *dinp, float *dw, float *db, const T *dout,
                                       const T *inp, const T *w, const float *mean,
                                       const float *rstd, int N, int C) {
    if (N <= 0) return SHOAL_OK;
    if (dinp) {
        unsigned blocks = (unsigned)shoal_plan_ceil_div(N, 8);
        layernorm_backward_dinp_kernel<T>
            <<<blocks, 256, 0, SHOAL_CUDA_STREAM(ctx)>>>(dinp, dout, inp, w, mean, rstd, N, C);
        SHOAL_CUDA_LAUNCHED();
    }
    return colsum_launch<T>(ctx, dw, db, dout, inp, mean, rstd, N, C);
}

template <typename T>
shoal_status crossentropy_forward_launch(shoal_ctx *ctx, float *losses, float *lse, const T *logits,
                                         const int32_t *targets, int N, int V) {
    if (N <= 0) return SHOAL_OK;
    crossentropy_forward_kernel<T>
        <<<N, 256, 0, SHOAL_CUDA_STREAM(ctx)>>>(losses, lse, logits, targets, V);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

template <typename T>
shoal_status crossentropy_backward_launch(shoal_ctx *ctx, T *dlogits, const T *logits,
                                          const float *lse, const int32_t *targets,
                                          const uint8_t *mask, float scale, int N, int V) {
    if (N <= 0) return SHOAL_OK;
    crossentropy_backward_kernel<T>
        <<<N, 256, 0, SHOAL_CUDA_STREAM(ctx)>>>(dlogits, logits, lse, targets, mask, scale, V);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

} // namespace

extern "C" {

shoal_status shoal_cuda_colsum_f32(shoal_ctx *ctx, float *out, const float *x, int N, int C) {
    return colsum_launch<float>(ctx, NULL, out, x, (const float *)NULL, NULL, NULL, N, C);
}

shoal_status shoal_cuda_colsum_bf16(shoal_ctx *ctx, float *out, const shoal_bf16 *x, int N, int C) {
    return colsum_launch<bf16>(ctx, NULL, out, (const bf16 *)x, (const bf16 *)NULL, NULL, NULL, N,
                               C);
}

shoal_status shoal_layernorm_forward_cuda(shoal_ctx *ctx, float *out, float *mean, float *rstd,
                                          const float *inp, const float *w, const float *b, int N,
                                          int C, float eps) {
    return layernorm_forward_launch<float>(ctx, out, mean, rstd, inp, w, b, N, C, eps);
}

shoal_status shoal_layernorm_backward_cuda(shoal_ctx *ctx, float *dinp, float *dw, float *db,
                                           const float *dout, const float *inp, const float *w,
                                           const float *mean, const float *rstd, int N, int C) {
    return layernorm_backward_launch<float>(ctx, dinp, dw, db, dout, inp, w, mean, rstd, N, C);
}

shoal_status shoal_crossentropy_forward_cuda(shoal_ctx *ctx, float *losses, float *lse,
                                             const float *logits, const int32_t *targets, int N,
                                             int V) {
    return crossentropy_forward_launch<float>(ctx, losses, lse, logits, targets, N, V);
}

shoal_status shoal_crossentropy_backward_cuda(shoal_ctx *ctx, float *dlogits, const float *logits,
                                              const float *lse, const int32_t *targets,
                                              const uint8_t *mask, float scale, int N, int V) {
    return crossentropy_backward_launch<float>(ctx, dlogits, logits, lse, targets, mask, scale, N,
                                               V);
}

shoal_status shoal_layernorm_forward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *out, float *mean,
                                               float *rstd, const shoal_bf16 *inp,
                                               const shoal_bf16 *w, const shoal_bf16 *b, int N,
                                               int C, float eps) {
    return layernorm_forward_launch<bf16>(ctx, (bf16 *)out, mean, rstd, (const bf16 *)inp,
                                          (const bf16 *)w, (const bf16 *)b, N, C, eps);
}

shoal_status shoal_layernorm_backward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *dinp, float *dw,
                                                float *db, const shoal_bf16 *dout,
                                                const shoal_bf16 *inp, const shoal_bf16 *w,
                                                const float *mean, const float *rstd, int N,
                                                int C) {
    return layernorm_backward_launch<bf16>(ctx, (bf16 *)dinp, dw, db, (const bf16 *)dout,
                                           (const bf16 *)inp, (const bf16 *)w, mean, rstd, N, C);
}

shoal_status shoal_crossentropy_forward_bf16_cuda(shoal_ctx *ctx, float *losses, float *lse,
                                                  const shoal_bf16 *logits, const int32_t *targets,
                                                  int N, int V) {
    return crossentropy_forward_launch<bf16>(ctx, losses, lse, (const bf16 *)logits, targets, N, V);
}

shoal_status shoal_crossentropy_backward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *dlogits,
                                                   const shoal_bf16 *logits, const float *lse,
                                                   const int32_t *targets, const uint8_t *mask,
                                                   float scale, int N, int V) {
    return crossentropy_backward_launch<bf16>(ctx, (bf16 *)dlogits, (const bf16 *)logits, lse,
                                              targets, mask, scale, N, V);
}

} // extern "C"
