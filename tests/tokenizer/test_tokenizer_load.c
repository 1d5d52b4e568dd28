/* test_tokenizer_load.c: the three file layouts, malformed files, limits, copy_files.
 *
 * Uses the tiny synthetic vocabularies of tests/data/tokenizer/tiny (gen_tiny.py: the same
 * 283 tokens and 26 merges as vocab.json + merges.txt, encoder.json + vocab.bpe, and
 * tokenizer.json with both merge spellings; ids not in byte order). All four must give the
 * same ids for every reference text, and hand-derived BPE results for a few pieces (looked
 * up by token string, so the test knows no ids). Each directory of tests/data/tokenizer/bad
 * must fail with its status and a message naming the file. Needs no GPT-2 vocabulary. */
#include <fcntl.h>
#include <jansson.h>
#include <unistd.h>

#include "common/limits.h"
#include "test.h"
#include "tok_fixtures.h"
#include "worker/tokenizer/tokenizer.h"

static const char *const layouts[] = {"tiny/hf", "tiny/openai", "tiny/tokjson",
                                      "tiny/tokjson_pairs"};
static json_t *vocab;

static int32_t id_of(const char *tok) {
    json_t *v = json_object_get(vocab, tok);
    if (!v) fprintf(stderr, "  no token \"%s\" in the tiny vocabulary\n", tok);
    return v ? (int32_t)json_integer_value(v) : -2;
}

/* encode text with t and compare with the tokens (disguised strings) in want[]. */
static void check_tokens(const shoal_tokenizer *t, const char *text, const char *const *want,
                         int n) {
    int32_t *ids = NULL;
    size_t k = 0;
    CHECK(shoal_tokenizer_encode(t, text, strlen(text), &ids, &k) == SHOAL_OK);
    CHECK_EQ_INT(k, n);
    for (int i = 0; i < n && i < (int)k; i++) {
        if (ids[i] != id_of(want[i])) {
            fprintf(stderr, "  \"%s\": token %d is id %d, want \"%s\" (%d)\n", text, i, ids[i],
                    want[i], id_of(want[i]));
            CHECK(0);
        }
    }
    free(ids);
}

static void test_tiny_bpe(void) {
    shoal_tokenizer *t = NULL;
    CHECK(shoal_tokenizer_load(tok_data("tiny/hf"), &t) == SHOAL_OK);
    if (!t) return;
    CHECK_EQ_INT(shoal_tokenizer_vocab_size(t), 283);
    CHECK_EQ_INT(shoal_tokenizer_eot_id(t), id_of("<|endoftext|>"));
    const char *a[] = {"\xc4\xa0the",
                       ("\xc4\xa0"
                        "cat"),
                       "\xc4\xa0sat",
                       ("\xc4\xa0"
                        "and")};
    check_tokens(t, " the cat sat and", a, 4);
    const char *b[] = {("\xc4\xa0"
                        "a"),
                       "t", "e"}; /* (Ġ,a) ranks before (a,t) */
    check_tokens(t, " ate", b, 3);
    const char *c[] = {"123", "'s", "\xc4\x8a\xc4\x8a"};
    check_tokens(t, "123's\n\n", c, 3);
    /* "é t é": merge 25 (the bytes of é) runs on both before merge 24 (é, t) may */
    const char *d[] = {"\xc3\x83\xc2\xa9t", "\xc3\x83\xc2\xa9"};
    check_tokens(t, "\xc3\xa9t\xc3\xa9", d, 2);
    /* three spaces then " x": (Ġ,Ġ) left to right leaves one Ġ */
    const char *e[] = {"\xc4\xa0\xc4\xa0", "\xc4\xa0", "\xc4\xa0", "x"};
    check_tokens(t, "    x", e, 4);
    const char *f[] = {"\xc4\xa0\xc4\xa0\xc4\xa0\xc4\xa0", "\xc4\xa0\xc4\xa0"};
    check_tokens(t, "      ", f, 2);
    int32_t *ids = (int32_t *)1;
    size_t k = 9;
    CHECK(shoal_tokenizer_encode(t, "", 0, &ids, &k) == SHOAL_OK);
    CHECK(ids != NULL && k == 0);
    free(ids);
    CHECK_EQ_INT(shoal_tokenizer_encode(NULL, "x", 1, &ids, &k), SHOAL_ERR_INVALID_ARG);
    shoal_tokenizer_free(t);
    shoal_tokenizer_free(NULL);
}

/* All layouts agree on every reference text, and every text round-trips. */
static void test_layouts_agree(void) {
    shoal_tokenizer *t[4] = {0};
    for (int l = 0; l < 4; l++)
        CHECK(shoal_tokenizer_load(tok_data(layouts[l]), &t[l]) == SHOAL_OK);
    for (int l = 1; l < 4; l++) {
        CHECK_EQ_INT(shoal_tokenizer_vocab_size(t[l]), shoal_tokenizer_vocab_size(t[0]));
        CHECK_EQ_INT(shoal_tokenizer_eot_id(t[l]), shoal_tokenizer_eot_id(t[0]));
    }
    char *text = NULL;
    size_t len = 0, pos = 0;
    CHECK(shoal_file_read(tok_data("ref_ids.tsv"), 1 << 26, &text, &len) == SHOAL_OK);
    tok_row r;
    int cases = 0, bad = 0;
    while (t[0] && t[1] && t[2] && t[3] && text && tok_next_row(text, len, &pos, &r)) {
        size_t n;
        uint8_t *in = tok_unhex(r.f[1], r.n[1], &n);
        int32_t *ids[4] = {0};
        size_t k[4] = {0};
        for (int l = 0; l < 4; l++)
            if (shoal_tokenizer_encode(t[l], (const char *)in, n, &ids[l], &k[l]) != SHOAL_OK)
                bad++;
        for (int l = 1; l < 4; l++)
            if (k[l] != k[0] || (k[0] && memcmp(ids[l], ids[0], k[0] * sizeof(int32_t)))) bad++;
        char *out = NULL;
        size_t olen = 0;
        if (shoal_tokenizer_decode(t[0], ids[0], k[0], &out, &olen) != SHOAL_OK || olen != n ||
            memcmp(out, in, n))
            bad++;
        free(out);
        for (int l = 0; l < 4; l++)
            free(ids[l]);
        free(in);
        cases++;
    }
    CHECK(cases > 1500);
    CHECK_EQ_INT(bad, 0);
    free(text);
    for (int l = 0; l < 4; l++)
        shoal_tokenizer_free(t[l]);
}

/* Load dir with stderr captured; returns the status, fills log (NUL-terminated). */
static shoal_status load_capturing(const char *dir, char *log, size_t cap) {
    char path[600];
    snprintf(path, sizeof path, "%s/stderr.txt", test_tmpdir());
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    dup2(fd, 2);
    close(fd);
    shoal_tokenizer *t = NULL;
    shoal_status st = shoal_tokenizer_load(dir, &t);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    shoal_tokenizer_free(t);
    if (st == SHOAL_OK)
        CHECK(t != NULL);
    else
        CHECK(t == NULL);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(log, 1, cap - 1, f) : 0;
    log[n] = '\0';
    if (f) fclose(f);
    return st;
}

static void test_malformed(void) {
    static const struct {
        const char *dir, *names; /* names: what the error message must mention */
        shoal_status st;
    } bad[] = {
        {"json_syntax", "vocab.json", SHOAL_ERR_FORMAT},
        {"json_not_object", "vocab.json", SHOAL_ERR_FORMAT},
        {"id_not_integer", "must be an integer", SHOAL_ERR_FORMAT},
        {"id_negative", "outside", SHOAL_ERR_FORMAT},
        {"id_duplicate", "used by two different tokens", SHOAL_ERR_FORMAT},
        {"id_gap", "ids must be dense", SHOAL_ERR_FORMAT},
        {"missing_byte", "no token for byte 0x00", SHOAL_ERR_FORMAT},
        {"token_not_bytes", "U+4E2D", SHOAL_ERR_FORMAT},
        {"merge_unknown_token", "merges.txt: merge 28", SHOAL_ERR_FORMAT},
        {"merge_result_unknown", "merged token \"qz\" is not in the vocabulary", SHOAL_ERR_FORMAT},
        {"merge_one_token", "merges.txt line 28", SHOAL_ERR_FORMAT},
        {"merge_three_tokens", "merges.txt line 28", SHOAL_ERR_FORMAT},
        {"merge_double_space", "merges.txt line 28", SHOAL_ERR_FORMAT},
        {"vocab_without_merges", "no tokenizer files", SHOAL_ERR_NOT_FOUND},
        {"empty_dir", "no tokenizer files", SHOAL_ERR_NOT_FOUND},
        {"empty_vocab", "vocabulary is empty", SHOAL_ERR_FORMAT},
        {"tj_wordpiece", "WordPiece", SHOAL_ERR_UNSUPPORTED},
        {"tj_prefix_space", "add_prefix_space", SHOAL_ERR_UNSUPPORTED},
        {"tj_no_pretokenizer", "pre_tokenizer must be ByteLevel", SHOAL_ERR_UNSUPPORTED},
        {"tj_normalizer", "normalizer", SHOAL_ERR_UNSUPPORTED},
        {"tj_ignore_merges", "ignore_merges", SHOAL_ERR_UNSUPPORTED},
        {"tj_bad_merge", "model.merges[26]", SHOAL_ERR_FORMAT},
        {"tj_added_conflict", "used by two different tokens", SHOAL_ERR_FORMAT},
        {"tj_no_vocab", "vocabulary must be a JSON object", SHOAL_ERR_FORMAT},
        {"tj_not_object", "malformed JSON", SHOAL_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char dir[80], log[4096];
        snprintf(dir, sizeof dir, "bad/%s", bad[i].dir);
        shoal_status st = load_capturing(tok_data(dir), log, sizeof log);
        if (st != bad[i].st || !strstr(log, bad[i].names)) {
            fprintf(stderr, "  bad/%s: status \"%s\" (want \"%s\"), log: %s\n", bad[i].dir,
                    shoal_status_str(st), shoal_status_str(bad[i].st), log);
            CHECK(0);
        }
    }
    char log[4096];
    CHECK_EQ_INT(load_capturing("/nonexistent/dir", log, sizeof log), SHOAL_ERR_NOT_FOUND);
}

static void test_limits(void) {
    char log[4096];
    shoal_limit_id ids[] = {SHOAL_LIMIT_TOKENIZER_FILE_BYTES, SHOAL_LIMIT_TOKENIZER_VOCAB,
                            SHOAL_LIMIT_TOKENIZER_MERGES};
    uint64_t small[] = {1000, 100, 10};
    const char *words[] = {"tokenizer_file_bytes", "tokenizer_vocab", "tokenizer_merges"};
    for (int i = 0; i < 3; i++) {
        uint64_t old = shoal_limit(ids[i]);
        CHECK(shoal_limit_set(ids[i], small[i]) == SHOAL_OK);
        for (int l = 0; l < 4; l++) {
            shoal_status st = load_capturing(tok_data(layouts[l]), log, sizeof log);
            /* tokenizer.json is also bounded by json_file_bytes' parse, but ours comes first */
            if (st != SHOAL_ERR_LIMIT || !strstr(log, words[i])) {
                fprintf(stderr, "  limit %s, %s: %s; log: %s\n", words[i], layouts[l],
                        shoal_status_str(st), log);
                CHECK(0);
            }
        }
        CHECK(shoal_limit_set(ids[i], old) == SHOAL_OK);
        CHECK_EQ_INT(shoal_limit_set(ids[i], shoal_limit_describe(ids[i])->ceiling + 1),
                     SHOAL_ERR_LIMIT);
    }
}

static void test_copy_files(void) {
    char dst[600], dst2[600], extra[700];
    snprintf(dst, sizeof dst, "%s/model/out", test_tmpdir());
    CHECK(shoal_tokenizer_copy_files(tok_data("tiny/tokjson"), dst) == SHOAL_OK);
    snprintf(extra, sizeof extra, "%s/tokenizer.json", dst);
    CHECK(shoal_path_exists(extra));
    shoal_tokenizer *a = NULL, *b = NULL;
    CHECK(shoal_tokenizer_load(dst, &a) == SHOAL_OK);
    CHECK(shoal_tokenizer_load(tok_data("tiny/tokjson"), &b) == SHOAL_OK);
    if (a && b) {
        const char *s = "the cat sat \xc3\xa9t\xc3\xa9 123";
        int32_t *x = NULL, *y = NULL;
        size_t nx = 0, ny = 0;
        CHECK(shoal_tokenizer_encode(a, s, strlen(s), &x, &nx) == SHOAL_OK);
        CHECK(shoal_tokenizer_encode(b, s, strlen(s), &y, &ny) == SHOAL_OK);
        CHECK(nx == ny && nx > 0 && memcmp(x, y, nx * sizeof *x) == 0);
        free(x);
        free(y);
    }
    shoal_tokenizer_free(a);
    shoal_tokenizer_free(b);
    /* both HF files come along; a bad source writes nothing */
    CHECK(shoal_tokenizer_copy_files(tok_data("tiny/hf"), dst) == SHOAL_OK);
    snprintf(extra, sizeof extra, "%s/merges.txt", dst);
    CHECK(shoal_path_exists(extra));
    snprintf(dst2, sizeof dst2, "%s/never", test_tmpdir());
    shoal_log_set_level(SHOAL_LOG_ERROR);
    CHECK_EQ_INT(shoal_tokenizer_copy_files(tok_data("bad/merge_unknown_token"), dst2),
                 SHOAL_ERR_FORMAT);
    CHECK(!shoal_path_exists(dst2));
    CHECK_EQ_INT(shoal_tokenizer_copy_files(tok_data("bad/empty_dir"), dst2), SHOAL_ERR_NOT_FOUND);
    CHECK(!shoal_path_exists(dst2));
}

int main(void) {
    json_error_t err;
    vocab = json_load_file(tok_data("tiny/hf/vocab.json"), 0, &err);
    if (!vocab) {
        fprintf(stderr, "cannot read %s: %s\n", tok_data("tiny/hf/vocab.json"), err.text);
        return 1;
    }
    TEST_RUN(test_tiny_bpe);
    TEST_RUN(test_layouts_agree);
    TEST_RUN(test_malformed);
    TEST_RUN(test_limits);
    TEST_RUN(test_copy_files);
    json_decref(vocab);
    return TEST_EXIT();
}
