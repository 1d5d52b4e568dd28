/* ops.c: the CPU op table, context set-up and global gradient-norm clipping.
 *
 * The table is a const struct of the kernels/cpu twins; a context points at exactly one table
 * for its whole life (no silent fallback between backends). Clipping is written once, on top
 * of the table's norm_sq and scale, so every backend clips the same way.
 * Tested by tests/kernels/test_ops.c.
 */
#define SHOAL_LOG_SUBSYS "kernels"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/cpu/ops_cpu.h"
#include "kernels/ops.h"

/* calloc: zeroed, 16-byte aligned from glibc; the model's sub-buffers carry their own 64-byte
 * alignment inside one block. */
static shoal_status cpu_mem_alloc(shoal_ctx *ctx, void **out, size_t bytes) {
    (void)ctx;
    *out = calloc(1, bytes);
    return *out ? SHOAL_OK : SHOAL_ERR_NOMEM;
}

static void cpu_mem_free(shoal_ctx *ctx, void *p) {
    (void)ctx;
    free(p);
}

static shoal_status cpu_copy(shoal_ctx *ctx, void *dst, const void *src, size_t bytes) {
    (void)ctx;
    if (bytes) memmove(dst, src, bytes);
    return SHOAL_OK;
}

static const shoal_kernels cpu_table = {
    .name = "cpu",
    .encoder_forward = shoal_encoder_forward_cpu,
    .encoder_backward = shoal_encoder_backward_cpu,
    .layernorm_forward = shoal_layernorm_forward_cpu,
    .layernorm_backward = shoal_layernorm_backward_cpu,
    .matmul_forward = shoal_matmul_forward_cpu,
    .matmul_backward = shoal_matmul_backward_cpu,
    .attention_forward = shoal_attention_forward_cpu,
    .attention_backward = shoal_attention_backward_cpu,
    .attention_decode = shoal_attention_decode_cpu,
    .gelu_forward = shoal_gelu_forward_cpu,
    .gelu_backward = shoal_gelu_backward_cpu,
    .residual_forward = shoal_residual_forward_cpu,
    .residual_backward = shoal_residual_backward_cpu,
    .crossentropy_forward = shoal_crossentropy_forward_cpu,
    .crossentropy_backward = shoal_crossentropy_backward_cpu,
    .adamw_update = shoal_adamw_update_cpu,
    .norm_sq = shoal_norm_sq_cpu,
    .scale = shoal_scale_cpu,
    .zero = shoal_zero_cpu,
    .mem_alloc = cpu_mem_alloc,
    .mem_free = cpu_mem_free,
    .copy_h2d = cpu_copy,
    .copy_d2h = cpu_copy,
    .copy_d2d = cpu_copy,
    .host_visible = 1,
};

const shoal_kernels *shoal_kernels_cpu(void) { return &cpu_table; }

const char *shoal_kernels_cpu_gemm_name(void) {
#ifdef SHOAL_HAVE_BLAS
    return "cpu+openblas";
#else
    return "cpu+loops";
#endif
}

/* Upper bound on threads, so that a typo in OMP_NUM_THREADS cannot ask for millions. */
#define MAX_CPU_THREADS 1024

shoal_status shoal_ctx_init_cpu(shoal_ctx *ctx, int n_threads) {
    SHOAL_REQUIRE(ctx != NULL, SHOAL_ERR_INVALID_ARG, "shoal_ctx_init_cpu: ctx is NULL");
    memset(ctx, 0, sizeof *ctx);
    if (n_threads <= 0) {
        const char *env = getenv("OMP_NUM_THREADS");
        char *end = NULL;
        long v = env ? strtol(env, &end, 10) : 0;
        if (env && end != env && v > 0 && v <= MAX_CPU_THREADS) {
            n_threads = (int)v;
        } else {
            if (env && env[0]) SHOAL_LOG_WARN("OMP_NUM_THREADS=%s is not a thread count in 1..%d; using the CPU count", env, MAX_CPU_THREADS);
            long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
            n_threads = ncpu > 0 ? (int)ncpu : 1;
        }
    }
    SHOAL_REQUIRE(n_threads <= MAX_CPU_THREADS, SHOAL_ERR_INVALID_ARG,
                  "thread count %d is above %d", n_threads, MAX_CPU_THREADS);
    ctx->backend = SHOAL_BACKEND_CPU;
    ctx->n_threads = n_threads;
    ctx->k = &cpu_table;
    /* sgemm runs inside our OpenMP regions, one slab per thread (kernels/cpu/matmul_cpu.c) */
    shoal_cpu_blas_set_threads(1);
    return SHOAL_OK;
}

void shoal_ctx_free(shoal_ctx *ctx) {
    if (!ctx) return;
    if (ctx->release) {
        ctx->release(ctx);
        return;
    }
    if (ctx->backend == SHOAL_BACKEND_CPU) {
        free(ctx->workspace);
        ctx->workspace = NULL;
        ctx->workspace_bytes = 0;
    }
}

shoal_status shoal_grad_clip(shoal_ctx *ctx, float *x, size_t n, float max_norm,
                             float *norm_out) {
    double sq = 0.0;
    SHOAL_CHECK(SHOAL_OP(ctx, norm_sq, x, n, &sq));
    double norm = sqrt(sq);
    if (norm_out) *norm_out = (float)norm;
    SHOAL_REQUIRE(isfinite(norm), SHOAL_ERR_INVALID_ARG,
                  "gradient norm is not finite (%g); skip this step or lower the learning rate",
                  norm);
    if (max_norm > 0.0f && norm > (double)max_norm) {
        SHOAL_CHECK(SHOAL_OP(ctx, scale, x, n, (float)((double)max_norm / (norm + 1e-6))));
    }
    return SHOAL_OK;
}

shoal_status shoal_ctx_alloc(shoal_ctx *ctx, void **out, size_t bytes, const char *what) {
    SHOAL_REQUIRE(ctx && ctx->k && out, SHOAL_ERR_INVALID_ARG, "shoal_ctx_alloc: NULL argument");
    *out = NULL;
    SHOAL_REQUIRE(bytes > 0, SHOAL_ERR_INVALID_ARG, "shoal_ctx_alloc(%s): 0 bytes", what);
    shoal_status st = ctx->k->mem_alloc(ctx, out, bytes);
    if (st != SHOAL_OK) {
        SHOAL_LOG_ERROR("out of %s memory allocating %s (%.1f MB)", ctx->k->name, what,
                        (double)bytes / 1e6);
        *out = NULL;
    }
    return st;
}

void shoal_ctx_mem_free(shoal_ctx *ctx, void *p) {
    if (ctx && ctx->k && p) ctx->k->mem_free(ctx, p);
}

shoal_status shoal_ctx_h2d(shoal_ctx *ctx, void *dst, const void *src, size_t bytes) {
    return bytes ? ctx->k->copy_h2d(ctx, dst, src, bytes) : SHOAL_OK;
}

shoal_status shoal_ctx_d2h(shoal_ctx *ctx, void *dst, const void *src, size_t bytes) {
    return bytes ? ctx->k->copy_d2h(ctx, dst, src, bytes) : SHOAL_OK;
}

shoal_status shoal_ctx_d2d(shoal_ctx *ctx, void *dst, const void *src, size_t bytes) {
    return bytes ? ctx->k->copy_d2d(ctx, dst, src, bytes) : SHOAL_OK;
}
