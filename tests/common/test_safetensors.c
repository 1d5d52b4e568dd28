/* test_safetensors.c: round trips across dtypes, metadata, zero-size tensors, and the
 * malformed corpus of tests/data/safetensors_bad (each file must fail with its status). */
#include "common/fileio.h"
#include "common/safetensors.h"
#include "test.h"

static char path_buf[512];
static const char *tmp_path(const char *name) {
    snprintf(path_buf, sizeof path_buf, "%s/%s", test_tmpdir(), name);
    return path_buf;
}

static void test_round_trip_dtypes(void) {
    float f32[6] = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, 65504.0f};
    uint16_t f16[6], bf16[6];
    shoal_convert_from_f32(f16, SHOAL_DTYPE_F16, f32, 6);
    shoal_convert_from_f32(bf16, SHOAL_DTYPE_BF16, f32, 6);
    int32_t i32[3] = {-1, 0, 2147483647};
    int64_t i64[2] = {-9000000000000000000LL, 42};
    uint8_t u8[5] = {0, 1, 127, 128, 255};
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s2[1] = {2}, s5[1] = {5}, s0[2] = {0, 4};
    shoal_st_write_tensor w[] = {
        {"h.0.f32", SHOAL_DTYPE_F32, 2, s23, f32},  {"h.0.f16", SHOAL_DTYPE_F16, 2, s23, f16},
        {"h.0.bf16", SHOAL_DTYPE_BF16, 2, s23, bf16}, {"i32", SHOAL_DTYPE_I32, 1, s3, i32},
        {"i64", SHOAL_DTYPE_I64, 1, s2, i64},         {"u8", SHOAL_DTYPE_U8, 1, s5, u8},
        {"empty", SHOAL_DTYPE_F32, 2, s0, NULL},      {"scalar", SHOAL_DTYPE_F32, 0, NULL, f32},
    };
    const char *meta[] = {"format", "pt", "shoal.job", "42"};
    const char *p = tmp_path("rt.safetensors");
    CHECK_EQ_INT(shoal_safetensors_write(p, w, 8, meta, 2), SHOAL_OK);

    /* header is padded to a multiple of 8 with spaces */
    char *raw;
    size_t len;
    CHECK_EQ_INT(shoal_file_read(p, 1 << 20, &raw, &len), SHOAL_OK);
    uint64_t hlen;
    memcpy(&hlen, raw, 8);
    CHECK_EQ_INT(hlen % 8, 0);
    CHECK(raw[8 + hlen - 1] == ' ' || raw[8 + hlen - 1] == '}');
    free(raw);

    shoal_safetensors *st;
    CHECK_EQ_INT(shoal_safetensors_open(p, &st), SHOAL_OK);
    if (!st) return;
    CHECK_EQ_INT(shoal_safetensors_count(st), 8);
    CHECK_STR(shoal_safetensors_meta(st, "format"), "pt");
    CHECK_STR(shoal_safetensors_meta(st, "shoal.job"), "42");
    CHECK(shoal_safetensors_meta(st, "absent") == NULL);
    const shoal_st_tensor *t = shoal_safetensors_find(st, "h.0.f32");
    CHECK(t && t->dtype == SHOAL_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    if (t) CHECK(memcmp(t->data, f32, sizeof f32) == 0);
    t = shoal_safetensors_find(st, "h.0.bf16");
    if (t) {
        float back[6];
        CHECK_EQ_INT(shoal_convert_to_f32(back, t->data, t->dtype, 6), 0);
        for (int i = 0; i < 6; i++) CHECK_NEAR(back[i], f32[i], 1.0 / 128);
    }
    t = shoal_safetensors_find(st, "h.0.f16");
    if (t) {
        float back[6];
        CHECK_EQ_INT(shoal_convert_to_f32(back, t->data, t->dtype, 6), 0);
        for (int i = 0; i < 6; i++) CHECK_NEAR(back[i], f32[i], 1.0 / 1024);
    }
    t = shoal_safetensors_find(st, "i32");
    CHECK(t && t->nbytes == 12 && memcmp(t->data, i32, 12) == 0);
    t = shoal_safetensors_find(st, "i64");
    CHECK(t && t->nbytes == 16 && memcmp(t->data, i64, 16) == 0);
    t = shoal_safetensors_find(st, "u8");
    CHECK(t && t->nbytes == 5 && memcmp(t->data, u8, 5) == 0);
    t = shoal_safetensors_find(st, "empty");
    CHECK(t && t->nelem == 0 && t->nbytes == 0);
    t = shoal_safetensors_find(st, "scalar");
    CHECK(t && t->ndim == 0 && t->nelem == 1 && t->nbytes == 4);
    CHECK(shoal_safetensors_find(st, "nope") == NULL);
    const char **kv;
    CHECK_EQ_INT(shoal_safetensors_meta_all(st, &kv), 2);
    free(kv);
    shoal_safetensors_close(st);
}

static void test_writer_rejects(void) {
    float x = 1;
    int64_t s1[1] = {1};
    shoal_st_write_tensor dup[] = {{"a", SHOAL_DTYPE_F32, 1, s1, &x}, {"a", SHOAL_DTYPE_F32, 1, s1, &x}};
    const char *p = tmp_path("dup.safetensors");
    CHECK_EQ_INT(shoal_safetensors_write(p, dup, 2, NULL, 0), SHOAL_ERR_INVALID_ARG);
    CHECK(!shoal_path_exists(p)); /* nothing half-written */
    shoal_st_write_tensor bad = {"b", SHOAL_DTYPE_INVALID, 1, s1, &x};
    CHECK_EQ_INT(shoal_safetensors_write(p, &bad, 1, NULL, 0), SHOAL_ERR_INVALID_ARG);
    shoal_st_write_tensor meta = {"__metadata__", SHOAL_DTYPE_F32, 1, s1, &x};
    CHECK_EQ_INT(shoal_safetensors_write(p, &meta, 1, NULL, 0), SHOAL_ERR_INVALID_ARG);
}

static void test_empty_file_of_tensors(void) {
    const char *p = tmp_path("none.safetensors");
    CHECK_EQ_INT(shoal_safetensors_write(p, NULL, 0, NULL, 0), SHOAL_OK);
    shoal_safetensors *st;
    CHECK_EQ_INT(shoal_safetensors_open(p, &st), SHOAL_OK);
    if (st) CHECK_EQ_INT(shoal_safetensors_count(st), 0);
    shoal_safetensors_close(st);
}

static void test_missing_file(void) {
    shoal_safetensors *st = (shoal_safetensors *)1;
    CHECK_EQ_INT(shoal_safetensors_open(tmp_path("does-not-exist"), &st), SHOAL_ERR_NOT_FOUND);
    CHECK(st == NULL);
}

/* Mirrors EXPECT of tests/data/gen_bad_safetensors.py. */
static const struct {
    const char *file;
    shoal_status want;
} corpus[] = {
    {"empty", SHOAL_ERR_FORMAT},
    {"truncated_len", SHOAL_ERR_FORMAT},
    {"header_past_eof", SHOAL_ERR_FORMAT},
    {"huge_header_len", SHOAL_ERR_LIMIT},
    {"not_json", SHOAL_ERR_FORMAT},
    {"non_object_header", SHOAL_ERR_FORMAT},
    {"truncated_data", SHOAL_ERR_FORMAT},
    {"trailing_data", SHOAL_ERR_FORMAT},
    {"unknown_dtype", SHOAL_ERR_FORMAT},
    {"negative_offset", SHOAL_ERR_FORMAT},
    {"reversed_offsets", SHOAL_ERR_FORMAT},
    {"out_of_range_offset", SHOAL_ERR_FORMAT},
    {"overlapping", SHOAL_ERR_FORMAT},
    {"gap", SHOAL_ERR_FORMAT},
    {"not_from_zero", SHOAL_ERR_FORMAT},
    {"shape_size_mismatch", SHOAL_ERR_FORMAT},
    {"shape_overflow", SHOAL_ERR_FORMAT},
    {"negative_dim", SHOAL_ERR_FORMAT},
    {"too_many_dims", SHOAL_ERR_LIMIT},
    {"duplicate_names", SHOAL_ERR_FORMAT},
    {"metadata_not_strings", SHOAL_ERR_FORMAT},
    {"missing_dtype", SHOAL_ERR_FORMAT},
    {"offsets_not_pair", SHOAL_ERR_FORMAT},
    {"entry_not_object", SHOAL_ERR_FORMAT},
};

static void test_malformed_corpus(void) {
    const char *src = getenv("SHOAL_SOURCE_DIR");
    CHECK(src != NULL);
    if (!src) return;
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/tests/data/safetensors_bad/%s.safetensors", src, corpus[i].file);
        CHECK(shoal_path_exists(p));
        shoal_safetensors *st = (shoal_safetensors *)1;
        shoal_status got = shoal_safetensors_open(p, &st);
        if (got != corpus[i].want)
            fprintf(stderr, "  corpus %s: got %s, want %s\n", corpus[i].file,
                    shoal_status_str(got), shoal_status_str(corpus[i].want));
        CHECK_EQ_INT(got, corpus[i].want);
        CHECK(st == NULL);
    }
}

static void test_header_limit_is_configurable(void) {
    float x[2] = {1, 2};
    int64_t s2[1] = {2};
    shoal_st_write_tensor w = {"a", SHOAL_DTYPE_F32, 1, s2, x};
    const char *p = tmp_path("limit.safetensors");
    CHECK_EQ_INT(shoal_safetensors_write(p, &w, 1, NULL, 0), SHOAL_OK);
    uint64_t old = shoal_limit(SHOAL_LIMIT_SAFETENSORS_HEADER_BYTES);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_SAFETENSORS_HEADER_BYTES, 16), SHOAL_OK);
    shoal_safetensors *st;
    CHECK_EQ_INT(shoal_safetensors_open(p, &st), SHOAL_ERR_LIMIT);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_SAFETENSORS_HEADER_BYTES, old), SHOAL_OK);
    CHECK_EQ_INT(shoal_safetensors_open(p, &st), SHOAL_OK);
    shoal_safetensors_close(st);
}

int main(void) {
    shoal_log_set_level(SHOAL_LOG_ERROR);
    TEST_RUN(test_round_trip_dtypes);
    TEST_RUN(test_writer_rejects);
    TEST_RUN(test_empty_file_of_tensors);
    TEST_RUN(test_missing_file);
    TEST_RUN(test_malformed_corpus);
    TEST_RUN(test_header_limit_is_configurable);
    return TEST_EXIT();
}
