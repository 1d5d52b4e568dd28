/* mma_helpers.cuh: inline-PTX wrappers the kernel-lab files share: cp.async (16 bytes, zero
 * fill), ldmatrix x4 (plain and transposed), mma.sync m16n8k16 bf16 -> fp32, bf16x2 packing.
 * Register layouts (PTX ISA, "Matrix fragments for mma.m16n8k16"): with g = lane/4, q = lane%4,
 * A regs 0..3 hold (row g, cols 2q..2q+1), (g+8, 2q..), (g, 8+2q..), (g+8, 8+2q..); B regs 0..1
 * hold (k 2q..2q+1, col g), (k 8+2q.., g); C/D regs 0..3 hold (g, 2q), (g, 2q+1), (g+8, 2q),
 * (g+8, 2q+1). Lab only: never linked into the product.
 */
#ifndef SHOAL_KERNELS_DEV_MMA_HELPERS_CUH
#define SHOAL_KERNELS_DEV_MMA_HELPERS_CUH

#include <cuda_bf16.h>
#include <stdint.h>

__device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* 64 rows x D of one head into a padded shared tile, 16 bytes per cp.async; rows >= T zero. */
template <int D, int NTHR>
__device__ __forceinline__ void load_tile_async(__nv_bfloat16 *tile, const __nv_bfloat16 *src,
                                                size_t stride, int row0, int T) {
    constexpr int LDB = D + 8, CH = D / 8;
    for (int i = threadIdx.x; i < 64 * CH; i += NTHR) {
        int r = i / CH, c = (i % CH) * 8;
        bool ok = row0 + r < T;
        const __nv_bfloat16 *g = ok ? src + (size_t)(row0 + r) * stride + c : src;
        cp_async16(tile + r * LDB + c, g, ok);
    }
}

#endif
