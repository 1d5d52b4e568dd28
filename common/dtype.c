/* dtype.c: see dtype.h. Bit-level conversions follow IEEE 754 binary16 and the bfloat16
 * convention (upper half of binary32) with round-to-nearest-even. */
#include "common/dtype.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} info[SHOAL_DTYPE_COUNT] = {
    [SHOAL_DTYPE_INVALID] = {"INVALID", 0}, [SHOAL_DTYPE_BOOL] = {"BOOL", 1},
    [SHOAL_DTYPE_U8] = {"U8", 1},           [SHOAL_DTYPE_I8] = {"I8", 1},
    [SHOAL_DTYPE_I16] = {"I16", 2},         [SHOAL_DTYPE_U16] = {"U16", 2},
    [SHOAL_DTYPE_F16] = {"F16", 2},         [SHOAL_DTYPE_BF16] = {"BF16", 2},
    [SHOAL_DTYPE_I32] = {"I32", 4},         [SHOAL_DTYPE_U32] = {"U32", 4},
    [SHOAL_DTYPE_F32] = {"F32", 4},         [SHOAL_DTYPE_F64] = {"F64", 8},
    [SHOAL_DTYPE_I64] = {"I64", 8},         [SHOAL_DTYPE_U64] = {"U64", 8},
    [SHOAL_DTYPE_F8_E4M3] = {"F8_E4M3", 1}, [SHOAL_DTYPE_F8_E5M2] = {"F8_E5M2", 1},
};

size_t shoal_dtype_size(shoal_dtype dt) {
    return (unsigned)dt < SHOAL_DTYPE_COUNT ? info[dt].size : 0;
}

const char *shoal_dtype_name(shoal_dtype dt) {
    return (unsigned)dt < SHOAL_DTYPE_COUNT ? info[dt].name : "INVALID";
}

shoal_dtype shoal_dtype_from_name(const char *name) {
    for (int i = 1; i < SHOAL_DTYPE_COUNT; i++)
        if (name && strcmp(name, info[i].name) == 0) return (shoal_dtype)i;
    return SHOAL_DTYPE_INVALID;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float shoal_bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

uint16_t shoal_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float shoal_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13)); /* Inf / NaN */
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t shoal_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return sign | 0x7e00u;   /* NaN */
    if (abs >= 0x477ff000u) return sign | 0x7c00u;  /* rounds to >= 65520: Inf */
    if (abs < 0x38800000u) {                        /* below 2^-14: subnormal or zero */
        /* value / 2^-24, rounded to nearest even, is the subnormal mantissa */
        uint32_t exp = abs >> 23;
        if (exp < 102) return sign;                 /* < 2^-25: rounds to zero */
        uint32_t man = (abs & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - exp;                 /* 14 - (exp - 127) + 23 - 10 ... */
        uint32_t half = 1u << (shift - 1);
        uint32_t r = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return sign | (uint16_t)r;
    }
    /* normal: rebias exponent 127 -> 15, keep 10 mantissa bits, round to nearest even */
    uint32_t v = abs - (112u << 23);
    v += 0xfffu + ((v >> 13) & 1u);
    return sign | (uint16_t)(v >> 13);
}

int shoal_convert_to_f32(float *dst, const void *src, shoal_dtype src_dt, size_t n) {
    const unsigned char *p = src;
    switch (src_dt) {
    case SHOAL_DTYPE_F32: memmove(dst, src, n * 4); return 0;
    case SHOAL_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = shoal_f16_to_f32(h);
        }
        return 0;
    case SHOAL_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = shoal_bf16_to_f32(h);
        }
        return 0;
    default: return -1;
    }
}

int shoal_convert_from_f32(void *dst, shoal_dtype dst_dt, const float *src, size_t n) {
    unsigned char *p = dst;
    switch (dst_dt) {
    case SHOAL_DTYPE_F32: memmove(dst, src, n * 4); return 0;
    case SHOAL_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = shoal_f32_to_f16(src[i]);
            memcpy(p + 2 * i, &h, 2);
        }
        return 0;
    case SHOAL_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = shoal_f32_to_bf16(src[i]);
            memcpy(p + 2 * i, &h, 2);
        }
        return 0;
    default: return -1;
    }
}
