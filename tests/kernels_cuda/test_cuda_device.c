/* test_cuda_device.c: device detection and context argument checks of the CUDA backend
 * (label unit: runs in CI on machines without a GPU).
 *
 * Without a driver cudaGetDeviceCount fails (cudaErrorInsufficientDriver); the backend must
 * report 0 devices rather than an error, and refuse a context on a device that is not there
 * with INVALID_ARG, leaving the context zeroed. With SHOAL_EXPECT_GPU=1 (the GPU machine) it
 * also requires a device and a working context round trip.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/ops_cuda.h"
#include "test.h"

static void test_count(void)
{
    int n = shoal_cuda_device_count();
    CHECK(n >= 0);
    CHECK_EQ_INT(shoal_cuda_device_count(), n); /* stable, and the failed probe is not sticky */
    const char *expect = getenv("SHOAL_EXPECT_GPU");
    if (expect && strcmp(expect, "1") == 0) CHECK(n >= 1);
}

static void test_init_rejects(void)
{
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

static void test_roundtrip_if_device(void)
{
    if (shoal_cuda_device_count() == 0) return;
    shoal_ctx ctx;
    CHECK_EQ_INT(shoal_ctx_init_cuda(&ctx, 0), SHOAL_OK);
    CHECK(ctx.backend == SHOAL_BACKEND_CUDA && ctx.k == shoal_kernels_cuda());
    CHECK(ctx.stream != NULL && ctx.blas != NULL && ctx.workspace != NULL);
    CHECK_EQ_INT(shoal_cuda_sync(&ctx), SHOAL_OK);
    shoal_ctx_free_cuda(&ctx);
    CHECK(ctx.k == NULL);
}

int main(void)
{
    TEST_RUN(test_count);
    TEST_RUN(test_init_rejects);
    TEST_RUN(test_roundtrip_if_device);
    return TEST_EXIT();
}
