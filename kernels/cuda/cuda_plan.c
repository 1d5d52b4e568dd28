/* cuda_plan.c: host-side arithmetic of the CUDA backend (see cuda_plan.h). Plain C11, no CUDA
 * headers: built into shoal_cuda_plan, which the CUDA library links and which CI tests with gcc
 * and under ASan/UBSan even when the build has no CUDA (tests/kernels_cuda/test_cuda_plan.c).
 */
#define SHOAL_LOG_SUBSYS "cuda"
#include "kernels/cuda/cuda_plan.h"

#include <limits.h>
#include <string.h>

#include "common/log.h"

long long shoal_plan_ceil_div(long long a, long long b) {
    return (a + b - 1) / b;
}

unsigned shoal_plan_blocks(size_t n, unsigned threads, unsigned per_thread, unsigned max_blocks) {
    if (n == 0 || threads == 0) return 0;
    if (per_thread == 0) per_thread = 1;
    size_t per_block = (size_t)threads * per_thread;
    size_t blocks = (n + per_block - 1) / per_block;
    if (max_blocks > 0 && blocks > max_blocks) blocks = max_blocks;
    return (unsigned)blocks;
}

int shoal_plan_fa_q_tiles(int T, int bq) {
    return (int)shoal_plan_ceil_div(T, bq);
}

int shoal_plan_fa_kv_tiles_causal(int T, int qi, int bq, int bk) {
    long long last = (long long)(qi + 1) * bq; /* one past the tile's last query row */
    if (last > T) last = T;
    return (int)shoal_plan_ceil_div(last, bk);
}

int shoal_plan_fa_first_q_tile(int kj, int bq, int bk) {
    return (int)(((long long)kj * bk) / bq);
}

int shoal_plan_tile_valid_rows(int T, int tile, int tile_rows) {
    long long start = (long long)tile * tile_rows;
    if (start >= T) return 0;
    long long left = T - start;
    return left < tile_rows ? (int)left : tile_rows;
}

int shoal_plan_causal_visible(int i, int j, int T) {
    return i >= 0 && j >= 0 && i < T && j < T && j <= i;
}

size_t shoal_plan_lse_index(int b, int h, int t, int NH, int T) {
    return ((size_t)b * NH + h) * T + t;
}

size_t shoal_plan_qkv_index(int b, int t, int which, int h, int d, int T, int C, int NH) {
    int hd = C / NH;
    return ((size_t)b * T + t) * 3 * C + (size_t)which * C + (size_t)h * hd + d;
}

size_t shoal_plan_out_index(int b, int t, int h, int d, int T, int C, int NH) {
    int hd = C / NH;
    return ((size_t)b * T + t) * C + (size_t)h * hd + d;
}

uint16_t shoal_plan_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) /* NaN: keep it quiet */
        return (uint16_t)((u >> 16) | 0x0040u);
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb; /* round to nearest, ties to even; overflow rounds to inf */
    return (uint16_t)(u >> 16);
}

float shoal_plan_bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint32_t shoal_plan_pack_bf16x2(float lo, float hi) {
    return (uint32_t)shoal_plan_f32_to_bf16(lo) | ((uint32_t)shoal_plan_f32_to_bf16(hi) << 16);
}

void shoal_plan_unpack_bf16x2(uint32_t w, float *lo, float *hi) {
    *lo = shoal_plan_bf16_to_f32((uint16_t)(w & 0xffffu));
    *hi = shoal_plan_bf16_to_f32((uint16_t)(w >> 16));
}

shoal_status shoal_plan_attention_check(shoal_fa_path path, int B, int T, int C, int NH,
                                        int t_max) {
    if (B < 1 || T < 1 || C < 1 || NH < 1) {
        SHOAL_LOG_ERROR("attention: B=%d T=%d C=%d NH=%d must all be >= 1", B, T, C, NH);
        return SHOAL_ERR_INVALID_ARG;
    }
    if (C % NH != 0) {
        SHOAL_LOG_ERROR("attention: C=%d is not a multiple of NH=%d", C, NH);
        return SHOAL_ERR_INVALID_ARG;
    }
    int hd = C / NH;
    if (path == SHOAL_FA_PATH_BF16) {
        if (hd != 64 && hd != 128) {
            SHOAL_LOG_ERROR("attention (bf16 tensor cores): head dim %d (C=%d / NH=%d) "
                            "unsupported; use 64 or 128, or the fp32 path",
                            hd, C, NH);
            return SHOAL_ERR_INVALID_ARG;
        }
    } else if (hd > 128) {
        SHOAL_LOG_ERROR("attention (fp32): head dim %d (C=%d / NH=%d) over 128", hd, C, NH);
        return SHOAL_ERR_INVALID_ARG;
    }
    if (t_max > 0 && T > t_max) {
        SHOAL_LOG_ERROR("attention: T=%d exceeds n_positions=%d", T, t_max);
        return SHOAL_ERR_INVALID_ARG;
    }
    /* Kernels index with size_t, but grids use int tile counts and B*NH goes in gridDim.y
     * (limit 65535). qkv must fit in size_t trivially; check the grid limit. */
    if ((long long)B * NH > 65535) {
        SHOAL_LOG_ERROR("attention: B*NH=%lld over the grid limit 65535", (long long)B * NH);
        return SHOAL_ERR_INVALID_ARG;
    }
    if ((long long)B * T * 3 * C > (long long)INT_MAX * 64) {
        SHOAL_LOG_ERROR("attention: qkv of B=%d T=%d C=%d is too large", B, T, C);
        return SHOAL_ERR_INVALID_ARG;
    }
    return SHOAL_OK;
}

static size_t bf16_tile(int rows, int D) {
    return (size_t)rows * (D + SHOAL_FA_PAD_BF16) * 2;
}
static size_t f32_tile(int rows, int D) {
    return (size_t)rows * (D + SHOAL_FA_PAD_F32) * 4;
}

size_t shoal_plan_fa_fwd_smem(int D) {
    /* Q, K, V (bf16); S (fp32 scores); P (bf16 probabilities); O (fp32 accumulator);
     * row max m and row sum l (fp32). */
    return bf16_tile(SHOAL_FA_BQ, D) + 2 * bf16_tile(SHOAL_FA_BK, D) +
           f32_tile(SHOAL_FA_BQ, SHOAL_FA_BK) + bf16_tile(SHOAL_FA_BQ, SHOAL_FA_BK) +
           f32_tile(SHOAL_FA_BQ, D) + 2 * (size_t)SHOAL_FA_BQ * 4;
}

size_t shoal_plan_fa_bwd_smem(int D) {
    /* Q, dO, K, V (bf16); S, dP (fp32); P, dS (bf16); two fp32 accumulators (dK and dV, or
     * dQ alone); lse and D rows (fp32). Both backward kernels use this layout. */
    return 2 * bf16_tile(SHOAL_FA_BQ, D) + 2 * bf16_tile(SHOAL_FA_BK, D) +
           2 * f32_tile(SHOAL_FA_BQ, SHOAL_FA_BK) + 2 * bf16_tile(SHOAL_FA_BQ, SHOAL_FA_BK) +
           2 * f32_tile(SHOAL_FA_BK, D) + 2 * (size_t)SHOAL_FA_BQ * 4;
}

double shoal_plan_fa_flops_fwd(int B, int H, int T, int D, int causal) {
    double f = 4.0 * B * H * (double)T * T * D;
    return causal ? f / 2 : f;
}

double shoal_plan_fa_flops_bwd(int B, int H, int T, int D, int causal) {
    return 2.5 * shoal_plan_fa_flops_fwd(B, H, T, D, causal);
}
