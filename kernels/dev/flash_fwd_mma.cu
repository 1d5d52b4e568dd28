/* flash_fwd_mma.cu: kernel lab (never linked into the product): a FlashAttention-2-style causal
 * forward with register accumulators on mma.sync m16n8k16, ldmatrix and cp.async double
 * buffering, checked against a CPU reference and timed beside the product kernel
 * (kernels/cuda/attention_bf16.cu, wmma with shared-memory accumulators).
 *
 * Why: the product kernel keeps O and S in shared memory because wmma hides which row a
 * fragment element belongs to; with mma.sync the layout is documented (thread lane holds rows
 * lane/4 and lane/4 + 8, columns 2*(lane%4) + {0,1} of each 16x8 tile), so the online-softmax
 * rescale, the P -> A-fragment reuse and O stay in registers, and K/V loads of the next tile
 * overlap the current tile's math. Prediction (unmeasured: written without a GPU): 2-3x the
 * product forward at hd 64, T 1024. Promote it to kernels/cuda only after it passes the same
 * gpu tests. Never run on a GPU yet.
 * usage: dev_flash_fwd_mma [B H T D reps]   (exit 77 without a device)
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
constexpr float LOG2E = 1.4426950408889634f, LN2 = 0.6931471805599453f;

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

template <int D>
__global__ void __launch_bounds__(NT)
    fa_fwd_mma_kernel(bf16 *out, float *lse, const bf16 *qkv, int T, int C, int NH) {
    constexpr int LDB = D + 8, KT = D / 16, DT = D / 8;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(smem);
    bf16 *Ks = Qs + BQ * LDB; /* two buffers */
    bf16 *Vs = Ks + 2 * BK * LDB;
    const int nq = shoal_plan_ceil_div_dev(T, BQ), qi = nq - 1 - (int)blockIdx.x;
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
    const int q0 = qi * BQ, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, qd = lane & 3;
    const size_t C3 = 3 * (size_t)C;
    const bf16 *base = qkv + (size_t)b * T * C3 + (size_t)h * D;
    const float scale_log2 = rsqrtf((float)D) * LOG2E;
    const int nkv = shoal_plan_fa_kv_tiles_dev(T, qi);

    load_tile_async<D, NT>(Qs, base, C3, q0, T);
    load_tile_async<D, NT>(Ks, base + C, C3, 0, T);
    load_tile_async<D, NT>(Vs, base + 2 * (size_t)C, C3, 0, T);
    cp_async_commit();

    uint32_t qf[KT][4];
    float o[DT][4];
#pragma unroll
    for (int i = 0; i < DT; i++)
        o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

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
        if (kj == 0) {
#pragma unroll
            for (int kk = 0; kk < KT; kk++)
                ldsm_x4(qf[kk], Qs + (warp * 16 + (lane & 15)) * LDB + kk * 16 + (lane >> 4) * 8);
        }
        /* S (16 x 64) = Q strip @ K^T */
        float s[8][4];
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < KT; kk += 2) {
                uint32_t r[4];
                ldsm_x4(r, Kb + (nt * 8 + (lane & 7)) * LDB + kk * 16 + (lane >> 3) * 8);
                mma16816(s[nt], qf[kk], r[0], r[1]);
                mma16816(s[nt], qf[kk + 1], r[2], r[3]);
            }
        }
        const bool need_mask = k0 + BK - 1 > q0 + warp * 16 || k0 + BK > T;
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int row = q0 + warp * 16 + g + (e >> 1) * 8;
                const int key = k0 + nt * 8 + 2 * qd + (e & 1);
                float v = s[nt][e] * scale_log2;
                if (need_mask && (key > row || key >= T)) v = -INFINITY;
                s[nt][e] = v;
                mx[e >> 1] = fmaxf(mx[e >> 1], v);
            }
        float alpha[2], bas[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            const float m_new = fmaxf(m[r], mx[r]);
            bas[r] = m_new == -INFINITY ? 0.0f : m_new;
            alpha[r] = exp2f(m[r] - bas[r]);
            m[r] = m_new;
            l[r] *= alpha[r];
        }
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float p = exp2f(s[nt][e] - bas[e >> 1]);
                s[nt][e] = p;
                l[e >> 1] += p;
            }
#pragma unroll
        for (int dt = 0; dt < DT; dt++) {
            o[dt][0] *= alpha[0];
            o[dt][1] *= alpha[0];
            o[dt][2] *= alpha[1];
            o[dt][3] *= alpha[1];
        }
        /* O += P @ V: P's accumulator layout is the A-fragment layout, 16 keys per k-step. */
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            uint32_t pa[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]),
                              pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                              pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int dt = 0; dt < DT; dt += 2) {
                uint32_t r[4];
                ldsm_x4_trans(r, Vb + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDB +
                                     dt * 8 + (lane >> 4) * 8);
                mma16816(o[dt], pa, r[0], r[1]);
                mma16816(o[dt + 1], pa, r[2], r[3]);
            }
        }
        __syncthreads(); /* this buffer is refilled by the next iteration's prefetch */
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        const int row = q0 + warp * 16 + g + r * 8;
        if (row >= T) continue;
        const float inv = 1.0f / l[r];
        bf16 *orow = out + ((size_t)b * T + row) * C + (size_t)h * D;
#pragma unroll
        for (int dt = 0; dt < DT; dt++)
            *reinterpret_cast<__nv_bfloat162 *>(orow + dt * 8 + 2 * qd) =
                __floats2bfloat162_rn(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
        if (qd == 0) lse[((size_t)b * NH + h) * T + row] = m[r] * LN2 + logf(l[r]);
    }
}

template <int D> static size_t smem_bytes() {
    return (size_t)5 * 64 * (D + 8) * sizeof(bf16);
}

template <int D>
static void launch(bf16 *out, float *lse, const bf16 *qkv, int B, int T, int C, int NH,
                   cudaStream_t s) {
    CK(cudaFuncSetAttribute(fa_fwd_mma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            (int)smem_bytes<D>()));
    dim3 grid((unsigned)shoal_plan_fa_q_tiles(T, BQ), (unsigned)(B * NH));
    fa_fwd_mma_kernel<D><<<grid, NT, smem_bytes<D>(), s>>>(out, lse, qkv, T, C, NH);
    CK(cudaGetLastError());
}

static int cmpf(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
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
    int C = NH * D;
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, nl = (size_t)B * NH * T;
    uint16_t *hq = (uint16_t *)malloc(nq * 2);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < nq; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        hq[i] = shoal_plan_f32_to_bf16(((float)(x >> 8) / 16777216.0f - 0.5f) * 4.0f);
    }
    bf16 *dq, *o1, *o2;
    float *l1, *l2;
    CK(cudaMalloc(&dq, nq * 2));
    CK(cudaMalloc(&o1, no * 2));
    CK(cudaMalloc(&o2, no * 2));
    CK(cudaMalloc(&l1, nl * 4));
    CK(cudaMalloc(&l2, nl * 4));
    CK(cudaMemcpy(dq, hq, nq * 2, cudaMemcpyHostToDevice));
    CK(cudaMemset(o1, 0xff, no * 2));
    shoal_ctx ctx;
    if (shoal_ctx_init_cuda(&ctx, 0) != SHOAL_OK) return 1;
    cudaStream_t s = (cudaStream_t)ctx.stream;
    if (D == 64)
        launch<64>(o1, l1, dq, B, T, C, NH, s);
    else
        launch<128>(o1, l1, dq, B, T, C, NH, s);
    if (shoal_attention_forward_bf16_cuda(&ctx, (shoal_bf16 *)o2, l2, (const shoal_bf16 *)dq, B, T,
                                          C, NH) != SHOAL_OK)
        return 1;
    CK(cudaStreamSynchronize(s));
    /* check: batch 0 against a CPU fp32 reference, everything against the product kernel */
    uint16_t *h1 = (uint16_t *)malloc(no * 2), *h2 = (uint16_t *)malloc(no * 2);
    CK(cudaMemcpy(h1, o1, no * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(h2, o2, no * 2, cudaMemcpyDeviceToHost));
    double num = 0, den = 0, pn = 0, pd = 0;
    float *sc = (float *)malloc(sizeof(float) * T);
    for (int h = 0; h < NH; h++)
        for (int t = 0; t < T; t++) {
            const uint16_t *qr = hq + (size_t)t * 3 * C + (size_t)h * D;
            float mx = -INFINITY, sum = 0;
            for (int j = 0; j <= t; j++) {
                const uint16_t *kr = hq + (size_t)j * 3 * C + C + (size_t)h * D;
                float d = 0;
                for (int e = 0; e < D; e++)
                    d += shoal_plan_bf16_to_f32(qr[e]) * shoal_plan_bf16_to_f32(kr[e]);
                sc[j] = d / sqrtf((float)D);
                mx = fmaxf(mx, sc[j]);
            }
            for (int j = 0; j <= t; j++)
                sum += (sc[j] = expf(sc[j] - mx));
            for (int e = 0; e < D; e++) {
                float acc = 0;
                for (int j = 0; j <= t; j++)
                    acc += sc[j] * shoal_plan_bf16_to_f32(
                                       hq[(size_t)j * 3 * C + 2 * C + (size_t)h * D + e]);
                float ref = acc / sum,
                      got = shoal_plan_bf16_to_f32(h1[(size_t)t * C + (size_t)h * D + e]);
                num += (double)(got - ref) * (got - ref);
                den += (double)ref * ref;
            }
        }
    for (size_t i = 0; i < no; i++) {
        float a = shoal_plan_bf16_to_f32(h1[i]), c = shoal_plan_bf16_to_f32(h2[i]);
        pn += (double)(a - c) * (a - c);
        pd += (double)c * c;
    }
    double err = sqrt(num / den), perr = sqrt(pn / pd);
    printf("check: rel err vs CPU (batch 0) %.3g, vs product kernel %.3g\n", err, perr);
    /* time both */
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float *ms = (float *)malloc(sizeof(float) * reps);
    double flops = shoal_plan_fa_flops_fwd(B, NH, T, D, 1);
    for (int which = 0; which < 2; which++) {
        for (int i = 0; i < reps + 5; i++) {
            CK(cudaEventRecord(e0, s));
            if (which == 0) {
                if (D == 64)
                    launch<64>(o1, l1, dq, B, T, C, NH, s);
                else
                    launch<128>(o1, l1, dq, B, T, C, NH, s);
            } else if (shoal_attention_forward_bf16_cuda(&ctx, (shoal_bf16 *)o2, l2,
                                                         (const shoal_bf16 *)dq, B, T, C,
                                                         NH) != SHOAL_OK) {
                return 1;
            }
            CK(cudaEventRecord(e1, s));
            CK(cudaEventSynchronize(e1));
            if (i >= 5) CK(cudaEventElapsedTime(&ms[i - 5], e0, e1));
        }
        qsort(ms, reps, sizeof(float), cmpf);
        printf("%s fwd B=%d H=%d T=%d D=%d: %.4f ms, %.1f TFLOP/s\n",
               which == 0 ? "lab mma.sync" : "product wmma", B, NH, T, D, ms[reps / 2],
               flops / (ms[reps / 2] * 1e-3) / 1e12);
    }
    shoal_ctx_free_cuda(&ctx);
    return err < 2e-2 && perr < 2e-2 ? 0 : 1;
}
