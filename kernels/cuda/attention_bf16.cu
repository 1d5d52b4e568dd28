/* attention_bf16.cu: our causal flash attention on tensor cores (bf16 operands, fp32
 * accumulation), forward and backward, head dims 64 and 128, any T >= 1.
 *
 * Why so (FlashAttention-2 structure, our own code): a block owns a 64-row query tile (forward,
 * dQ) or a 64-row key tile (dK/dV) of one (batch, head); 4 warps each own a 16-row strip of it.
 * K/V (or Q/dO) tiles stream through shared memory with 16-byte loads; S = QK^T and the other
 * products run on wmma 16x16x16 bf16 fragments with fp32 accumulators; the online softmax keeps
 * a running max and sum per row so T x T is never stored, and the forward saves the row
 * log-sum-exp (B,NH,T) for the backward. Accumulators (O, dQ, dK, dV) live in fp32 shared
 * memory because a row rescale needs the row of each element, which wmma fragments hide.
 * Tails: rows past T load as zeros and are masked (keys) or never stored (queries), so T needs
 * no multiple of 64. The backward is deterministic (no atomics): one kernel per query tile
 * writes dQ, one per key tile writes dK and dV, both recompute P from the LSE; Di =
 * rowsum(dO * O) comes from a small kernel first. That costs ~1.4x the matmul FLOPs of an
 * atomic dQ, paid for bit-identical gradients.
 * Tested by tests/kernels_cuda/test_ops_cuda.c (label gpu) against the CPU reference at T = 1,
 * 17, 1000, head dims 64 and 128, bf16 bound 2e-2; shared-memory sizes and tile counts by
 * test_cuda_plan.c (unit).
 */
#include <cuda_bf16.h>
#include <mma.h>

#include "kernels/cuda/cuda_internal.h"

namespace {

using namespace nvcuda;
typedef __nv_bfloat16 bf16;

constexpr int BQ = SHOAL_FA_BQ, BK = SHOAL_FA_BK, NWARPS = SHOAL_FA_WARPS;
constexpr int NTHREADS = NWARPS * 32;
constexpr int LDS = BK + SHOAL_FA_PAD_F32;  /* fp32 score tiles */
constexpr int LDP = BK + SHOAL_FA_PAD_BF16; /* bf16 probability tiles */
constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;
static_assert(BQ == BK, "the causal tile ranges assume square tiles");
static_assert(BQ == NWARPS * 16, "each warp owns one 16-row strip");

typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> FragA;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major> FragAT;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> FragB;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> FragBT;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> FragC;

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

/* Copy rows [row0, row0+64) of one head's slice of a (B,T,stride) bf16 tensor into a shared
 * tile (64 x D, leading dim D+8), 16 bytes per thread per step; rows >= T become zeros. */
template <int D>
__device__ __forceinline__ void load_tile(bf16 *tile, const bf16 *src, size_t row_stride, int row0,
                                          int T) {
    constexpr int LDB = D + SHOAL_FA_PAD_BF16;
    constexpr int CHUNKS = D / 8; /* 16-byte chunks per row */
    for (int i = threadIdx.x; i < 64 * CHUNKS; i += NTHREADS) {
        int r = i / CHUNKS, c = (i % CHUNKS) * 8;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (row0 + r < T)
            v = *reinterpret_cast<const uint4 *>(src + (size_t)(row0 + r) * row_stride + c);
        *reinterpret_cast<uint4 *>(tile + r * LDB + c) = v;
    }
}

/* Warp-level: C strip (16 x 16*NT, fp32, ldc) = A strip (16 x 16*KT) @ B, with A and B as the
 * fragment types say. Pointers are the strip's top-left; a_step/b_step move one k-slab. */
template <typename FA, typename FB, int NT, int KT>
__device__ __forceinline__ void strip_mma(float *c, int ldc, const bf16 *a, int lda, int a_kstep,
                                          const bf16 *b, int ldb, int b_kstep, int b_nstep,
                                          bool accumulate) {
#pragma unroll
    for (int n = 0; n < NT; n++) {
        FragC acc;
        if (accumulate)
            wmma::load_matrix_sync(acc, c + n * 16, ldc, wmma::mem_row_major);
        else
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int k = 0; k < KT; k++) {
            FA fa;
            FB fb;
            wmma::load_matrix_sync(fa, a + k * a_kstep, lda);
            wmma::load_matrix_sync(fb, b + k * b_kstep + n * b_nstep, ldb);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        wmma::store_matrix_sync(c + n * 16, acc, ldc, wmma::mem_row_major);
    }
}

template <int D>
__global__ void __launch_bounds__(NTHREADS)
    flash_forward_bf16_kernel(bf16 *out, float *lse, const bf16 *qkv, int T, int C, int NH) {
    constexpr int LDB = D + SHOAL_FA_PAD_BF16, LDO = D + SHOAL_FA_PAD_F32;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(smem);
    bf16 *Ks = Qs + BQ * LDB;
    bf16 *Vs = Ks + BK * LDB;
    float *Ss = reinterpret_cast<float *>(Vs + BK * LDB);
    bf16 *Ps = reinterpret_cast<bf16 *>(Ss + BQ * LDS);
    float *Os = reinterpret_cast<float *>(Ps + BQ * LDP);
    float *row_m = Os + BQ * LDO, *row_l = row_m + BQ;

    const int nq = shoal_plan_ceil_div_dev(T, BQ);
    const int qi = nq - 1 - (int)blockIdx.x; /* longest tiles first */
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
    const int q0 = qi * BQ, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const size_t C3 = 3 * (size_t)C;
    const bf16 *qbase = qkv + (size_t)b * T * C3 + (size_t)h * D;
    const float scale_log2 = rsqrtf((float)D) * LOG2E;

    load_tile<D>(Qs, qbase, C3, q0, T);
    for (int i = threadIdx.x; i < BQ * LDO; i += NTHREADS)
        Os[i] = 0.0f;
    for (int i = threadIdx.x; i < BQ; i += NTHREADS) {
        row_m[i] = -INFINITY;
        row_l[i] = 0.0f;
    }
    const int nkv = shoal_plan_fa_kv_tiles_dev(T, qi);
    const int r0 = warp * 16;
    for (int kj = 0; kj < nkv; kj++) {
        const int k0 = kj * BK;
        __syncthreads(); /* everyone is done with the previous K, V */
        load_tile<D>(Ks, qbase + C, C3, k0, T);
        load_tile<D>(Vs, qbase + 2 * (size_t)C, C3, k0, T);
        __syncthreads();
        /* S strip (16 x 64) = Q strip (16 x D) @ K^T; K stored (key, d) is col-major K^T. */
        strip_mma<FragA, FragBT, BK / 16, D / 16>(Ss + r0 * LDS, LDS, Qs + r0 * LDB, LDB, 16, Ks,
                                                  LDB, 16, 16 * LDB, false);
        __syncwarp();
        for (int r = 0; r < 16; r++) {
            const int row = r0 + r, qidx = q0 + row;
            float s0 = Ss[row * LDS + lane] * scale_log2;
            float s1 = Ss[row * LDS + lane + 32] * scale_log2;
            const int key0 = k0 + lane, key1 = k0 + lane + 32;
            if (key0 > qidx || key0 >= T) s0 = -INFINITY;
            if (key1 > qidx || key1 >= T) s1 = -INFINITY;
            const float m_old = row_m[row];
            const float m_new = fmaxf(m_old, warp_max(fmaxf(s0, s1)));
            /* A row with every key masked so far (only rows past T) keeps m = -inf: use 0 as the
             * exponent base so no inf - inf NaN appears; its p are 0 either way. */
            const float base = m_new == -INFINITY ? 0.0f : m_new;
            const float p0 = exp2f(s0 - base), p1 = exp2f(s1 - base);
            const float alpha = exp2f(m_old - base);
            Ps[row * LDP + lane] = __float2bfloat16_rn(p0);
            Ps[row * LDP + lane + 32] = __float2bfloat16_rn(p1);
            const float psum = warp_sum(p0 + p1);
            for (int d = lane; d < D; d += 32)
                Os[row * LDO + d] *= alpha;
            __syncwarp();
            if (lane == 0) {
                row_m[row] = m_new;
                row_l[row] = row_l[row] * alpha + psum;
            }
        }
        __syncwarp();
        /* O strip (16 x D) += P strip (16 x 64) @ V (64 x D). */
        strip_mma<FragA, FragB, D / 16, BK / 16>(Os + r0 * LDO, LDO, Ps + r0 * LDP, LDP, 16, Vs,
                                                 LDB, 16 * LDB, 16, true);
        __syncwarp();
    }
    for (int r = 0; r < 16; r++) {
        const int row = r0 + r, t = q0 + row;
        if (t >= T) break;
        const float l = row_l[row], inv = 1.0f / l;
        bf16 *o = out + ((size_t)b * T + t) * C + (size_t)h * D;
        for (int d = 2 * lane; d < D; d += 64) {
            __nv_bfloat162 v2 =
                __floats2bfloat162_rn(Os[row * LDO + d] * inv, Os[row * LDO + d + 1] * inv);
            *reinterpret_cast<__nv_bfloat162 *>(o + d) = v2;
        }
        if (lane == 0) lse[((size_t)b * NH + h) * T + t] = row_m[row] * LN2 + logf(l);
    }
}

/* Di = sum_d dO[i,d] * O[i,d] in fp32; one warp per (b, t, h) row. */
template <int D>
__global__ void flash_backward_dot_kernel(float *Dbuf, const bf16 *dout, const bf16 *out, int B,
                                          int T, int C, int NH) {
    const long long g = (long long)blockIdx.x * NWARPS + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (g >= (long long)B * NH * T) return;
    const int t = (int)(g % T), bh = (int)(g / T), b = bh / NH, h = bh % NH;
    const size_t off = ((size_t)b * T + t) * C + (size_t)h * D;
    float s = 0.0f;
    for (int d = lane; d < D; d += 32)
        s += __bfloat162float(dout[off + d]) * __bfloat162float(out[off + d]);
    s = warp_sum(s);
    if (lane == 0) Dbuf[((size_t)b * NH + h) * T + t] = s;
}

/* Shared-memory layout of both backward kernels (sizes in shoal_plan_fa_bwd_smem). */
template <int D> struct BwdSmem {
    static constexpr int LDB = D + SHOAL_FA_PAD_BF16, LDO = D + SHOAL_FA_PAD_F32;
    bf16 *Qs, *dOs, *Ks, *Vs, *Ps, *dSs;
    float *Ss, *dPs, *acc0, *acc1, *lse_s, *D_s;
    __device__ explicit BwdSmem(unsigned char *p) {
        Qs = reinterpret_cast<bf16 *>(p);
        dOs = Qs + BQ * LDB;
        Ks = dOs + BQ * LDB;
        Vs = Ks + BK * LDB;
        Ss = reinterpret_cast<float *>(Vs + BK * LDB);
        dPs = Ss + BQ * LDS;
        Ps = reinterpret_cast<bf16 *>(dPs + BQ * LDS);
        dSs = Ps + BQ * LDP;
        acc0 = reinterpret_cast<float *>(dSs + BQ * LDP);
        acc1 = acc0 + BK * LDO;
        lse_s = acc1 + BK * LDO;
        D_s = lse_s + BQ;
    }
};

/* Warp strip (16 query rows) of one (query tile, key tile) pair: S and dP by wmma, then P and
 * dS = P * (dP - Di) with the causal and tail masks, stored as bf16. */
template <int D>
__device__ __forceinline__ void bwd_scores(const BwdSmem<D> &sm, int r0, int q0, int k0, int T,
                                           float scale_log2, bool want_p) {
    constexpr int LDB = BwdSmem<D>::LDB;
    const int lane = threadIdx.x & 31;
    strip_mma<FragA, FragBT, BK / 16, D / 16>(sm.Ss + r0 * LDS, LDS, sm.Qs + r0 * LDB, LDB, 16,
                                              sm.Ks, LDB, 16, 16 * LDB, false);
    strip_mma<FragA, FragBT, BK / 16, D / 16>(sm.dPs + r0 * LDS, LDS, sm.dOs + r0 * LDB, LDB, 16,
                                              sm.Vs, LDB, 16, 16 * LDB, false);
    __syncwarp();
    for (int r = 0; r < 16; r++) {
        const int row = r0 + r, qidx = q0 + row;
        const float L = sm.lse_s[row], Di = sm.D_s[row];
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int c = lane + 32 * half, key = k0 + c;
            const bool vis = qidx < T && key < T && key <= qidx;
            const float p = vis ? exp2f(sm.Ss[row * LDS + c] * scale_log2 - L) : 0.0f;
            const float ds = p * (sm.dPs[row * LDS + c] - Di);
            if (want_p) sm.Ps[row * LDP + c] = __float2bfloat16_rn(p);
            sm.dSs[row * LDP + c] = __float2bfloat16_rn(ds);
        }
    }
    __syncwarp();
}

/* Load a query tile's Q, dO, LSE (pre-multiplied by log2 e) and Di. */
template <int D>
__device__ __forceinline__ void bwd_load_q(const BwdSmem<D> &sm, const bf16 *qbase,
                                           const bf16 *dobase, const float *lse_row,
                                           const float *D_row, int q0, int T, int C) {
    load_tile<D>(sm.Qs, qbase, 3 * (size_t)C, q0, T);
    load_tile<D>(sm.dOs, dobase, (size_t)C, q0, T);
    for (int i = threadIdx.x; i < BQ; i += NTHREADS) {
        const int t = q0 + i;
        sm.lse_s[i] = t < T ? lse_row[t] * LOG2E : 0.0f;
        sm.D_s[i] = t < T ? D_row[t] : 0.0f;
    }
}

/* dst[r, d] += s * acc[r, d] for the rows of a tile that exist (bf16 read-modify-write). */
template <int D>
__device__ __forceinline__ void add_tile_out(bf16 *dst, size_t row_stride, const float *acc,
                                             int row0, int T, float s) {
    constexpr int LDO = D + SHOAL_FA_PAD_F32;
    for (int i = threadIdx.x; i < 64 * (D / 2); i += NTHREADS) {
        const int r = i / (D / 2), d = (i % (D / 2)) * 2;
        if (row0 + r >= T) continue;
        __nv_bfloat162 *p =
            reinterpret_cast<__nv_bfloat162 *>(dst + (size_t)(row0 + r) * row_stride + d);
        float2 old = __bfloat1622float2(*p);
        *p = __floats2bfloat162_rn(old.x + s * acc[r * LDO + d], old.y + s * acc[r * LDO + d + 1]);
    }
}

/* dQ: one block per query tile; keys 0 .. end of the tile. */
template <int D>
__global__ void __launch_bounds__(NTHREADS)
    flash_backward_dq_bf16_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                                  const float *Dbuf, int T, int C, int NH) {
    constexpr int LDB = BwdSmem<D>::LDB, LDO = BwdSmem<D>::LDO;
    extern __shared__ __align__(128) unsigned char smem[];
    const BwdSmem<D> sm(smem);
    const int nq = shoal_plan_ceil_div_dev(T, BQ);
    const int qi = nq - 1 - (int)blockIdx.x;
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
    const int q0 = qi * BQ, r0 = (threadIdx.x >> 5) * 16;
    const size_t C3 = 3 * (size_t)C;
    const bf16 *qbase = qkv + (size_t)b * T * C3 + (size_t)h * D;
    const bf16 *dobase = dout + (size_t)b * T * C + (size_t)h * D;
    const float scale = rsqrtf((float)D);
    const size_t lrow = ((size_t)b * NH + h) * T;

    bwd_load_q<D>(sm, qbase, dobase, lse + lrow, Dbuf + lrow, q0, T, C);
    for (int i = threadIdx.x; i < BQ * LDO; i += NTHREADS)
        sm.acc0[i] = 0.0f;
    const int nkv = shoal_plan_fa_kv_tiles_dev(T, qi);
    for (int kj = 0; kj < nkv; kj++) {
        const int k0 = kj * BK;
        __syncthreads();
        load_tile<D>(sm.Ks, qbase + C, C3, k0, T);
        load_tile<D>(sm.Vs, qbase + 2 * (size_t)C, C3, k0, T);
        __syncthreads();
        bwd_scores<D>(sm, r0, q0, k0, T, scale * LOG2E, false);
        /* dQ strip (16 x D) += dS strip (16 x 64 keys) @ K (64 keys x D). */
        strip_mma<FragA, FragB, D / 16, BK / 16>(sm.acc0 + r0 * LDO, LDO, sm.dSs + r0 * LDP, LDP,
                                                 16, sm.Ks, LDB, 16 * LDB, 16, true);
        __syncwarp();
    }
    __syncthreads();
    add_tile_out<D>(dqkv + (size_t)b * T * C3 + (size_t)h * D, C3, sm.acc0, q0, T, scale);
}

/* dK, dV: one block per key tile; query tiles from the first that sees it to the end. */
template <int D>
__global__ void __launch_bounds__(NTHREADS)
    flash_backward_dkv_bf16_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                                   const float *Dbuf, int T, int C, int NH) {
    constexpr int LDB = BwdSmem<D>::LDB, LDO = BwdSmem<D>::LDO;
    extern __shared__ __align__(128) unsigned char smem[];
    const BwdSmem<D> sm(smem);
    const int nq = shoal_plan_ceil_div_dev(T, BQ);
    const int kj = (int)blockIdx.x; /* the first key tiles see the most queries: launch first */
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
    const int k0 = kj * BK, r0 = (threadIdx.x >> 5) * 16;
    const size_t C3 = 3 * (size_t)C;
    const bf16 *qbase = qkv + (size_t)b * T * C3 + (size_t)h * D;
    const bf16 *dobase = dout + (size_t)b * T * C + (size_t)h * D;
    const float scale = rsqrtf((float)D);
    const size_t lrow = ((size_t)b * NH + h) * T;

    load_tile<D>(sm.Ks, qbase + C, C3, k0, T);
    load_tile<D>(sm.Vs, qbase + 2 * (size_t)C, C3, k0, T);
    for (int i = threadIdx.x; i < BK * LDO; i += NTHREADS)
        sm.acc0[i] = sm.acc1[i] = 0.0f;
    for (int qi = shoal_plan_fa_first_q_tile_dev(kj); qi < nq; qi++) {
        const int q0 = qi * BQ;
        __syncthreads();
        bwd_load_q<D>(sm, qbase, dobase, lse + lrow, Dbuf + lrow, q0, T, C);
        __syncthreads();
        bwd_scores<D>(sm, r0, q0, k0, T, scale * LOG2E, true);
        __syncthreads(); /* the transposed products below read every warp's P and dS rows */
        /* dV strip (16 keys x D) += P^T (16 keys x 64 queries) @ dO (64 x D). P stored
         * (query, key) row-major is P^T col-major. */
        strip_mma<FragAT, FragB, D / 16, BQ / 16>(sm.acc1 + r0 * LDO, LDO, sm.Ps + r0, LDP,
                                                  16 * LDP, sm.dOs, LDB, 16 * LDB, 16, true);
        /* dK strip += dS^T @ Q. */
        strip_mma<FragAT, FragB, D / 16, BQ / 16>(sm.acc0 + r0 * LDO, LDO, sm.dSs + r0, LDP,
                                                  16 * LDP, sm.Qs, LDB, 16 * LDB, 16, true);
    }
    __syncthreads();
    bf16 *dk = dqkv + (size_t)b * T * C3 + C + (size_t)h * D;
    add_tile_out<D>(dk, C3, sm.acc0, k0, T, scale);
    add_tile_out<D>(dk + C, C3, sm.acc1, k0, T, 1.0f);
}

template <typename K> shoal_status set_smem(K kernel, size_t bytes) {
    int dev = 0, optin = 0;
    SHOAL_CUDA_TRY(cudaGetDevice(&dev));
    SHOAL_CUDA_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if ((size_t)optin < bytes) {
        SHOAL_LOG_ERROR("flash attention needs %zu bytes of shared memory per block; device %d "
                        "allows %d",
                        bytes, dev, optin);
        return SHOAL_ERR_UNSUPPORTED;
    }
    SHOAL_CUDA_TRY(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return SHOAL_OK;
}

template <int D>
shoal_status forward_launch(shoal_ctx *ctx, bf16 *out, float *lse, const bf16 *qkv, int B, int T,
                            int C, int NH) {
    const size_t smem = shoal_plan_fa_fwd_smem(D);
    SHOAL_CHECK(set_smem(flash_forward_bf16_kernel<D>, smem));
    dim3 grid((unsigned)shoal_plan_fa_q_tiles(T, BQ), (unsigned)(B * NH));
    flash_forward_bf16_kernel<D>
        <<<grid, NTHREADS, smem, SHOAL_CUDA_STREAM(ctx)>>>(out, lse, qkv, T, C, NH);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

template <int D>
shoal_status backward_launch(shoal_ctx *ctx, bf16 *dqkv, const bf16 *dout, const bf16 *qkv,
                             const bf16 *out, const float *lse, int B, int T, int C, int NH) {
    void *scratch = NULL;
    SHOAL_CHECK(shoal_cuda_scratch(ctx, (size_t)B * NH * T * sizeof(float), &scratch));
    float *Dbuf = (float *)scratch;
    cudaStream_t s = SHOAL_CUDA_STREAM(ctx);
    flash_backward_dot_kernel<D>
        <<<(unsigned)shoal_plan_ceil_div((long long)B * NH * T, NWARPS), NTHREADS, 0, s>>>(
            Dbuf, dout, out, B, T, C, NH);
    SHOAL_CUDA_LAUNCHED();
    const size_t smem = shoal_plan_fa_bwd_smem(D);
    SHOAL_CHECK(set_smem(flash_backward_dq_bf16_kernel<D>, smem));
    SHOAL_CHECK(set_smem(flash_backward_dkv_bf16_kernel<D>, smem));
    dim3 grid((unsigned)shoal_plan_fa_q_tiles(T, BQ), (unsigned)(B * NH));
    flash_backward_dkv_bf16_kernel<D>
        <<<grid, NTHREADS, smem, s>>>(dqkv, dout, qkv, lse, Dbuf, T, C, NH);
    SHOAL_CUDA_LAUNCHED();
    flash_backward_dq_bf16_kernel<D>
        <<<grid, NTHREADS, smem, s>>>(dqkv, dout, qkv, lse, Dbuf, T, C, NH);
    SHOAL_CUDA_LAUNCHED();
    return SHOAL_OK;
}

} // namespace

extern "C" {

shoal_status shoal_attention_forward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *out, float *lse,
                                               const shoal_bf16 *qkv, int B, int T, int C, int NH) {
    SHOAL_CHECK(shoal_plan_attention_check(SHOAL_FA_PATH_BF16, B, T, C, NH, 0));
    if (C / NH == 64)
        return forward_launch<64>(ctx, (bf16 *)out, lse, (const bf16 *)qkv, B, T, C, NH);
    return forward_launch<128>(ctx, (bf16 *)out, lse, (const bf16 *)qkv, B, T, C, NH);
}

shoal_status shoal_attention_backward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *dqkv,
                                                const shoal_bf16 *dout, const shoal_bf16 *qkv,
                                                const shoal_bf16 *out, const float *lse, int B,
                                                int T, int C, int NH) {
    SHOAL_CHECK(shoal_plan_attention_check(SHOAL_FA_PATH_BF16, B, T, C, NH, 0));
    if (!dqkv) return SHOAL_OK;
    if (C / NH == 64)
        return backward_launch<64>(ctx, (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv,
                                   (const bf16 *)out, lse, B, T, C, NH);
    return backward_launch<128>(ctx, (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv,
                                (const bf16 *)out, lse, B, T, C, NH);
}

} // extern "C"
