/* dtype.h: tensor element types as safetensors names them, and fp16/bf16 <-> fp32.
 *
 * Conversions round to nearest even (as PyTorch's .to(torch.bfloat16) and IEEE 754 do), keep
 * NaN a NaN and Inf an Inf. Tested by tests/common/test_dtype.c (exhaustive over all 65,536
 * 16-bit patterns for the round trip).
 */
#ifndef SHOAL_COMMON_DTYPE_H
#define SHOAL_COMMON_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SHOAL_DTYPE_INVALID = 0,
    SHOAL_DTYPE_BOOL,
    SHOAL_DTYPE_U8,
    SHOAL_DTYPE_I8,
    SHOAL_DTYPE_I16,
    SHOAL_DTYPE_U16,
    SHOAL_DTYPE_F16,
    SHOAL_DTYPE_BF16,
    SHOAL_DTYPE_I32,
    SHOAL_DTYPE_U32,
    SHOAL_DTYPE_F32,
    SHOAL_DTYPE_F64,
    SHOAL_DTYPE_I64,
    SHOAL_DTYPE_U64,
    SHOAL_DTYPE_F8_E4M3,
    SHOAL_DTYPE_F8_E5M2,
    SHOAL_DTYPE_COUNT
} shoal_dtype;

/* Bytes per element; 0 for INVALID. */
size_t shoal_dtype_size(shoal_dtype dt);
/* safetensors name ("F32", "BF16", ...); "INVALID" for bad values. */
const char *shoal_dtype_name(shoal_dtype dt);
/* Parse a safetensors dtype name; SHOAL_DTYPE_INVALID when unknown. */
shoal_dtype shoal_dtype_from_name(const char *name);

float shoal_f16_to_f32(uint16_t h);
uint16_t shoal_f32_to_f16(float f);
float shoal_bf16_to_f32(uint16_t b);
uint16_t shoal_f32_to_bf16(float f);

/* Convert n elements of F32, F16 or BF16 at src into fp32 at dst. Returns 0, or -1 when the
 * source dtype is not a floating type we convert. src may be unaligned. */
int shoal_convert_to_f32(float *dst, const void *src, shoal_dtype src_dt, size_t n);
/* Convert n fp32 values into F32, F16 or BF16 at dst; -1 for other dtypes. */
int shoal_convert_from_f32(void *dst, shoal_dtype dst_dt, const float *src, size_t n);

#endif
