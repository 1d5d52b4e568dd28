/* context.c: CUDA device detection, the context (stream, cuBLASLt handle, workspace) and the op
 * table of the CUDA backend.
 *
 * Why plain C: nothing here launches a kernel; the runtime and cuBLASLt C APIs are enough, and
 * gcc's -Werror warnings then cover this code. Device detection treats every failure of
 * cudaGetDeviceCount (cudaErrorInsufficientDriver on machines without a driver,
 * cudaErrorNoDevice, ...) as "0 devices", so CPU-only CI skips GPU tests instead of failing.
 * Tested by tests/kernels_cuda/test_cuda_device.c (unit: runs everywhere, expects 0 here) and
 * through every op in test_ops_cuda.c (gpu).
 */
#include <cublasLt.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"

int shoal_cuda_device_count(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* clear the sticky-free error so later calls start clean */
        return 0;
    }
    return n < 0 ? 0 : n;
}

/* Device memory. cudaMalloc (256-byte aligned) zeroed on the context's stream and waited for,
 * so a buffer is ready when alloc returns. Copies are stream-ordered with the ops and then
 * waited for: the host side of h2d/d2h may be pageable memory the caller reuses at once. */
static shoal_status cuda_mem_alloc(shoal_ctx *ctx, void **out, size_t bytes) {
    *out = NULL;
    cudaError_t e = cudaMalloc(out, bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        *out = NULL;
        SHOAL_LOG_ERROR("cudaMalloc(%zu bytes): %s", bytes, cudaGetErrorString(e));
        return e == cudaErrorMemoryAllocation ? SHOAL_ERR_NOMEM : SHOAL_ERR_CUDA;
    }
    e = cudaMemsetAsync(*out, 0, bytes, SHOAL_CUDA_STREAM(ctx));
    if (e == cudaSuccess) e = cudaStreamSynchronize(SHOAL_CUDA_STREAM(ctx));
    if (e != cudaSuccess) {
        SHOAL_LOG_ERROR("zeroing %zu bytes of device memory: %s", bytes, cudaGetErrorString(e));
        cudaFree(*out);
        *out = NULL;
        return SHOAL_ERR_CUDA;
    }
    return SHOAL_OK;
}

static void cuda_mem_free(shoal_ctx *ctx, void *p) {
    if (!p) return;
    /* cudaFree waits for the device, so work queued on p finishes first */
    if (ctx && ctx->stream) cudaStreamSynchronize(SHOAL_CUDA_STREAM(ctx));
    cudaFree(p);
}

static shoal_status cuda_copy(shoal_ctx *ctx, void *dst, const void *src, size_t bytes,
                              enum cudaMemcpyKind kind) {
    SHOAL_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, kind, SHOAL_CUDA_STREAM(ctx)));
    SHOAL_CUDA_TRY(cudaStreamSynchronize(SHOAL_CUDA_STREAM(ctx)));
    return SHOAL_OK;
}

static shoal_status cuda_h2d(shoal_ctx *ctx, void *dst, const void *src, size_t bytes) {
    return cuda_copy(ctx, dst, src, bytes, cudaMemcpyHostToDevice);
}

static shoal_status cuda_d2h(shoal_ctx *ctx, void *dst, const void *src, size_t bytes) {
    return cuda_copy(ctx, dst, src, bytes, cudaMemcpyDeviceToHost);
}

/* device to device stays asynchronous: stream order is enough for everything after it */
static shoal_status cuda_d2d(shoal_ctx *ctx, void *dst, const void *src, size_t bytes) {
    SHOAL_CUDA_TRY(
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, SHOAL_CUDA_STREAM(ctx)));
    return SHOAL_OK;
}

static const shoal_kernels cuda_table = {
    .name = "cuda",
    .encoder_forward = shoal_encoder_forward_cuda,
    .encoder_backward = shoal_encoder_backward_cuda,
    .layernorm_forward = shoal_layernorm_forward_cuda,
    .layernorm_backward = shoal_layernorm_backward_cuda,
    .matmul_forward = shoal_matmul_forward_cuda,
    .matmul_backward = shoal_matmul_backward_cuda,
    .attention_forward = shoal_attention_forward_cuda,
    .attention_backward = shoal_attention_backward_cuda,
    .attention_decode = shoal_attention_decode_cuda,
    .gelu_forward = shoal_gelu_forward_cuda,
    .gelu_backward = shoal_gelu_backward_cuda,
    .residual_forward = shoal_residual_forward_cuda,
    .residual_backward = shoal_residual_backward_cuda,
    .crossentropy_forward = shoal_crossentropy_forward_cuda,
    .crossentropy_backward = shoal_crossentropy_backward_cuda,
    .adamw_update = shoal_adamw_update_cuda,
    .norm_sq = shoal_norm_sq_cuda,
    .scale = shoal_scale_cuda,
    .zero = shoal_zero_cuda,
    .mem_alloc = cuda_mem_alloc,
    .mem_free = cuda_mem_free,
    .copy_h2d = cuda_h2d,
    .copy_d2h = cuda_d2h,
    .copy_d2d = cuda_d2d,
    .host_visible = 0,
};

const shoal_kernels *shoal_kernels_cuda(void) {
    return &cuda_table;
}

shoal_status shoal_ctx_init_cuda(shoal_ctx *ctx, int device) {
    if (!ctx) {
        SHOAL_LOG_ERROR("shoal_ctx_init_cuda: ctx is NULL");
        return SHOAL_ERR_INVALID_ARG;
    }
    memset(ctx, 0, sizeof(*ctx));
    int n = shoal_cuda_device_count();
    if (device < 0 || device >= n) {
        SHOAL_LOG_ERROR("shoal_ctx_init_cuda: device %d out of range (%d CUDA device%s found)",
                        device, n, n == 1 ? "" : "s");
        return SHOAL_ERR_INVALID_ARG;
    }
    shoal_status st = SHOAL_ERR_CUDA;
    cudaStream_t stream = NULL;
    cublasLtHandle_t lt = NULL;
    void *ws = NULL;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    /* Stream-ordered from the start, so growing it later (cudaFreeAsync of the old buffer in
     * shoal_cuda_scratch) only ever frees what cudaMallocAsync allocated. */
    if (e == cudaSuccess) e = cudaMallocAsync(&ws, SHOAL_CUDA_LT_WORKSPACE, stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
    if (e != cudaSuccess) {
        SHOAL_LOG_ERROR("shoal_ctx_init_cuda(device %d): %s", device, cudaGetErrorString(e));
        goto cleanup;
    }
    cublasStatus_t bs = cublasLtCreate(&lt);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        SHOAL_LOG_ERROR("shoal_ctx_init_cuda: cublasLtCreate failed (status %d)", (int)bs);
        goto cleanup;
    }
    ctx->backend = SHOAL_BACKEND_CUDA;
    ctx->n_threads = 1;
    ctx->stream = stream;
    ctx->blas = lt;
    ctx->workspace = ws;
    ctx->workspace_bytes = SHOAL_CUDA_LT_WORKSPACE;
    ctx->k = &cuda_table;
    ctx->release = shoal_ctx_free_cuda;
    return SHOAL_OK;
cleanup:
    if (lt) cublasLtDestroy(lt);
    if (ws) {
        cudaFreeAsync(ws, stream);
        cudaStreamSynchronize(stream);
    }
    if (stream) cudaStreamDestroy(stream);
    memset(ctx, 0, sizeof(*ctx));
    return st;
}

void shoal_ctx_free_cuda(shoal_ctx *ctx) {
    if (!ctx || ctx->backend != SHOAL_BACKEND_CUDA || !ctx->k) return;
    if (ctx->stream) cudaStreamSynchronize((cudaStream_t)ctx->stream);
    if (ctx->blas) cublasLtDestroy((cublasLtHandle_t)ctx->blas);
    if (ctx->workspace) {
        cudaFreeAsync(ctx->workspace, (cudaStream_t)ctx->stream);
        cudaStreamSynchronize((cudaStream_t)ctx->stream);
    }
    if (ctx->stream) cudaStreamDestroy((cudaStream_t)ctx->stream);
    memset(ctx, 0, sizeof(*ctx));
}

shoal_status shoal_cuda_sync(shoal_ctx *ctx) {
    SHOAL_CUDA_TRY(cudaStreamSynchronize(SHOAL_CUDA_STREAM(ctx)));
    SHOAL_CUDA_TRY(cudaGetLastError());
    return SHOAL_OK;
}

shoal_status shoal_cuda_scratch(shoal_ctx *ctx, size_t bytes, void **out) {
    size_t need = SHOAL_CUDA_LT_WORKSPACE + ((bytes + 255) & ~(size_t)255);
    if (need < bytes) {
        SHOAL_LOG_ERROR("cuda scratch: %zu bytes overflows", bytes);
        return SHOAL_ERR_NOMEM;
    }
    if (need > ctx->workspace_bytes) {
        /* Grow by at least half again, so a sequence of growing requests reallocates rarely.
         * Stream-ordered free/alloc: work queued on the old buffer finishes first. */
        size_t grow = ctx->workspace_bytes + ctx->workspace_bytes / 2;
        if (grow > need) need = grow;
        cudaStream_t s = SHOAL_CUDA_STREAM(ctx);
        void *nw = NULL;
        SHOAL_CUDA_TRY(cudaFreeAsync(ctx->workspace, s));
        ctx->workspace = NULL;
        ctx->workspace_bytes = 0;
        cudaError_t e = cudaMallocAsync(&nw, need, s);
        if (e != cudaSuccess) {
            SHOAL_LOG_ERROR("cuda scratch: cannot allocate %zu bytes: %s", need,
                            cudaGetErrorString(e));
            return e == cudaErrorMemoryAllocation ? SHOAL_ERR_NOMEM : SHOAL_ERR_CUDA;
        }
        ctx->workspace = nw;
        ctx->workspace_bytes = need;
    }
    *out = (char *)ctx->workspace + SHOAL_CUDA_LT_WORKSPACE;
    return SHOAL_OK;
}
