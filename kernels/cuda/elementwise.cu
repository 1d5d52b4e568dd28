/* elementwise.cu: the memory-bound ops of the CUDA backend: embedding forward/backward, GELU,
 * residual, scale, zero, fused AdamW (fp32 and mixed bf16), the squared norm for gradient
 * clipping, fp32 <-> bf16 conversion.
 *
 * Why so: each op is one pass over its tensors with grid-stride loops (a fixed grid, so the
 * same work goes to the same thread every run). Nothing uses floating-point atomics: the
 * embedding backward walks positions in order per (column, token bucket), and norm_sq sums a
 * fixed number of per-block partials in double in a fixed order, so results are bit-identical
 * run to run. Semantics are ops.h's (accumulate += into gradients, NULL = skip).
 * Tested by tests/kernels_cuda/test_ops_cuda.c against the CPU table (label gpu).
 */
#include <cuda_bf16.h>

#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/cuda_types.cuh"

namespace {

using shoal_cuda::from_f32;
using shoal_cuda::to_f32;
typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float gelu_tanh(float x) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    float u = k * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(u));
}

__device__ __forceinline__ float gelu_tanh_grad(float x) {
    const float k = 0.7978845608028654f;
    float x3 = x * x * x;
    float u = k * (x + 0.044715f * x3);
    float th = tanhf(u);
    float sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + 0.5f * x * sech2 * k * (1.0f + 3.0f * 0.044715f * x * x);
}

template <typename TO>
__global__ void encoder_forward_kernel(TO *out, const int32_t *tokens, const float *wte,
                                       const float *wpe, int BT, int T, int C, int pos0) {
    size_t n = (size_t)BT * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t bt = i / C;
        int c = (int)(i % C);
        int t = (int)(bt % T);
        out[i] = from_f32<TO>(wte[(size_t)tokens[bt] * C + c] + wpe[(size_t)(pos0 + t) * C + c]);
    }
}

/* dwpe[t,c] += sum_b dout[b,t,c]: one thread per (t, c), b in order. */
template <typename TI>
__global__ void encoder_backward_wpe_kernel(float *dwpe, const TI *dout, int B, int T, int C) {
    size_t n = (size_t)T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float acc = 0.0f;
        for (int b = 0; b < B; b++)
            acc += to_f32(dout[(size_t)b * n + i]);
        dwpe[i] += acc;
    }
}

/* dwte[tok,c] += dout[p,c] for every position p: thread (c, bucket) handles the positions whose
 * token falls in its bucket, in position order. Tokens of one bucket never meet another
 * bucket's thread, so no two threads write the same dwte element. */
template <typename TI>
__global__ void encoder_backward_wte_kernel(float *dwte, const TI *dout, const int32_t *tokens,
                                            int BT, int C, int buckets) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int bucket = blockIdx.y;
    if (c >= C) return;
    for (int p = 0; p < BT; p++) {
        int tok = tokens[p]; /* same for the whole warp: a broadcast load */
        if (tok % buckets != bucket) continue;
        dwte[(size_t)tok * C + c] += to_f32(dout[(size_t)p * C + c]);
    }
}

__global__ void gelu_forward_kernel(float *out, const float *inp, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = gelu_tanh(inp[i]);
}

template <typename T>
__global__ void gelu_backward_kernel(T *dinp, const T *dout, const T *inp, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dinp[i] = from_f32<T>(to_f32(dinp[i]) + gelu_tanh_grad(to_f32(inp[i])) * to_f32(dout[i]));
}

template <typename T>
__global__ void residual_forward_kernel(T *out, const T *a, const T *b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = from_f32<T>(to_f32(a[i]) + to_f32(b[i]));
}

template <typename T>
__global__ void residual_backward_kernel(T *da, T *db, const T *dout, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float g = to_f32(dout[i]);
        if (da) da[i] = from_f32<T>(to_f32(da[i]) + g);
        if (db) db[i] = from_f32<T>(to_f32(db[i]) + g);
    }
}

__global__ void scale_kernel(float *x, size_t n, float s) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] *= s;
}

/* AdamW in torch.optim.AdamW's single-tensor order (the CPU twin uses the same): decoupled
 * decay, lerp into m, v, then p -= step_size * m / (sqrt(v) / sqrt(bc2) + eps), with
 * step_size = lr / bc1, sqrt(bc2) and decay = 1 - lr*wd computed on the host in double. */
__global__ void adamw_kernel(float *params, __nv_bfloat16 *params_bf16, const float *grads,
                             float *m, float *v, size_t n, float b1, float b2, float eps,
                             float decay, float step_size, float bc2_sqrt, float grad_scale) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float g = grads[i] * grad_scale;
        float mi = m[i] + (1.0f - b1) * (g - m[i]);
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        float p = params[i] * decay - step_size * (mi / denom);
        params[i] = p;
        if (params_bf16) params_bf16[i] = __float2bfloat16_rn(p);
    }
}

/* Stage 1 of norm_sq: each block sums its grid-stride share in double, tree-reduced in shared
 * memory (fixed order), into partial[blockIdx.x]. */
__global__ void norm_sq_partial_kernel(double *partial, const float *x, size_t n) {
    __shared__ double sh[SHOAL_EW_THREADS];
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        double xi = x[i];
        acc += xi * xi;
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

/* Stage 2: one block sums the partials in a fixed order. */
__global__ void norm_sq_final_kernel(double *out, const double *partial, int nparts) {
    __shared__ double sh[SHOAL_EW_THREADS];
    double acc = 0.0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x)
        acc += partial[i];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = sh[0];
}

__global__ void f32_to_bf16_kernel(__nv_bfloat16 *out, const float *inp, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16_rn(inp[i]);
}

__global__ void bf16_to_f32_kernel(float *out, const __nv_bfloat16 *inp, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = __bfloat162float(inp[i]);
}

/* Grid for n elements: enough blocks to cover n at 4 elements per thread, at most 4096. */
unsigned ew_blocks(size_t n) {
    return shoal_plan_blocks(n, SHOAL_EW_THREADS, 4, 4096);
}

template <typename TO>
shoal_status encoder_forward_launch(shoal_ctx *ctx, TO *out, const int32_t *tokens,
                                    const float *wte, const float *wpe, int B, int T, int C,
                                    int pos0) {
    size_t n = (size_t)B * T * C;
    if (n == 0) return SHOAL_OK;
    encoder_forward_kernel<TO><<<ew_blocks(n), SHOAL_EW_THREADS, 0, SHOAL_CUDA_STREAM(ctx)>>>(
        out, tokens, wte, wpe, B * T, T, C, pos0);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

template <typename TI>
shoal_status encoder_backward_launch(shoal_ctx *ctx, float *dwte, float *dwpe, const TI *dout,
                                     const int32_t *tokens, int B, int T, int C) {
    if ((size_t)B * T * C == 0) return SHOAL_OK;
    cudaStream_t s = SHOAL_CUDA_STREAM(ctx);
    if (dwpe) {
        encoder_backward_wpe_kernel<TI>
            <<<ew_blocks((size_t)T * C), SHOAL_EW_THREADS, 0, s>>>(dwpe, dout, B, T, C);
        SHOAL_CUDA_LAUNCHED();
    }
    if (dwte) {
        dim3 grid((unsigned)shoal_plan_ceil_div(C, 128), SHOAL_ENC_BUCKETS);
        encoder_backward_wte_kernel<TI>
            <<<grid, 128, 0, s>>>(dwte, dout, tokens, B * T, C, SHOAL_ENC_BUCKETS);
        SHOAL_CUDA_LAUNCHED();
    }
    return SHOAL_OK;
}

template <typename T>
shoal_status gelu_backward_launch(shoal_ctx *ctx, T *dinp, const T *dout, const T *inp, size_t n) {
    if (n == 0 || !dinp) return SHOAL_OK;
    gelu_backward_kernel<T>
        <<<ew_blocks(n), SHOAL_EW_THREADS, 0, SHOAL_CUDA_STREAM(ctx)>>>(dinp, dout, inp, n);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

template <typename T>
shoal_status residual_forward_launch(shoal_ctx *ctx, T *out, const T *a, const T *b, size_t n) {
    if (n == 0) return SHOAL_OK;
    residual_forward_kernel<T>
        <<<ew_blocks(n), SHOAL_EW_THREADS, 0, SHOAL_CUDA_STREAM(ctx)>>>(out, a, b, n);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

template <typename T>
shoal_status residual_backward_launch(shoal_ctx *ctx, T *da, T *db, const T *dout, size_t n) {
    if (n == 0 || (!da && !db)) return SHOAL_OK;
    residual_backward_kernel<T>
        <<<ew_blocks(n), SHOAL_EW_THREADS, 0, SHOAL_CUDA_STREAM(ctx)>>>(da, db, dout, n);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

} // namespace

extern "C" {

shoal_status shoal_encoder_forward_cuda(shoal_ctx *ctx, float *out, const int32_t *tokens,
                                        const float *wte, const float *wpe, int B, int T, int C,
                                        int pos0) {
    return encoder_forward_launch<float>(ctx, out, tokens, wte, wpe, B, T, C, pos0);
}

shoal_status shoal_encoder_backward_cuda(shoal_ctx *ctx, float *dwte, float *dwpe,
                                         const float *dout, const int32_t *tokens, int B, int T,
                                         int C) {
    return encoder_backward_launch<float>(ctx, dwte, dwpe, dout, tokens, B, T, C);
}

shoal_status shoal_gelu_forward_cuda(shoal_ctx *ctx, float *out, const float *inp, size_t n) {
    if (n == 0) return SHOAL_OK;
    gelu_forward_kernel<<<ew_blocks(n), SHOAL_EW_THREADS, 0, SHOAL_CUDA_STREAM(ctx)>>>(out, inp, n);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

shoal_status shoal_gelu_backward_cuda(shoal_ctx *ctx, float *dinp, const float *dout,
                                      const float *inp, size_t n) {
    return gelu_backward_launch<float>(ctx, dinp, dout, inp, n);
}

shoal_status shoal_residual_forward_cuda(shoal_ctx *ctx, float *out, const float *a, const float *b,
                                         size_t n) {
    return residual_forward_launch<float>(ctx, out, a, b, n);
}

shoal_status shoal_residual_backward_cuda(shoal_ctx *ctx, float *da, float *db, const float *dout,
                                          size_t n) {
    return residual_backward_launch<float>(ctx, da, db, dout, n);
}

shoal_status shoal_scale_cuda(shoal_ctx *ctx, float *x, size_t n, float s) {
    if (n == 0) return SHOAL_OK;
    scale_kernel<<<ew_blocks(n), SHOAL_EW_THREADS, 0, SHOAL_CUDA_STREAM(ctx)>>>(x, n, s);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

shoal_status shoal_zero_cuda(shoal_ctx *ctx, void *p, size_t bytes) {
    if (bytes == 0) return SHOAL_OK;
    SHOAL_CUDA_TRY(cudaMemsetAsync(p, 0, bytes, SHOAL_CUDA_STREAM(ctx)));
    return SHOAL_OK;
}

static shoal_status adamw_launch(shoal_ctx *ctx, float *params, __nv_bfloat16 *pbf16,
                                 const float *grads, float *m, float *v, size_t n, float lr,
                                 float beta1, float beta2, float eps, float weight_decay, int step,
                                 float grad_scale) {
    if (n == 0) return SHOAL_OK;
    if (step < 1) {
        SHOAL_LOG_ERROR("adamw: step %d must be >= 1", step);
        return SHOAL_ERR_INVALID_ARG;
    }
    double bc1 = 1.0 - pow((double)beta1, (double)step);
    double bc2 = 1.0 - pow((double)beta2, (double)step);
    float step_size = (float)((double)lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    float decay = 1.0f - lr * weight_decay;
    adamw_kernel<<<ew_blocks(n), SHOAL_EW_THREADS, 0, SHOAL_CUDA_STREAM(ctx)>>>(
        params, pbf16, grads, m, v, n, beta1, beta2, eps, decay, step_size, bc2_sqrt, grad_scale);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

shoal_status shoal_adamw_update_cuda(shoal_ctx *ctx, float *params, const float *grads, float *m,
                                     float *v, size_t n, float lr, float beta1, float beta2,
                                     float eps, float weight_decay, int step, float grad_scale) {
    return adamw_launch(ctx, params, NULL, grads, m, v, n, lr, beta1, beta2, eps, weight_decay,
                        step, grad_scale);
}

shoal_status shoal_adamw_update_mixed_cuda(shoal_ctx *ctx, float *master, shoal_bf16 *params_bf16,
                                           const float *grads, float *m, float *v, size_t n,
                                           float lr, float beta1, float beta2, float eps,
                                           float weight_decay, int step, float grad_scale) {
    return adamw_launch(ctx, master, (__nv_bfloat16 *)params_bf16, grads, m, v, n, lr, beta1, beta2,
                        eps, weight_decay, step, grad_scale);
}

shoal_status shoal_norm_sq_cuda(shoal_ctx *ctx, const float *x, size_t n, double *out) {
    if (!out) return SHOAL_ERR_INVALID_ARG;
    if (n == 0) {
        *out = 0.0;
        return SHOAL_OK;
    }
    void *scratch = NULL;
    SHOAL_CHECK(shoal_cuda_scratch(ctx, (SHOAL_REDUCE_BLOCKS + 1) * sizeof(double), &scratch));
    double *partial = (double *)scratch;
    double *total = partial + SHOAL_REDUCE_BLOCKS;
    cudaStream_t s = SHOAL_CUDA_STREAM(ctx);
    /* Always SHOAL_REDUCE_BLOCKS blocks (empty ones add 0): the order depends on n only. */
    norm_sq_partial_kernel<<<SHOAL_REDUCE_BLOCKS, SHOAL_EW_THREADS, 0, s>>>(partial, x, n);
    SHOAL_CUDA_LAUNCHED();
    norm_sq_final_kernel<<<1, SHOAL_EW_THREADS, 0, s>>>(total, partial, SHOAL_REDUCE_BLOCKS);
    SHOAL_CUDA_LAUNCHED();
    SHOAL_CUDA_TRY(cudaMemcpyAsync(out, total, sizeof(double), cudaMemcpyDeviceToHost, s));
    SHOAL_CUDA_TRY(cudaStreamSynchronize(s));
    return SHOAL_OK;
}

shoal_status shoal_cuda_f32_to_bf16(shoal_ctx *ctx, shoal_bf16 *out, const float *inp, size_t n) {
    if (n == 0) return SHOAL_OK;
    f32_to_bf16_kernel<<<ew_blocks(n), SHOAL_EW_THREADS, 0, SHOAL_CUDA_STREAM(ctx)>>>(
        (__nv_bfloat16 *)out, inp, n);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

shoal_status shoal_cuda_bf16_to_f32(shoal_ctx *ctx, float *out, const shoal_bf16 *inp, size_t n) {
    if (n == 0) return SHOAL_OK;
    bf16_to_f32_kernel<<<ew_blocks(n), SHOAL_EW_THREADS, 0, SHOAL_CUDA_STREAM(ctx)>>>(
        out, (const __nv_bfloat16 *)inp, n);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

shoal_status shoal_encoder_forward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *out, const int32_t *tokens,
                                             const float *wte, const float *wpe, int B, int T,
                                             int C, int pos0) {
    return encoder_forward_launch<bf16>(ctx, (bf16 *)out, tokens, wte, wpe, B, T, C, pos0);
}

shoal_status shoal_encoder_backward_bf16_cuda(shoal_ctx *ctx, float *dwte, float *dwpe,
                                              const shoal_bf16 *dout, const int32_t *tokens, int B,
                                              int T, int C) {
    return encoder_backward_launch<bf16>(ctx, dwte, dwpe, (const bf16 *)dout, tokens, B, T, C);
}

shoal_status shoal_gelu_backward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *dinp, const shoal_bf16 *dout,
                                           const shoal_bf16 *inp, size_t n) {
    return gelu_backward_launch<bf16>(ctx, (bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp, n);
}

shoal_status shoal_residual_forward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *out, const shoal_bf16 *a,
                                              const shoal_bf16 *b, size_t n) {
    return residual_forward_launch<bf16>(ctx, (bf16 *)out, (const bf16 *)a, (const bf16 *)b, n);
}

shoal_status shoal_residual_backward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *da, shoal_bf16 *db,
                                               const shoal_bf16 *dout, size_t n) {
    return residual_backward_launch<bf16>(ctx, (bf16 *)da, (bf16 *)db, (const bf16 *)dout, n);
}

} // extern "C"
