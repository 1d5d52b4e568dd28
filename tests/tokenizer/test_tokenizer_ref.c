/* test_tokenizer_ref.c: shoal's GPT-2 ids against the reference (npm gpt-3-encoder).
 *
 * Every case of tests/data/tokenizer/ref_ids.tsv (hand-written texts: unicode, whitespace
 * runs, contractions, digits, emoji, invalid UTF-8; and 1500 random strings) must encode to
 * exactly the committed ids, and those ids decode back to the text. Invalid UTF-8 inputs
 * must round-trip byte for byte and cut into as many pieces as their U+FFFD-replaced text
 * (whose ids are the reference's). The GPT-2 vocabulary is loaded in all three layouts
 * (encoder.json + vocab.bpe as installed; copied as vocab.json + merges.txt; rebuilt as a
 * tokenizer.json) and all must agree; four threads encode at once with one tokenizer.
 * Needs the vocabulary (deploy/install-deps.sh): exits 77 without it. */
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "common/limits.h"
#include "test.h"
#include "tok_fixtures.h"
#include "worker/tokenizer/pretokenize.h"
#include "worker/tokenizer/tokenizer.h"

typedef struct {
    char *name;
    uint8_t *input, *ref;
    size_t n_input, n_ref;
    int32_t *ids;
    size_t n_ids;
} ref_case;

static ref_case *cases;
static int n_cases;
static shoal_tokenizer *tok[3]; /* openai, hf, tokenizer.json */

static void load_cases(void) {
    char *text = NULL;
    size_t len = 0, pos = 0;
    if (shoal_file_read(tok_data("ref_ids.tsv"), 1 << 26, &text, &len) != SHOAL_OK) return;
    cases = calloc(4096, sizeof *cases);
    tok_row r;
    while (cases && n_cases < 4096 && tok_next_row(text, len, &pos, &r)) {
        if (r.nf != 4) continue;
        ref_case *c = &cases[n_cases++];
        c->name = strndup(r.f[0], r.n[0]);
        c->input = tok_unhex(r.f[1], r.n[1], &c->n_input);
        c->ref = tok_unhex(r.f[2], r.n[2], &c->n_ref);
        c->ids = tok_parse_ids(r.f[3], r.n[3], &c->n_ids);
    }
    free(text);
}

static size_t count_pieces(const uint8_t *s, size_t n) {
    size_t k = 0;
    for (size_t p = 0; p < n; k++)
        p = shoal_pretok_next(s, n, p);
    return k;
}

static int same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* 0 when t encodes and decodes case c as the reference does. */
static int check_case(const shoal_tokenizer *t, const ref_case *c, int verbose) {
    int32_t *ids = NULL;
    size_t n = 0;
    int bad = 0;
    if (shoal_tokenizer_encode(t, (const char *)c->ref, c->n_ref, &ids, &n) != SHOAL_OK) return 1;
    if (!same_ids(ids, n, c->ids, c->n_ids)) {
        bad = 1;
        if (verbose) {
            fprintf(stderr, "  case %s: ids differ (got %zu ids, want %zu):", c->name, n, c->n_ids);
            for (size_t i = 0; i < n && i < 24; i++)
                fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, "\n");
        }
    }
    char *text = NULL;
    size_t len = 0;
    if (shoal_tokenizer_decode(t, c->ids, c->n_ids, &text, &len) != SHOAL_OK || len != c->n_ref ||
        memcmp(text, c->ref, len) != 0) {
        bad = 1;
        if (verbose) fprintf(stderr, "  case %s: decode differs\n", c->name);
    }
    free(text);
    free(ids);
    return bad;
}

static void test_reference_ids(void) {
    CHECK(n_cases > 1500);
    for (int l = 0; l < 3; l++) {
        int bad = 0;
        for (int i = 0; i < n_cases; i++)
            bad += check_case(tok[l], &cases[i], l == 0);
        fprintf(stderr, "  layout %d: %d cases, %d differ\n", l, n_cases, bad);
        CHECK_EQ_INT(bad, 0);
    }
}

static void test_invalid_utf8(void) {
    int seen = 0;
    for (int i = 0; i < n_cases; i++) {
        const ref_case *c = &cases[i];
        if (c->n_input == c->n_ref && memcmp(c->input, c->ref, c->n_ref) == 0) continue;
        seen++;
        int32_t *ids = NULL;
        size_t n = 0;
        char *text = NULL;
        size_t len = 0;
        CHECK(shoal_tokenizer_encode(tok[0], (const char *)c->input, c->n_input, &ids, &n) ==
              SHOAL_OK);
        CHECK(shoal_tokenizer_decode(tok[0], ids, n, &text, &len) == SHOAL_OK);
        CHECK(len == c->n_input && memcmp(text, c->input, len) == 0);
        CHECK_EQ_INT(count_pieces(c->input, c->n_input), count_pieces(c->ref, c->n_ref));
        free(ids);
        free(text);
    }
    CHECK_EQ_INT(seen, 6);
}

static void test_special_ids(void) {
    for (int l = 0; l < 3; l++) {
        CHECK_EQ_INT(shoal_tokenizer_vocab_size(tok[l]), 50257);
        CHECK_EQ_INT(shoal_tokenizer_eot_id(tok[l]), 50256);
    }
    int32_t bad[] = {15496, 50257};
    char *text = (char *)1;
    size_t len = 7;
    CHECK_EQ_INT(shoal_tokenizer_decode(tok[0], bad, 2, &text, &len), SHOAL_ERR_INVALID_ARG);
    CHECK(text == NULL && len == 0);
    bad[1] = -1;
    CHECK_EQ_INT(shoal_tokenizer_decode(tok[0], bad, 2, &text, &len), SHOAL_ERR_INVALID_ARG);
    int32_t eot = 50256;
    CHECK(shoal_tokenizer_decode(tok[0], &eot, 1, &text, &len) == SHOAL_OK);
    CHECK_STR(text, "<|endoftext|>");
    free(text);
}

/* A megabyte without a break is one piece: the merge loop must stay O(n log n). gpt-3-encoder
 * gives 250 x 24794 ("aaaa") for 1000 'a's; a megabyte is the same pattern. */
static void test_long_piece(void) {
    size_t n = 1 << 20;
    char *s = malloc(n);
    if (!s) return;
    memset(s, 'a', n);
    int32_t *ids = NULL;
    size_t k = 0;
    CHECK(shoal_tokenizer_encode(tok[0], s, n, &ids, &k) == SHOAL_OK);
    CHECK_EQ_INT(k, n / 4);
    int all = 1;
    for (size_t i = 0; i < k; i++)
        all &= ids[i] == 24794;
    CHECK(all);
    char *text = NULL;
    size_t len = 0;
    CHECK(shoal_tokenizer_decode(tok[0], ids, k, &text, &len) == SHOAL_OK);
    CHECK(len == n && memcmp(text, s, n) == 0);
    free(text);
    free(ids);
    free(s);
}

/* Arbitrary bytes (xorshift) round-trip exactly. */
static void test_random_bytes(void) {
    uint64_t x = 88172645463325252ull;
    size_t n = 1 << 18;
    uint8_t *s = malloc(n);
    if (!s) return;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        s[i] = (uint8_t)(x % 7 == 0 ? ' ' : x >> 24);
    }
    int32_t *ids = NULL;
    size_t k = 0;
    char *text = NULL;
    size_t len = 0;
    CHECK(shoal_tokenizer_encode(tok[0], (const char *)s, n, &ids, &k) == SHOAL_OK);
    CHECK(shoal_tokenizer_decode(tok[0], ids, k, &text, &len) == SHOAL_OK);
    CHECK(len == n && memcmp(text, s, n) == 0);
    free(text);
    free(ids);
    free(s);
}

/* One call over a large text (word cache growing, ids buffer growing) must equal encoding
 * each of its pieces in a call of its own (no cache reuse): the cache changes speed only. */
static void test_one_call_equals_pieces(void) {
    size_t cap = 1 << 20, n = 0;
    char *big = malloc(cap);
    if (!big) return;
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i < n_cases && n + cases[i].n_input + 1 < cap; i++) {
            memcpy(big + n, cases[i].input, cases[i].n_input);
            n += cases[i].n_input;
            big[n++] = rep == 1 ? '\n' : ' ';
        }
    }
    int32_t *all = NULL, *one = NULL;
    size_t n_all = 0, n_one = 0, k = 0, pos = 0;
    int same = 1;
    CHECK(shoal_tokenizer_encode(tok[0], big, n, &all, &n_all) == SHOAL_OK);
    while (pos < n && same) {
        size_t end = shoal_pretok_next((const uint8_t *)big, n, pos);
        if (shoal_tokenizer_encode(tok[0], big + pos, end - pos, &one, &n_one) != SHOAL_OK ||
            k + n_one > n_all || memcmp(all + k, one, n_one * sizeof *one) != 0) {
            fprintf(stderr, "  piece at byte %zu differs\n", pos);
            same = 0;
        }
        k += n_one;
        free(one);
        one = NULL;
        pos = end;
    }
    CHECK(same);
    CHECK_EQ_INT(k, n_all);
    CHECK(n > 100000);
    free(all);
    free(big);
}

static int thread_bad[4];
static void *thread_main(void *arg) {
    int k = (int)(intptr_t)arg;
    for (int rep = 0; rep < 3; rep++)
        for (int i = k; i < n_cases + k; i++)
            thread_bad[k] += check_case(tok[0], &cases[i % n_cases], 0);
    return NULL;
}

static void test_threads(void) {
    pthread_t th[4];
    for (int k = 0; k < 4; k++)
        CHECK(pthread_create(&th[k], NULL, thread_main, (void *)(intptr_t)k) == 0);
    for (int k = 0; k < 4; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < 4; k++)
        CHECK_EQ_INT(thread_bad[k], 0);
}

/* Build the other two layouts from encoder.json + vocab.bpe in a scratch directory. */
static int make_layouts(const char *vocab, char hf[512], char tj[512]) {
    char p[1100], *enc = NULL, *bpe = NULL;
    size_t ne, nb;
    snprintf(p, sizeof p, "%s/encoder.json", vocab);
    if (shoal_file_read(p, 1 << 26, &enc, &ne) != SHOAL_OK) return -1;
    snprintf(p, sizeof p, "%s/vocab.bpe", vocab);
    if (shoal_file_read(p, 1 << 26, &bpe, &nb) != SHOAL_OK) return -1;
    snprintf(hf, 512, "%s/hf", test_tmpdir());
    snprintf(tj, 512, "%s/tj", test_tmpdir());
    int rc = -1;
    json_t *doc = NULL;
    if (shoal_mkdir_p(hf) || shoal_mkdir_p(tj)) goto done;
    snprintf(p, sizeof p, "%s/vocab.json", hf);
    if (shoal_file_write_atomic(p, enc, ne)) goto done;
    snprintf(p, sizeof p, "%s/merges.txt", hf);
    if (shoal_file_write_atomic(p, bpe, nb)) goto done;
    json_error_t err;
    json_t *v = json_loadb(enc, ne, 0, &err), *merges = json_array();
    char *line = strchr(bpe, '\n') + 1; /* skip "#version" */
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (*line) json_array_append_new(merges, json_string(line));
        line = nl ? nl + 1 : NULL;
    }
    doc = json_pack("{s:{s:s,s:o,s:o},s:{s:s,s:b,s:b},s:[{s:i,s:s}]}", "model", "type", "BPE",
                    "vocab", v, "merges", merges, "pre_tokenizer", "type", "ByteLevel",
                    "add_prefix_space", 0, "use_regex", 1, "added_tokens", "id", 50256, "content",
                    "<|endoftext|>");
    snprintf(p, sizeof p, "%s/tokenizer.json", tj);
    if (doc && json_dump_file(doc, p, 0) == 0) rc = 0;
done:
    json_decref(doc);
    free(enc);
    free(bpe);
    return rc;
}

int main(void) {
    const char *vocab = tok_vocab_dir();
    if (!vocab)
        TEST_SKIP("GPT-2 vocabulary not found (SHOAL_VOCAB_DIR or ~/.cache/shoal/gpt2-vocab; run "
                  "deploy/install-deps.sh)");
    char hf[512], tj[512];
    if (shoal_tokenizer_load(vocab, &tok[0]) != SHOAL_OK || make_layouts(vocab, hf, tj) != 0 ||
        shoal_tokenizer_load(hf, &tok[1]) != SHOAL_OK ||
        shoal_tokenizer_load(tj, &tok[2]) != SHOAL_OK) {
        fprintf(stderr, "cannot load the GPT-2 vocabulary in all three layouts from %s\n", vocab);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    load_cases();
    TEST_RUN(test_reference_ids);
    TEST_RUN(test_invalid_utf8);
    TEST_RUN(test_special_ids);
    TEST_RUN(test_long_piece);
    TEST_RUN(test_random_bytes);
    TEST_RUN(test_one_call_equals_pieces);
    TEST_RUN(test_threads);
    for (int i = 0; i < n_cases; i++) {
        free(cases[i].name);
        free(cases[i].input);
        free(cases[i].ref);
        free(cases[i].ids);
    }
    free(cases);
    for (int l = 0; l < 3; l++)
        shoal_tokenizer_free(tok[l]);
    return TEST_EXIT();
}
