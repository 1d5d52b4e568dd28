/* test_dtype.c: dtype names and sizes; fp16/bf16 conversions against exact known values and
 * exhaustively over every 16-bit pattern (16 -> 32 -> 16 must be the identity, NaN stays NaN). */
#include "common/dtype.h"
#include "common/progress.h"
#include "common/timeutil.h"
#include "test.h"

static void test_names(void) {
    const char *names[] = {"BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32",
                           "F32", "F64", "I64", "U64", "F8_E4M3", "F8_E5M2"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        shoal_dtype d = shoal_dtype_from_name(names[i]);
        CHECK(d != SHOAL_DTYPE_INVALID);
        CHECK_STR(shoal_dtype_name(d), names[i]);
        CHECK(shoal_dtype_size(d) > 0);
    }
    CHECK_EQ_INT(shoal_dtype_from_name("f32"), SHOAL_DTYPE_INVALID);
    CHECK_EQ_INT(shoal_dtype_from_name(NULL), SHOAL_DTYPE_INVALID);
    CHECK_EQ_INT(shoal_dtype_size(SHOAL_DTYPE_BF16), 2);
    CHECK_EQ_INT(shoal_dtype_size(SHOAL_DTYPE_I64), 8);
    CHECK_EQ_INT(shoal_dtype_size((shoal_dtype)1000), 0);
}

static void test_known_values(void) {
    /* IEEE 754 binary16: 1.0 = 0x3c00, -2 = 0xc000, 65504 = 0x7bff (max), 2^-24 = 0x0001. */
    CHECK_EQ_INT(shoal_f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ_INT(shoal_f32_to_f16(-2.0f), 0xc000);
    CHECK_EQ_INT(shoal_f32_to_f16(65504.0f), 0x7bff);
    CHECK_EQ_INT(shoal_f32_to_f16(65520.0f), 0x7c00); /* rounds to Inf */
    CHECK_EQ_INT(shoal_f32_to_f16(5.9604645e-8f), 0x0001);
    CHECK_EQ_INT(shoal_f32_to_f16(2.9802322e-8f), 0x0000); /* 2^-25: tie to even -> 0 */
    CHECK_EQ_INT(shoal_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00); /* tie -> even */
    CHECK_EQ_INT(shoal_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02); /* tie -> even (up) */
    CHECK(shoal_f16_to_f32(0x7e00) != shoal_f16_to_f32(0x7e00)); /* NaN */
    /* bfloat16: 1.0 = 0x3f80; 1 + 2^-8 ties to even (0x3f80); 1 + 3*2^-8 -> 0x3f82 */
    CHECK_EQ_INT(shoal_f32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(shoal_f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);
    CHECK_EQ_INT(shoal_f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
    CHECK_EQ_INT(shoal_f32_to_bf16(-0.0f), 0x8000);
    float nan = shoal_bf16_to_f32(shoal_f32_to_bf16(NAN));
    CHECK(nan != nan);
    CHECK(isinf(shoal_bf16_to_f32(shoal_f32_to_bf16(INFINITY))));
}

static void test_exhaustive_round_trip(void) {
    int bad_f16 = 0, bad_bf16 = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = shoal_f16_to_f32((uint16_t)h);
        if (f != f) {
            if (shoal_f32_to_f16(f) == (uint16_t)h) continue; /* payload kept */
            if ((shoal_f32_to_f16(f) & 0x7c00) != 0x7c00) bad_f16++;
        } else if (shoal_f32_to_f16(f) != h) {
            bad_f16++;
        }
        float b = shoal_bf16_to_f32((uint16_t)h);
        if (b != b) {
            if ((shoal_f32_to_bf16(b) & 0x7f80) != 0x7f80) bad_bf16++;
        } else if (shoal_f32_to_bf16(b) != h) {
            bad_bf16++;
        }
    }
    CHECK_EQ_INT(bad_f16, 0);
    CHECK_EQ_INT(bad_bf16, 0);
}

static void test_bulk_convert(void) {
    float src[4] = {0.5f, -1.5f, 3.0f, 1e30f}, back[4];
    uint16_t mid[4];
    CHECK_EQ_INT(shoal_convert_from_f32(mid, SHOAL_DTYPE_BF16, src, 4), 0);
    CHECK_EQ_INT(shoal_convert_to_f32(back, mid, SHOAL_DTYPE_BF16, 4), 0);
    for (int i = 0; i < 3; i++) CHECK(back[i] == src[i]);
    CHECK_NEAR(back[3], 1e30, 1e-2);
    CHECK_EQ_INT(shoal_convert_to_f32(back, mid, SHOAL_DTYPE_I32, 4), -1);
    CHECK_EQ_INT(shoal_convert_from_f32(mid, SHOAL_DTYPE_U8, src, 4), -1);
}

static void test_progress_and_durations(void) {
    char b[64];
    CHECK_STR(shoal_format_duration(5.25, b, sizeof b), "5.2s");
    CHECK_STR(shoal_format_duration(125, b, sizeof b), "2m05s");
    CHECK_STR(shoal_format_duration(3723, b, sizeof b), "1h02m03s");
    CHECK_STR(shoal_format_duration(-1, b, sizeof b), "--");
    shoal_progress p;
    shoal_progress_init(&p, NULL, "train", "step", 100, 0);
    char line[256];
    shoal_progress_format(&p, 50, p.start_s + 10.0, "loss 2.5", line, sizeof line);
    CHECK(strstr(line, "50/100") != NULL);
    CHECK(strstr(line, " 50%") != NULL);
    CHECK(strstr(line, "5.00 step/s") != NULL);
    CHECK(strstr(line, "ETA 10.0s") != NULL);
    CHECK(strstr(line, "loss 2.5") != NULL);
    /* resumed at 40: rate counts only this run's steps */
    shoal_progress_init(&p, NULL, "train", "step", 100, 40);
    shoal_progress_format(&p, 60, p.start_s + 10.0, NULL, line, sizeof line);
    CHECK(strstr(line, "2.00 step/s") != NULL);
    CHECK(strstr(line, "ETA 20.0s") != NULL);
    /* unknown total: no bar */
    shoal_progress_init(&p, NULL, "prep", "doc", 0, 0);
    shoal_progress_format(&p, 7, p.start_s + 1.0, NULL, line, sizeof line);
    CHECK(strstr(line, "[") == NULL && strstr(line, "7.00 doc/s") != NULL);
    /* non-TTY stream: plain lines, one per update when forced, final newline */
    FILE *f = tmpfile();
    shoal_progress_init(&p, f, "x", "it", 3, 0);
    CHECK(!p.is_tty);
    shoal_progress_update(&p, 1, NULL, 1);
    shoal_progress_update(&p, 2, NULL, 0); /* not due yet: suppressed */
    shoal_progress_finish(&p, 3, "done");
    rewind(f);
    int lines = 0;
    while (fgets(line, sizeof line, f)) lines++;
    CHECK_EQ_INT(lines, 2);
    fclose(f);
}

int main(void) {
    TEST_RUN(test_names);
    TEST_RUN(test_known_values);
    TEST_RUN(test_exhaustive_round_trip);
    TEST_RUN(test_bulk_convert);
    TEST_RUN(test_progress_and_durations);
    return TEST_EXIT();
}
