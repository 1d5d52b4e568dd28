/* test_cuda_device.c: device detection and context argument checks of the CUDA backend
 * (label unit: runs in CI on machines without a GPU).
 *
 * Without a driver cudaGetDeviceCount fails (cudaErrorInsufficientDriver); the backend must
 * report 0 devices rather than an error, and refuse a context on a device that is not there
 * with INVALID_ARG, leaving the context zeroed; and every op must reject bad shapes (head
 * dims, C % NH, decode position, AdamW step, GEMM dims) before touching the device. With
 * SHOAL_EXPECT_GPU=1 (the GPU machine) it also requires a device and a context round trip.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/ops_cuda.h"
#include "test.h"

static void test_count(void) {
    int n = shoal_cuda_device_count();
    CHECK(n >= 0);
    CHECK_EQ_INT(shoal_cuda_device_count(), n); /* stable, and the failed probe is not sticky */
    const char *expect = getenv("SHOAL_EXPECT_GPU");
    if (expect && strcmp(expect, "1") == 0) CHECK(n >= 1);
}

static void test_init_rejects(void) {
    shoal_ctx ctx;
    memset(&ctx, 0x5a, sizeof ctx);
    int n = shoal_cuda_device_count();
    CHECK_EQ_INT(shoal_ctx_init_cuda(NULL, 0), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_ctx_init_cuda(&ctx, -1), SHOAL_ERR_INVALID_ARG);
    CHECK(ctx.k == NULL && ctx.stream == NULL && ctx.workspace == NULL);
    CHECK_EQ_INT(shoal_ctx_init_cuda(&ctx, n), SHOAL_ERR_INVALID_ARG); /* one past the last */
    CHECK(ctx.k == NULL);
    shoal_ctx_free_cuda(NULL);
    shoal_ctx_free_cuda(&ctx); /* zeroed context: no-op */
    CHECK(strcmp(shoal_kernels_cuda()->name, "cuda") == 0);
}

/* Argument checks run before any CUDA call, so they are testable on a machine without a GPU:
 * a context that was never initialised is enough, nothing reaches the device. */
static void test_arguments_rejected_before_launch(void) {
    shoal_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    const shoal_kernels *k = shoal_kernels_cuda();
    float f = 0;
    double d = 0;
    CHECK_EQ_INT(k->matmul_forward(&ctx, &f, &f, &f, NULL, -1, 4, 4, SHOAL_W_IN_OUT),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(k->matmul_forward(&ctx, &f, &f, &f, NULL, 4, 0, 4, SHOAL_W_IN_OUT),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(k->matmul_backward(&ctx, &f, &f, NULL, &f, &f, &f, 4, 4, 4, (shoal_wlayout)7),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(k->matmul_forward(&ctx, &f, &f, &f, NULL, 0, 4, 4, SHOAL_W_OUT_IN), SHOAL_OK);
    CHECK_EQ_INT(shoal_matmul_forward_bf16_cuda(&ctx, NULL, NULL, NULL, NULL, NULL, 4, 4, -4,
                                                SHOAL_W_IN_OUT, 0),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(k->attention_forward(&ctx, &f, &f, &f, 1, 4, 10, 3), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(k->attention_forward(&ctx, &f, &f, &f, 1, 0, 8, 1), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(k->attention_backward(&ctx, &f, &f, &f, &f, 1, 4, 512, 2),
                 SHOAL_ERR_INVALID_ARG); /* head dim 256 */
    CHECK_EQ_INT(k->attention_decode(&ctx, &f, &f, &f, &f, 8, 8, 1, 8, 1), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(k->attention_decode(&ctx, &f, &f, &f, &f, -1, 8, 1, 8, 1), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_attention_forward_bf16_cuda(&ctx, NULL, NULL, NULL, 1, 17, 96, 1),
                 SHOAL_ERR_INVALID_ARG); /* head dim 96: not on the tensor-core path */
    CHECK_EQ_INT(
        shoal_attention_backward_bf16_cuda(&ctx, NULL, NULL, NULL, NULL, NULL, 1, 17, 32, 1),
        SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(
        k->adamw_update(&ctx, &f, &f, &f, &f, 1, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0, 1.0f),
        SHOAL_ERR_INVALID_ARG); /* step is 1-based */
    CHECK_EQ_INT(k->norm_sq(&ctx, &f, 1, NULL), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(k->norm_sq(&ctx, &f, 0, &d), SHOAL_OK);
    CHECK(d == 0.0);
}

static void test_roundtrip_if_device(void) {
    if (shoal_cuda_device_count() == 0) return;
    shoal_ctx ctx;
    CHECK_EQ_INT(shoal_ctx_init_cuda(&ctx, 0), SHOAL_OK);
    CHECK(ctx.backend == SHOAL_BACKEND_CUDA && ctx.k == shoal_kernels_cuda());
    CHECK(ctx.stream != NULL && ctx.blas != NULL && ctx.workspace != NULL);
    CHECK_EQ_INT(shoal_cuda_sync(&ctx), SHOAL_OK);
    shoal_ctx_free_cuda(&ctx);
    CHECK(ctx.k == NULL);
}

int main(void) {
    TEST_RUN(test_count);
    TEST_RUN(test_init_rejects);
    TEST_RUN(test_arguments_rejected_before_launch);
    TEST_RUN(test_roundtrip_if_device);
    return TEST_EXIT();
}
