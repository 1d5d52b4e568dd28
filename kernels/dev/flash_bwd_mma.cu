/* flash_bwd_mma.cu: kernel lab (never linked into the product): the deterministic two-kernel
 * flash-attention backward with register accumulators on mma.sync m16n8k16, checked against
 * a CPU reference (one head) and the product kernel, and timed beside it.
 *
 * Why: the product backward (kernels/cuda/attention_bf16.cu) round-trips S, dP, P, dS and the
 * dQ/dK/dV accumulators through shared memory (wmma hides element ownership). Here:
 *  - dK/dV kernel, one block per 64-key tile, warp w owns keys 16w..16w+15: it computes the
 *    TRANSPOSED scores S^T = K Q^T and dP^T = V dO^T, so P^T and dS^T come out in the
 *    accumulator layout, which is exactly the A-fragment layout of the next products
 *    dV += P^T dO and dK += dS^T Q: nothing leaves registers but the Q/dO tiles it reads.
 *  - dQ kernel, one block per 64-query tile: S = Q K^T, dP = dO V^T, dS in registers as the A
 *    fragment of dQ += dS K.
 * Q/dO (or K/V) tiles are double-buffered with cp.async. No atomics: bit-identical reruns.
 * Never run on a GPU yet; predictions in bench/attention/NOTES.md.
 * usage: dev_flash_bwd_mma [B H T D reps]   (exit 77 without a device)
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/dev/mma_helpers.cuh"

extern "C" {
#include "kernels/cuda/cuda_plan.h"
#include "kernels/cuda/ops_cuda.h"
}

typedef __nv_bfloat16 bf16;
constexpr int BQ = 64, BK = 64, NT = 128;
constexpr float LOG2E = 1.4426950408889634f;

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* acc (16 x 64, 8 n-tiles) += A strip (16 rows of `a`, D wide) @ B^T where B is stored
 * [n][k] (64 rows of `b`, D wide): the "row-major times row-major transposed" product. */
template <int D>
__device__ __forceinline__ void mma_abt(float (&acc)[8][4], const bf16 *a, const bf16 *b) {
    constexpr int LDB = D + 8;
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk += 2) {
        uint32_t fa0[4], fa1[4];
        ldsm_x4(fa0, a + (lane & 15) * LDB + kk * 16 + (lane >> 4) * 8);
        ldsm_x4(fa1, a + (lane & 15) * LDB + (kk + 1) * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            uint32_t r[4];
            ldsm_x4(r, b + (nt * 8 + (lane & 7)) * LDB + kk * 16 + (lane >> 3) * 8);
            mma16816(acc[nt], fa0, r[0], r[1]);
            mma16816(acc[nt], fa1, r[2], r[3]);
        }
    }
}

/* out (16 x D, D/8 n-tiles) += P (16 x 64, accumulator layout) @ M where M is stored [k][n]
 * (64 rows of `m`, D wide). */
template <int D>
__device__ __forceinline__ void mma_pm(float (&out)[D / 8][4], const float (&p)[8][4],
                                       const bf16 *m) {
    constexpr int LDB = D + 8;
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        uint32_t pa[4] = {pack_bf16x2(p[2 * kk][0], p[2 * kk][1]),
                          pack_bf16x2(p[2 * kk][2], p[2 * kk][3]),
                          pack_bf16x2(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                          pack_bf16x2(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
        for (int dt = 0; dt < D / 8; dt += 2) {
            uint32_t r[4];
            ldsm_x4_trans(r, m + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDB + dt * 8 +
                                 (lane >> 4) * 8);
            mma16816(out[dt], pa, r[0], r[1]);
            mma16816(out[dt + 1], pa, r[2], r[3]);
        }
    }
}

/* dst rows (16 x D strip starting at row0) += s * acc, bf16 read-modify-write, rows < T. */
template <int D>
__device__ __forceinline__ void add_strip(bf16 *dst, size_t stride, const float (&acc)[D / 8][4],
                                          int row0, int T, float s) {
    const int lane = threadIdx.x & 31, g = lane >> 2, qd = lane & 3;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = row0 + g + 8 * r;
        if (row >= T) continue;
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++) {
            __nv_bfloat162 *p =
                reinterpret_cast<__nv_bfloat162 *>(dst + (size_t)row * stride + dt * 8 + 2 * qd);
            float2 old = __bfloat1622float2(*p);
            *p = __floats2bfloat162_rn(old.x + s * acc[dt][2 * r], old.y + s * acc[dt][2 * r + 1]);
        }
    }
}

__global__ void dot_kernel(float *Dbuf, const bf16 *dout, const bf16 *out, int B, int T, int C,
                           int NH, int D) {
    const long long gw = (long long)blockIdx.x * 4 + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (gw >= (long long)B * NH * T) return;
    const int t = (int)(gw % T), bh = (int)(gw / T), b = bh / NH, h = bh % NH;
    const size_t off = ((size_t)b * T + t) * C + (size_t)h * D;
    float s = 0.0f;
    for (int d = lane; d < D; d += 32)
        s += __bfloat162float(dout[off + d]) * __bfloat162float(out[off + d]);
    for (int o = 16; o > 0; o >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) Dbuf[((size_t)b * NH + h) * T + t] = s;
}

template <int D>
__global__ void __launch_bounds__(NT)
    bwd_dkv_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                   const float *Dbuf, int T, int C, int NH) {
    constexpr int LDB = D + 8;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Ks = reinterpret_cast<bf16 *>(smem), *Vs = Ks + BK * LDB;
    bf16 *Qs = Vs + BK * LDB;                                  /* 2 buffers */
    bf16 *dOs = Qs + 2 * BQ * LDB;                             /* 2 buffers */
    float *Ls = reinterpret_cast<float *>(dOs + 2 * BQ * LDB); /* 2 x 64 (lse * log2 e) */
    float *Ds = Ls + 2 * BQ;                                   /* 2 x 64 */
    const int nq = shoal_plan_ceil_div_dev(T, BQ), kj = (int)blockIdx.x;
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH, k0 = kj * BK;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, qd = lane & 3;
    const size_t C3 = 3 * (size_t)C;
    const bf16 *base = qkv + (size_t)b * T * C3 + (size_t)h * D;
    const bf16 *obase = dout + (size_t)b * T * C + (size_t)h * D;
    const float *lrow = lse + ((size_t)b * NH + h) * T, *drow = Dbuf + ((size_t)b * NH + h) * T;
    const float scale = rsqrtf((float)D), scale_log2 = scale * LOG2E;
    const int first = shoal_plan_fa_first_q_tile_dev(kj);

    load_tile_async<D, NT>(Ks, base + C, C3, k0, T);
    load_tile_async<D, NT>(Vs, base + 2 * (size_t)C, C3, k0, T);
    load_tile_async<D, NT>(Qs, base, C3, first * BQ, T);
    load_tile_async<D, NT>(dOs, obase, (size_t)C, first * BQ, T);
    cp_async_commit();
    for (int i = threadIdx.x; i < BQ; i += NT) {
        const int t = first * BQ + i;
        Ls[i] = t < T ? lrow[t] * LOG2E : 0.0f;
        Ds[i] = t < T ? drow[t] : 0.0f;
    }
    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            dk[i][e] = dv[i][e] = 0.0f;

    for (int qi = first; qi < nq; qi++) {
        const int buf = (qi - first) & 1, q0 = qi * BQ;
        const bf16 *Qb = Qs + buf * BQ * LDB, *dOb = dOs + buf * BQ * LDB;
        const float *Lb = Ls + buf * BQ, *Db = Ds + buf * BQ;
        if (qi + 1 < nq) {
            load_tile_async<D, NT>(Qs + (buf ^ 1) * BQ * LDB, base, C3, q0 + BQ, T);
            load_tile_async<D, NT>(dOs + (buf ^ 1) * BQ * LDB, obase, (size_t)C, q0 + BQ, T);
            cp_async_commit();
            for (int i = threadIdx.x; i < BQ; i += NT) {
                const int t = q0 + BQ + i;
                Ls[(buf ^ 1) * BQ + i] = t < T ? lrow[t] * LOG2E : 0.0f;
                Ds[(buf ^ 1) * BQ + i] = t < T ? drow[t] : 0.0f;
            }
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        float st[8][4], dpt[8][4];
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                st[nt][e] = dpt[nt][e] = 0.0f;
        mma_abt<D>(st, Ks + warp * 16 * LDB, Qb);   /* S^T strip: keys x queries */
        mma_abt<D>(dpt, Vs + warp * 16 * LDB, dOb); /* dP^T strip */
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int key = k0 + warp * 16 + g + (e >> 1) * 8;
                const int ql = nt * 8 + 2 * qd + (e & 1), query = q0 + ql;
                const bool vis = query < T && key < T && key <= query;
                const float p = vis ? exp2f(st[nt][e] * scale_log2 - Lb[ql]) : 0.0f;
                st[nt][e] = p;                          /* P^T */
                dpt[nt][e] = p * (dpt[nt][e] - Db[ql]); /* dS^T */
            }
        mma_pm<D>(dv, st, dOb); /* dV strip += P^T dO */
        mma_pm<D>(dk, dpt, Qb); /* dK strip += dS^T Q */
        __syncthreads();        /* the next iteration's prefetch refills this buffer */
    }
    bf16 *dkbase = dqkv + (size_t)b * T * C3 + C + (size_t)h * D;
    add_strip<D>(dkbase, C3, dk, k0 + warp * 16, T, scale);
    add_strip<D>(dkbase + C, C3, dv, k0 + warp * 16, T, 1.0f);
}

template <int D>
__global__ void __launch_bounds__(NT)
    bwd_dq_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                  const float *Dbuf, int T, int C, int NH) {
    constexpr int LDB = D + 8;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(smem), *dOs = Qs + BQ * LDB;
    bf16 *Ks = dOs + BQ * LDB; /* 2 buffers */
    bf16 *Vs = Ks + 2 * BK * LDB;
    float *Ls = reinterpret_cast<float *>(Vs + 2 * BK * LDB), *Ds = Ls + BQ;
    const int nq = shoal_plan_ceil_div_dev(T, BQ), qi = nq - 1 - (int)blockIdx.x;
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH, q0 = qi * BQ;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, qd = lane & 3;
    const size_t C3 = 3 * (size_t)C;
    const bf16 *base = qkv + (size_t)b * T * C3 + (size_t)h * D;
    const bf16 *obase = dout + (size_t)b * T * C + (size_t)h * D;
    const float scale = rsqrtf((float)D), scale_log2 = scale * LOG2E;
    const int nkv = shoal_plan_fa_kv_tiles_dev(T, qi);

    load_tile_async<D, NT>(Qs, base, C3, q0, T);
    load_tile_async<D, NT>(dOs, obase, (size_t)C, q0, T);
    load_tile_async<D, NT>(Ks, base + C, C3, 0, T);
    load_tile_async<D, NT>(Vs, base + 2 * (size_t)C, C3, 0, T);
    cp_async_commit();
    for (int i = threadIdx.x; i < BQ; i += NT) {
        const int t = q0 + i;
        Ls[i] = t < T ? lse[((size_t)b * NH + h) * T + t] * LOG2E : 0.0f;
        Ds[i] = t < T ? Dbuf[((size_t)b * NH + h) * T + t] : 0.0f;
    }
    float dq[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++)
        dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.0f;
    for (int kj = 0; kj < nkv; kj++) {
        const int buf = kj & 1, k0 = kj * BK;
        const bf16 *Kb = Ks + buf * BK * LDB, *Vb = Vs + buf * BK * LDB;
        if (kj + 1 < nkv) {
            load_tile_async<D, NT>(Ks + (buf ^ 1) * BK * LDB, base + C, C3, k0 + BK, T);
            load_tile_async<D, NT>(Vs + (buf ^ 1) * BK * LDB, base + 2 * (size_t)C, C3, k0 + BK, T);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        float s[8][4], dp[8][4];
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                s[nt][e] = dp[nt][e] = 0.0f;
        mma_abt<D>(s, Qs + warp * 16 * LDB, Kb);
        mma_abt<D>(dp, dOs + warp * 16 * LDB, Vb);
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int ql = warp * 16 + g + (e >> 1) * 8, query = q0 + ql;
                const int key = k0 + nt * 8 + 2 * qd + (e & 1);
                const bool vis = query < T && key < T && key <= query;
                const float p = vis ? exp2f(s[nt][e] * scale_log2 - Ls[ql]) : 0.0f;
                s[nt][e] = p * (dp[nt][e] - Ds[ql]); /* dS */
            }
        mma_pm<D>(dq, s, Kb); /* dQ strip += dS K */
        __syncthreads();
    }
    add_strip<D>(dqkv + (size_t)b * T * C3 + (size_t)h * D, C3, dq, q0 + warp * 16, T, scale);
}

template <int D> static size_t smem_bytes() {
    return (size_t)6 * 64 * (D + 8) * sizeof(bf16) + 4 * 64 * sizeof(float);
}

template <int D>
static void launch(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const bf16 *out, const float *lse,
                   float *Dbuf, int B, int T, int C, int NH, cudaStream_t s) {
    dot_kernel<<<(unsigned)shoal_plan_ceil_div((long long)B * NH * T, 4), 128, 0, s>>>(
        Dbuf, dout, out, B, T, C, NH, D);
    CK(cudaGetLastError());
    const size_t sm = smem_bytes<D>();
    CK(cudaFuncSetAttribute(bwd_dkv_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            (int)sm));
    CK(cudaFuncSetAttribute(bwd_dq_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            (int)sm));
    dim3 grid((unsigned)shoal_plan_fa_q_tiles(T, BQ), (unsigned)(B * NH));
    bwd_dkv_kernel<D><<<grid, NT, sm, s>>>(dqkv, dout, qkv, lse, Dbuf, T, C, NH);
    CK(cudaGetLastError());
    bwd_dq_kernel<D><<<grid, NT, sm, s>>>(dqkv, dout, qkv, lse, Dbuf, T, C, NH);
    CK(cudaGetLastError());
}

static int cmpf(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static bf16 *rand_dev(size_t n, uint32_t seed, uint16_t **host) {
    uint16_t *h = (uint16_t *)malloc(n * 2);
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        h[i] = shoal_plan_f32_to_bf16(((float)(x >> 8) / 16777216.0f - 0.5f) * 2.0f);
    }
    bf16 *d;
    CK(cudaMalloc(&d, n * 2));
    CK(cudaMemcpy(d, h, n * 2, cudaMemcpyHostToDevice));
    if (host)
        *host = h;
    else
        free(h);
    return d;
}

static float bf(uint16_t x) {
    return shoal_plan_bf16_to_f32(x);
}

int main(int argc, char **argv) {
    if (shoal_cuda_device_count() == 0) {
        printf("skipped: no CUDA device\n");
        return 77;
    }
    int B = argc > 4 ? atoi(argv[1]) : 8, NH = argc > 4 ? atoi(argv[2]) : 12;
    int T = argc > 4 ? atoi(argv[3]) : 1024, D = argc > 4 ? atoi(argv[4]) : 64;
    int reps = argc > 5 ? atoi(argv[5]) : 30;
    if (shoal_plan_attention_check(SHOAL_FA_PATH_BF16, B, T, NH * D, NH, 0) != SHOAL_OK) return 2;
    const int C = NH * D;
    const size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, nl = (size_t)B * NH * T;
    uint16_t *hq, *hg;
    bf16 *qkv = rand_dev(nq, 2463534242u, &hq), *dout = rand_dev(no, 88675123u, &hg), *out;
    bf16 *d1, *d2;
    float *lse, *Dbuf;
    CK(cudaMalloc(&out, no * 2));
    CK(cudaMalloc(&d1, nq * 2));
    CK(cudaMalloc(&d2, nq * 2));
    CK(cudaMalloc(&lse, nl * 4));
    CK(cudaMalloc(&Dbuf, nl * 4));
    shoal_ctx ctx;
    if (shoal_ctx_init_cuda(&ctx, 0) != SHOAL_OK) return 1;
    cudaStream_t s = (cudaStream_t)ctx.stream;
    if (shoal_attention_forward_bf16_cuda(&ctx, (shoal_bf16 *)out, lse, (const shoal_bf16 *)qkv, B,
                                          T, C, NH) != SHOAL_OK)
        return 1;
    CK(cudaMemsetAsync(d1, 0, nq * 2, s));
    CK(cudaMemsetAsync(d2, 0, nq * 2, s));
    if (D == 64)
        launch<64>(d1, dout, qkv, out, lse, Dbuf, B, T, C, NH, s);
    else
        launch<128>(d1, dout, qkv, out, lse, Dbuf, B, T, C, NH, s);
    if (shoal_attention_backward_bf16_cuda(&ctx, (shoal_bf16 *)d2, (const shoal_bf16 *)dout,
                                           (const shoal_bf16 *)qkv, (const shoal_bf16 *)out, lse, B,
                                           T, C, NH) != SHOAL_OK)
        return 1;
    CK(cudaStreamSynchronize(s));
    uint16_t *h1 = (uint16_t *)malloc(nq * 2), *h2 = (uint16_t *)malloc(nq * 2);
    CK(cudaMemcpy(h1, d1, nq * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(h2, d2, nq * 2, cudaMemcpyDeviceToHost));
    /* CPU reference, batch 0 head 0, fp32 on the bf16 inputs */
    double num = 0, den = 0, pn = 0, pd = 0;
    {
        const float sc = 1.0f / sqrtf((float)D);
        float *P = (float *)calloc((size_t)T * T, 4), *dq = (float *)calloc((size_t)T * D, 4);
        float *dk = (float *)calloc((size_t)T * D, 4), *dvv = (float *)calloc((size_t)T * D, 4);
#define Q_(t, e) bf(hq[(size_t)(t)*3 * C + (e)])
#define K_(t, e) bf(hq[(size_t)(t)*3 * C + C + (e)])
#define V_(t, e) bf(hq[(size_t)(t)*3 * C + 2 * C + (e)])
#define G_(t, e) bf(hg[(size_t)(t)*C + (e)])
        for (int i = 0; i < T; i++) {
            float mx = -INFINITY, sum = 0;
            for (int j = 0; j <= i; j++) {
                float d = 0;
                for (int e = 0; e < D; e++)
                    d += Q_(i, e) * K_(j, e);
                P[(size_t)i * T + j] = d * sc;
                mx = fmaxf(mx, d * sc);
            }
            for (int j = 0; j <= i; j++)
                sum += (P[(size_t)i * T + j] = expf(P[(size_t)i * T + j] - mx));
            for (int j = 0; j <= i; j++)
                P[(size_t)i * T + j] /= sum;
            float Di = 0, *dpr = (float *)malloc(sizeof(float) * (i + 1));
            for (int j = 0; j <= i; j++) {
                float d = 0;
                for (int e = 0; e < D; e++)
                    d += G_(i, e) * V_(j, e);
                dpr[j] = d;
                Di += P[(size_t)i * T + j] * d;
            }
            for (int j = 0; j <= i; j++) {
                float p = P[(size_t)i * T + j], ds = p * (dpr[j] - Di);
                for (int e = 0; e < D; e++) {
                    dq[(size_t)i * D + e] += sc * ds * K_(j, e);
                    dk[(size_t)j * D + e] += sc * ds * Q_(i, e);
                    dvv[(size_t)j * D + e] += p * G_(i, e);
                }
            }
            free(dpr);
        }
        for (int t = 0; t < T; t++)
            for (int e = 0; e < D; e++)
                for (int w = 0; w < 3; w++) {
                    float ref = (w == 0 ? dq : w == 1 ? dk : dvv)[(size_t)t * D + e];
                    float got = bf(h1[(size_t)t * 3 * C + (size_t)w * C + e]);
                    num += (double)(got - ref) * (got - ref);
                    den += (double)ref * ref;
                }
        free(P);
        free(dq);
        free(dk);
        free(dvv);
    }
    for (size_t i = 0; i < nq; i++) {
        float a = bf(h1[i]), c = bf(h2[i]);
        pn += (double)(a - c) * (a - c);
        pd += (double)c * c;
    }
    const double err = sqrt(num / den), perr = sqrt(pn / pd);
    printf("check: rel err vs CPU (b 0, h 0) %.3g, vs product kernel %.3g\n", err, perr);
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float *ms = (float *)malloc(sizeof(float) * reps);
    const double flops = shoal_plan_fa_flops_bwd(B, NH, T, D, 1);
    for (int which = 0; which < 2; which++) {
        for (int i = 0; i < reps + 5; i++) {
            CK(cudaEventRecord(e0, s));
            if (which == 0) {
                if (D == 64)
                    launch<64>(d1, dout, qkv, out, lse, Dbuf, B, T, C, NH, s);
                else
                    launch<128>(d1, dout, qkv, out, lse, Dbuf, B, T, C, NH, s);
            } else if (shoal_attention_backward_bf16_cuda(
                           &ctx, (shoal_bf16 *)d2, (const shoal_bf16 *)dout,
                           (const shoal_bf16 *)qkv, (const shoal_bf16 *)out, lse, B, T, C,
                           NH) != SHOAL_OK) {
                return 1;
            }
            CK(cudaEventRecord(e1, s));
            CK(cudaEventSynchronize(e1));
            if (i >= 5) CK(cudaEventElapsedTime(&ms[i - 5], e0, e1));
        }
        qsort(ms, reps, sizeof(float), cmpf);
        printf("%s bwd B=%d H=%d T=%d D=%d: %.4f ms, %.1f TFLOP/s\n",
               which == 0 ? "lab mma.sync" : "product wmma", B, NH, T, D, ms[reps / 2],
               flops / (ms[reps / 2] * 1e-3) / 1e12);
    }
    shoal_ctx_free_cuda(&ctx);
    return err < 2e-2 && perr < 2e-2 ? 0 : 1;
}
