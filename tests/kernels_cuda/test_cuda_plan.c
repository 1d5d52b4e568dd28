/* test_cuda_plan.c: the CUDA backend's host-side arithmetic, checked on the CPU (label unit;
 * runs in CI with or without CUDA, and under ASan/UBSan).
 *
 * Tile counts and causal tile ranges are checked against brute force over every (query, key)
 * pair for odd and round T, so a kernel that follows them visits every visible pair exactly in
 * the tiles it loads; the LSE layout must be a bijection that fits in ops.h's att buffer; bf16
 * rounding must be round-to-nearest-even with NaN kept (as __float2bfloat16_rn) and agree with
 * common/dtype.c; argument validation must reject what the kernels cannot do.
 */
#include <stdint.h>
#include <string.h>

#include "common/dtype.h"
#include "kernels/cuda/cuda_plan.h"
#include "test.h"

static const int Ts[] = {1, 2, 17, 63, 64, 65, 127, 128, 129, 1000, 1024};
#define NTS ((int)(sizeof(Ts) / sizeof(Ts[0])))

static void test_ceil_and_blocks(void) {
    CHECK_EQ_INT(shoal_plan_ceil_div(0, 64), 0);
    CHECK_EQ_INT(shoal_plan_ceil_div(1, 64), 1);
    CHECK_EQ_INT(shoal_plan_ceil_div(64, 64), 1);
    CHECK_EQ_INT(shoal_plan_ceil_div(65, 64), 2);
    CHECK_EQ_INT(shoal_plan_ceil_div_dev(1000, 64), 16);
    CHECK_EQ_INT(shoal_plan_blocks(0, 256, 4, 4096), 0);
    CHECK_EQ_INT(shoal_plan_blocks(1, 256, 4, 4096), 1);
    CHECK_EQ_INT(shoal_plan_blocks(1024, 256, 4, 4096), 1);
    CHECK_EQ_INT(shoal_plan_blocks(1025, 256, 4, 4096), 2);
    CHECK_EQ_INT(shoal_plan_blocks((size_t)1 << 40, 256, 4, 4096), 4096); /* capped */
    CHECK_EQ_INT(shoal_plan_blocks(10, 256, 0, 0), 1);
}

static void test_q_tiles_and_tails(void) {
    for (int k = 0; k < NTS; k++) {
        int T = Ts[k], nq = shoal_plan_fa_q_tiles(T, SHOAL_FA_BQ), sum = 0;
        CHECK_EQ_INT(nq, (T + 63) / 64);
        for (int q = 0; q < nq + 2; q++) {
            int v = shoal_plan_tile_valid_rows(T, q, SHOAL_FA_BQ);
            CHECK(v >= 0 && v <= SHOAL_FA_BQ);
            if (q < nq) CHECK(v > 0); /* no empty tile is launched */
            sum += v;
        }
        CHECK_EQ_INT(sum, T);
        /* The last tile holds the tail: T % 64 rows (64 when T is a multiple). */
        int tail = T % 64 ? T % 64 : 64;
        CHECK_EQ_INT(shoal_plan_tile_valid_rows(T, nq - 1, SHOAL_FA_BQ), tail);
    }
}

/* Brute force: the key tiles query tile qi must visit = those holding a key visible from one
 * of its (existing) queries. */
static int brute_kv_tiles(int T, int qi) {
    int last_tile = -1;
    for (int i = qi * 64; i < qi * 64 + 64 && i < T; i++)
        for (int j = 0; j < T; j++)
            if (shoal_plan_causal_visible(i, j, T) && j / 64 > last_tile) last_tile = j / 64;
    return last_tile + 1;
}

static void test_causal_tile_ranges(void) {
    for (int k = 0; k < NTS; k++) {
        int T = Ts[k], nq = shoal_plan_fa_q_tiles(T, SHOAL_FA_BQ);
        for (int qi = 0; qi < nq; qi++) {
            int n = shoal_plan_fa_kv_tiles_causal(T, qi, SHOAL_FA_BQ, SHOAL_FA_BK);
            CHECK_EQ_INT(n, brute_kv_tiles(T, qi));
            CHECK_EQ_INT(n, shoal_plan_fa_kv_tiles_dev(T, qi)); /* what the kernels run */
            CHECK(n >= 1 && n <= qi + 1);
            /* The first key of every visited tile is visible from the tile's first query, so
             * no visited tile has a row whose keys are all masked (no -inf max in the kernel). */
            for (int kj = 0; kj < n; kj++)
                CHECK(shoal_plan_causal_visible(qi * 64, kj * 64, T));
        }
        /* Backward dK/dV: key tile kj visits query tiles first_q_tile(kj) .. nq-1; every
         * visible pair (i, j) must fall in a visited (query tile, key tile) pair. */
        for (int kj = 0; kj < nq; kj++) {
            int first = shoal_plan_fa_first_q_tile(kj, SHOAL_FA_BQ, SHOAL_FA_BK);
            CHECK_EQ_INT(first, shoal_plan_fa_first_q_tile_dev(kj));
            for (int j = kj * 64; j < kj * 64 + 64 && j < T; j++)
                for (int i = 0; i < T; i++)
                    if (shoal_plan_causal_visible(i, j, T)) CHECK(i / 64 >= first);
        }
    }
    CHECK(!shoal_plan_causal_visible(3, 4, 10));
    CHECK(shoal_plan_causal_visible(4, 4, 10));
    CHECK(!shoal_plan_causal_visible(10, 0, 10)); /* query past T */
    CHECK(!shoal_plan_causal_visible(-1, 0, 10));
}

static void test_lse_layout(void) {
    const int B = 3, NH = 5;
    for (int k = 0; k < NTS; k++) {
        int T = Ts[k];
        if (T > 129) continue;
        size_t n = (size_t)B * NH * T;
        unsigned char *seen = calloc(n, 1);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int t = 0; t < T; t++) {
                    size_t ix = shoal_plan_lse_index(b, h, t, NH, T);
                    CHECK(ix < n);
                    CHECK(ix < (size_t)B * NH * T * T); /* fits in ops.h's att buffer */
                    if (ix < n) {
                        CHECK(!seen[ix]);
                        seen[ix] = 1;
                    }
                }
        for (size_t i = 0; i < n; i++)
            CHECK(seen[i]);
        free(seen);
    }
}

static void test_qkv_out_index(void) {
    const int B = 2, T = 17, NH = 3, C = 12, hd = 4;
    size_t n = (size_t)B * T * 3 * C;
    unsigned char *seen = calloc(n, 1);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int w = 0; w < 3; w++)
                for (int h = 0; h < NH; h++)
                    for (int d = 0; d < hd; d++) {
                        size_t ix = shoal_plan_qkv_index(b, t, w, h, d, T, C, NH);
                        CHECK(ix < n && !seen[ix]);
                        if (ix < n) seen[ix] = 1;
                        size_t o = shoal_plan_out_index(b, t, h, d, T, C, NH);
                        CHECK(o < (size_t)B * T * C);
                        /* q's element of (b,t,h,d) sits where out's does, in rows 3x wider */
                        if (w == 0)
                            CHECK_EQ_INT(ix - (size_t)(b * T + t) * 3 * C,
                                         o - (size_t)(b * T + t) * C);
                    }
    for (size_t i = 0; i < n; i++)
        CHECK(seen[i]);
    free(seen);
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_bf16(void) {
    CHECK_EQ_INT(shoal_plan_f32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(shoal_plan_f32_to_bf16(-2.0f), 0xc000);
    CHECK_EQ_INT(shoal_plan_f32_to_bf16(-0.0f), 0x8000);
    /* ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 -> 1 (even mantissa) */
    CHECK_EQ_INT(shoal_plan_f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);
    /* 1 + 3*2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6 -> 1+2^-6 */
    CHECK_EQ_INT(shoal_plan_f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
    CHECK_EQ_INT(shoal_plan_f32_to_bf16(1.0f + 1.5f / 256), 0x3f81);      /* above half: up */
    CHECK_EQ_INT(shoal_plan_f32_to_bf16(from_bits(0x7f800000u)), 0x7f80); /* inf */
    CHECK_EQ_INT(shoal_plan_f32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80); /* FLT_MAX -> inf */
    uint16_t nan = shoal_plan_f32_to_bf16(from_bits(0x7f800001u));        /* signalling NaN */
    CHECK((nan & 0x7f80) == 0x7f80 && (nan & 0x007f) != 0);               /* stays NaN */
    CHECK(isnan(shoal_plan_bf16_to_f32(nan)));
    CHECK(shoal_plan_bf16_to_f32(0x3f80) == 1.0f);
    /* Agrees with common/dtype.c on a sweep of bit patterns (finite values). */
    uint32_t x = 12345u;
    int disagree = 0;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        float f = from_bits(x);
        if (!isfinite(f)) continue;
        uint16_t a = shoal_plan_f32_to_bf16(f);
        if (a != shoal_f32_to_bf16(f)) disagree++;
        /* round trip error bound: half an ulp of 8 mantissa bits */
        float r = shoal_plan_bf16_to_f32(a);
        if (isfinite(r) && fabsf(f) > 1e-30f && fabsf(f) < 1e30f)
            CHECK(fabsf(r - f) <= fabsf(f) * (1.0f / 256));
    }
    CHECK_EQ_INT(disagree, 0);
    uint32_t w = shoal_plan_pack_bf16x2(1.0f, -2.0f);
    CHECK_EQ_INT(w, 0xc0003f80u);
    float lo = 0, hi = 0;
    shoal_plan_unpack_bf16x2(w, &lo, &hi);
    CHECK(lo == 1.0f && hi == -2.0f);
}

static void test_attention_check(void) {
    CHECK_EQ_INT(shoal_plan_attention_check(SHOAL_FA_PATH_BF16, 8, 1024, 768, 12, 1024), SHOAL_OK);
    CHECK_EQ_INT(shoal_plan_attention_check(SHOAL_FA_PATH_BF16, 1, 17, 256, 2, 1024), SHOAL_OK);
    CHECK_EQ_INT(shoal_plan_attention_check(SHOAL_FA_PATH_BF16, 1, 1, 96, 1, 0),
                 SHOAL_ERR_INVALID_ARG); /* hd 96 not on tensor cores */
    CHECK_EQ_INT(shoal_plan_attention_check(SHOAL_FA_PATH_F32, 1, 1, 96, 1, 0), SHOAL_OK);
    CHECK_EQ_INT(shoal_plan_attention_check(SHOAL_FA_PATH_F32, 2, 5, 16, 2, 8), SHOAL_OK);
    CHECK_EQ_INT(shoal_plan_attention_check(SHOAL_FA_PATH_F32, 1, 1, 256, 1, 0),
                 SHOAL_ERR_INVALID_ARG); /* hd 256 > 128 */
    CHECK_EQ_INT(shoal_plan_attention_check(SHOAL_FA_PATH_F32, 1, 4, 10, 3, 0),
                 SHOAL_ERR_INVALID_ARG); /* C % NH */
    CHECK_EQ_INT(shoal_plan_attention_check(SHOAL_FA_PATH_F32, 1, 1025, 768, 12, 1024),
                 SHOAL_ERR_INVALID_ARG); /* T > n_positions */
    CHECK_EQ_INT(shoal_plan_attention_check(SHOAL_FA_PATH_F32, 0, 4, 8, 1, 0),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_plan_attention_check(SHOAL_FA_PATH_F32, 1, 0, 8, 1, 0),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_plan_attention_check(SHOAL_FA_PATH_F32, 70000, 4, 8, 1, 0),
                 SHOAL_ERR_INVALID_ARG); /* B*NH over gridDim.y */
}

static void test_smem_and_flops(void) {
    /* What the kernels carve (attention_bf16.cu) must fit Hopper's 227 KB opt-in. */
    size_t f64 = shoal_plan_fa_fwd_smem(64), f128 = shoal_plan_fa_fwd_smem(128);
    size_t b64 = shoal_plan_fa_bwd_smem(64), b128 = shoal_plan_fa_bwd_smem(128);
    CHECK_EQ_INT(f64, 3 * 64 * 72 * 2 + 64 * 68 * 4 + 64 * 72 * 2 + 64 * 68 * 4 + 2 * 64 * 4);
    CHECK_EQ_INT(b128, 4 * 64 * 136 * 2 + 2 * 64 * 68 * 4 + 2 * 64 * 72 * 2 + 2 * 64 * 132 * 4 +
                           2 * 64 * 4);
    CHECK(f64 < f128 && b64 < b128);
    CHECK(f128 <= 232448 && b128 <= 232448);
    /* every sub-buffer is a multiple of 32 bytes, so wmma pointers stay 256-bit aligned */
    CHECK(64 * 72 * 2 % 32 == 0 && 64 * 136 * 2 % 32 == 0 && 64 * 68 * 4 % 32 == 0 &&
          64 * 132 * 4 % 32 == 0);
    double f = shoal_plan_fa_flops_fwd(8, 12, 1024, 64, 1);
    CHECK_NEAR(f, 4.0 * 8 * 12 * 1024.0 * 1024 * 64 / 2, 1e-12);
    CHECK_NEAR(shoal_plan_fa_flops_fwd(8, 12, 1024, 64, 0), 2 * f, 1e-12);
    CHECK_NEAR(shoal_plan_fa_flops_bwd(8, 12, 1024, 64, 1), 2.5 * f, 1e-12);
}

int main(void) {
    TEST_RUN(test_ceil_and_blocks);
    TEST_RUN(test_q_tiles_and_tails);
    TEST_RUN(test_causal_tile_ranges);
    TEST_RUN(test_lse_layout);
    TEST_RUN(test_qkv_out_index);
    TEST_RUN(test_bf16);
    TEST_RUN(test_attention_check);
    TEST_RUN(test_smem_and_flops);
    return TEST_EXIT();
}
