/* cuda_plan.h: the host-side arithmetic of the CUDA backend, in plain C so gcc can test it.
 *
 * What: launch geometry (blocks, tiles, causal tile ranges, masked tails for any T), the layout
 * of the log-sum-exp that the CUDA attention keeps in place of ops.h's `att` probabilities,
 * bf16 round-to-nearest-even packing, and argument validation of the attention entry points.
 * Why here: none of it needs a GPU, and every index mistake in a kernel starts as a mistake in
 * this arithmetic. The .cu files call these same functions (or the SHOAL_PLAN_* inline twins
 * marked __host__ __device__ there), so what tests/kernels_cuda/test_cuda_plan.c checks on the
 * CPU is what the launches use.
 * Tested by tests/kernels_cuda/test_cuda_plan.c (label unit, runs in CI without a GPU).
 */
#ifndef SHOAL_KERNELS_CUDA_PLAN_H
#define SHOAL_KERNELS_CUDA_PLAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "common/status.h"

/* Flash-attention tiles (bf16 tensor-core path): BQ query rows x BK keys per step. */
#define SHOAL_FA_BQ 64
#define SHOAL_FA_BK 64
#define SHOAL_FA_WARPS 4 /* each warp owns a 16-row strip of the 64-row tile */
/* Padding of shared-memory rows, in elements: keeps 16-byte alignment for wmma loads and moves
 * consecutive rows to different banks. */
#define SHOAL_FA_PAD_BF16 8
#define SHOAL_FA_PAD_F32 4

/* Elementwise kernels: threads per block, and the fixed grid of the deterministic reductions
 * (a fixed grid means a fixed summation order, so two runs give identical bits). */
#define SHOAL_EW_THREADS 256
#define SHOAL_REDUCE_BLOCKS 256
/* Column reductions (dbias, layernorm dw/db): rows per slice; slices are summed in order. */
#define SHOAL_COLSUM_ROWS 64
#define SHOAL_COLSUM_MAX_SLICES 128
/* Embedding backward: tokens are split into this many buckets (token % buckets); one thread per
 * (column, bucket) walks all positions in order, so there are no atomics and no races. */
#define SHOAL_ENC_BUCKETS 64

/* The tile arithmetic the kernels run, inline so device code and the C functions below share
 * one definition (the functions call these; test_cuda_plan.c tests the functions). */
#if defined(__CUDACC__)
#define SHOAL_PLAN_HD static __host__ __device__ __forceinline__
#else
#define SHOAL_PLAN_HD static inline
#endif
SHOAL_PLAN_HD int shoal_plan_ceil_div_dev(int a, int b) {
    return (a + b - 1) / b;
}
/* Key tiles a causal query tile qi visits (square SHOAL_FA_BQ == SHOAL_FA_BK tiles). */
SHOAL_PLAN_HD int shoal_plan_fa_kv_tiles_dev(int T, int qi) {
    int last = (qi + 1) * SHOAL_FA_BQ;
    return shoal_plan_ceil_div_dev(last < T ? last : T, SHOAL_FA_BK);
}
/* First query tile that sees key tile kj. */
SHOAL_PLAN_HD int shoal_plan_fa_first_q_tile_dev(int kj) {
    return kj * SHOAL_FA_BK / SHOAL_FA_BQ;
}

/* ceil(a / b) for a >= 0, b > 0. */
long long shoal_plan_ceil_div(long long a, long long b);

/* Blocks for n elements at `threads` per block, each thread taking `per_thread` elements,
 * capped at max_blocks (grid-stride loops cover the rest). 0 when n == 0. */
unsigned shoal_plan_blocks(size_t n, unsigned threads, unsigned per_thread, unsigned max_blocks);

/* Number of query tiles of a sequence of T rows (T >= 1): ceil(T / BQ). */
int shoal_plan_fa_q_tiles(int T, int bq);
/* Key tiles that query tile qi (0-based) must visit under the causal mask: keys 0 ..
 * min(T, (qi+1)*bq) - 1, so ceil(min(T, (qi+1)*bq) / bk). */
int shoal_plan_fa_kv_tiles_causal(int T, int qi, int bq, int bk);
/* For key tile kj: the first query tile that sees any of its keys (causal): floor(kj*bk / bq). */
int shoal_plan_fa_first_q_tile(int kj, int bq, int bk);
/* Rows of tile `tile` (size `tile_rows`) that exist in a sequence of T rows (0 .. tile_rows). */
int shoal_plan_tile_valid_rows(int T, int tile, int tile_rows);
/* 1 when key index j is visible from query index i (causal, both inside T), else 0. */
int shoal_plan_causal_visible(int i, int j, int T);

/* The CUDA attention saves the row log-sum-exp (scaled scores, natural log) instead of the
 * T x T probabilities: lse (B, NH, T), at this index. Fits in ops.h's att buffer (B*NH*T*T)
 * for every T >= 1. */
size_t shoal_plan_lse_index(int b, int h, int t, int NH, int T);
/* Index of element d of head h of q (which = 0), k (1) or v (2) at (b, t) in qkv (B,T,3C). */
size_t shoal_plan_qkv_index(int b, int t, int which, int h, int d, int T, int C, int NH);
/* Index of element d of head h at (b, t) in out (B,T,C). */
size_t shoal_plan_out_index(int b, int t, int h, int d, int T, int C, int NH);

/* bf16 <-> fp32, round to nearest even, NaN kept quiet (same rounding as __float2bfloat16_rn). */
uint16_t shoal_plan_f32_to_bf16(float f);
float shoal_plan_bf16_to_f32(uint16_t b);
/* Two bf16 in one 32-bit word, lo in the low half (the order a bf16x2 register holds them). */
uint32_t shoal_plan_pack_bf16x2(float lo, float hi);
void shoal_plan_unpack_bf16x2(uint32_t w, float *lo, float *hi);

/* Which attention kernel a shape runs on. */
typedef enum {
    SHOAL_FA_PATH_F32 = 0, /* fp32 SIMT kernels: any head dim 1..128 */
    SHOAL_FA_PATH_BF16 = 1 /* bf16 tensor cores (wmma 16x16x16): head dim 64 or 128 */
} shoal_fa_path;

/* Validate an attention call: B, T, C, NH >= 1, C % NH == 0, head dim within the path's set,
 * T <= t_max (the model's n_positions; <= 0 means unchecked), qkv/out/lse sizes without
 * overflow of int indices. Logs the offending value and returns INVALID_ARG, or SHOAL_OK. */
shoal_status shoal_plan_attention_check(shoal_fa_path path, int B, int T, int C, int NH, int t_max);

/* Shared-memory bytes of the bf16 flash kernels for head dim D (what the launch requests). */
size_t shoal_plan_fa_fwd_smem(int D);
size_t shoal_plan_fa_bwd_smem(int D);

/* FLOPs as FlashAttention counts them: forward 4*B*H*T^2*D, halved when causal; backward
 * 2.5x forward. */
double shoal_plan_fa_flops_fwd(int B, int H, int T, int D, int causal);
double shoal_plan_fa_flops_bwd(int B, int H, int T, int D, int causal);

#ifdef __cplusplus
}
#endif

#endif
