/* cuda_types.cuh: fp32/bf16 load and store overloads, so one templated kernel serves the fp32
 * ops.h table and the bf16 mixed-precision entry points (arithmetic is fp32 in both).
 * Device-only, C++; included by the .cu files. Tested through the ops (test_ops_cuda.c).
 */
#ifndef SHOAL_KERNELS_CUDA_TYPES_CUH
#define SHOAL_KERNELS_CUDA_TYPES_CUH

#include <cuda_bf16.h>

namespace shoal_cuda {

__device__ __forceinline__ float to_f32(float x) {
    return x;
}
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) {
    return __bfloat162float(x);
}

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) {
    return x;
}
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

} // namespace shoal_cuda

#endif
