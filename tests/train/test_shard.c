/* test_shard.c: token shards (worker/train/shard.h): round trips at both token widths, the
 * writer's argument checks, byte equality with an independent Python writer, the malformed
 * corpus of tests/data/train/shard_bad (made by gen_bad_shards.py), every truncation. */
#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/limits.h"
#include "common/sha256.h"
#include "test.h"
#include "worker/train/shard.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void path_in_tmp(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", test_tmpdir(), name);
}

static void round_trip(uint32_t vocab, uint64_t n, uint64_t n_docs, const char *name) {
    int32_t *tok = malloc((n + 1) * sizeof *tok), *back = malloc((n + 1) * sizeof *back);
    uint8_t *mask = malloc(n + 1), *mback = malloc(n + 1);
    uint64_t *offs = malloc((n_docs + 1) * sizeof *offs);
    uint8_t sha[32];
    for (int i = 0; i < 32; i++)
        sha[i] = (uint8_t)(i * 7 + 1);
    for (uint64_t i = 0; i < n; i++) {
        tok[i] = (int32_t)(next_rand() % vocab);
        mask[i] = (uint8_t)(next_rand() & 1);
    }
    if (n > 0) tok[0] = (int32_t)vocab - 1; /* the largest id must survive the width */
    /* n_docs documents of varying, non-zero length */
    offs[0] = 0;
    for (uint64_t d = 1; d < n_docs; d++)
        offs[d] = offs[d - 1] + 1 + next_rand() % 3;
    offs[n_docs] = n;
    char path[512];
    path_in_tmp(path, sizeof path, name);
    CHECK_EQ_INT(shoal_shard_write(path, vocab, sha, tok, mask, n, offs, n_docs), SHOAL_OK);
    shoal_shard *s = NULL;
    CHECK_EQ_INT(shoal_shard_open(path, &s), SHOAL_OK);
    if (!s) goto done;
    const shoal_shard_info *info = shoal_shard_get_info(s);
    CHECK_EQ_INT(info->vocab_size, vocab);
    CHECK_EQ_INT(info->token_bytes, vocab <= 65536 ? 2 : 4);
    CHECK_EQ_INT(info->n_tokens, n);
    CHECK_EQ_INT(info->n_docs, n_docs);
    CHECK(memcmp(info->source_sha256, sha, 32) == 0);
    uint64_t trained = 0;
    for (uint64_t i = 0; i < n; i++)
        trained += mask[i];
    CHECK_EQ_INT(info->n_trained, trained);
    CHECK_EQ_INT((info->flags & SHOAL_SHARD_FLAG_MASKED) != 0, trained < n);
    CHECK_EQ_INT(shoal_shard_read(s, 0, n, back, mback), SHOAL_OK);
    CHECK(n == 0 || memcmp(back, tok, n * sizeof *tok) == 0);
    CHECK(n == 0 || memcmp(mback, mask, n) == 0);
    for (uint64_t d = 0; d <= n_docs; d++)
        CHECK_EQ_INT(shoal_shard_doc_offset(s, d), offs[d]);
    if (n > 3) { /* a read in the middle */
        int32_t mid[2];
        CHECK_EQ_INT(shoal_shard_read(s, n - 3, 2, mid, NULL), SHOAL_OK);
        CHECK_EQ_INT(mid[0], tok[n - 3]);
        CHECK_EQ_INT(mid[1], tok[n - 2]);
    }
    CHECK_EQ_INT(shoal_shard_read(s, n, 1, back, NULL), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_shard_read(s, 1, UINT64_MAX, back, NULL), SHOAL_ERR_INVALID_ARG);
    shoal_shard_close(s);
done:
    free(tok);
    free(back);
    free(mask);
    free(mback);
    free(offs);
}

static void test_round_trip_u16(void) {
    round_trip(50257, 10000, 3000, "u16.bin");
    round_trip(65536, 500, 100, "u16max.bin");
}
static void test_round_trip_u32(void) {
    round_trip(65537, 500, 100, "u32min.bin");
    round_trip(200000, 4000, 1000, "u32.bin");
}
static void test_round_trip_tiny(void) {
    round_trip(1, 1, 1, "one.bin");
    round_trip(300, 0, 0, "empty.bin");
}

static void test_writer_rejects(void) {
    char path[512];
    path_in_tmp(path, sizeof path, "rejected.bin");
    int32_t tok[4] = {1, 2, 3, 4};
    uint8_t mask[4] = {1, 1, 0, 1};
    uint64_t offs[3] = {0, 2, 4};
    CHECK_EQ_INT(shoal_shard_write(path, 4, NULL, tok, mask, 4, offs, 2), SHOAL_ERR_INVALID_ARG);
    tok[3] = -1;
    CHECK_EQ_INT(shoal_shard_write(path, 10, NULL, tok, mask, 4, offs, 2), SHOAL_ERR_INVALID_ARG);
    tok[3] = 4;
    mask[1] = 2;
    CHECK_EQ_INT(shoal_shard_write(path, 10, NULL, tok, mask, 4, offs, 2), SHOAL_ERR_INVALID_ARG);
    mask[1] = 1;
    uint64_t empty_doc[3] = {0, 0, 4}, short_end[3] = {0, 2, 3}, bad_start[3] = {1, 2, 4};
    CHECK_EQ_INT(shoal_shard_write(path, 10, NULL, tok, mask, 4, empty_doc, 2),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_shard_write(path, 10, NULL, tok, mask, 4, short_end, 2),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_shard_write(path, 10, NULL, tok, mask, 4, bad_start, 2),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_shard_write(path, 10, NULL, tok, mask, 4, offs, 5), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_shard_write(path, 0, NULL, tok, mask, 4, offs, 2), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_shard_write(path, SHOAL_MAX_VOCAB + 1, NULL, tok, mask, 4, offs, 2),
                 SHOAL_ERR_INVALID_ARG);
    CHECK(!shoal_path_exists(path));
    /* a lowered limit is enforced by writer and reader alike */
    CHECK_EQ_INT(shoal_shard_write(path, 10, NULL, tok, mask, 4, offs, 2), SHOAL_OK);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_SHARD_TOKENS, 3), SHOAL_OK);
    char path2[512];
    path_in_tmp(path2, sizeof path2, "rejected2.bin");
    CHECK_EQ_INT(shoal_shard_write(path2, 10, NULL, tok, mask, 4, offs, 2), SHOAL_ERR_LIMIT);
    shoal_shard *s = NULL;
    CHECK_EQ_INT(shoal_shard_open(path, &s), SHOAL_ERR_LIMIT);
    CHECK(s == NULL);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_SHARD_TOKENS,
                                 shoal_limit_describe(SHOAL_LIMIT_SHARD_TOKENS)->def),
                 SHOAL_OK);
    CHECK_EQ_INT(shoal_shard_open(path, &s), SHOAL_OK);
    shoal_shard_close(s);
    shoal_shard_close(NULL);
}

static const char *source_dir(void) {
    const char *s = getenv("SHOAL_SOURCE_DIR");
    return s ? s : ".";
}

/* The C writer and the independent Python writer produce the same bytes. */
static void test_matches_python_writer(void) {
    char ref[1024], path[512];
    snprintf(ref, sizeof ref, "%s/tests/data/train/shard_bad/good_small.bin", source_dir());
    int32_t tok[8] = {5, 17, 299, 0, 42, 7, 8, 256};
    uint8_t mask[8] = {0, 0, 1, 1, 0, 1, 1, 1};
    uint64_t offs[3] = {0, 4, 8};
    char hex[SHOAL_SHA256_HEX_LEN];
    uint8_t sha[32];
    CHECK_EQ_INT(shoal_sha256_buf("source", 6, hex), SHOAL_OK);
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        sha[i] = (uint8_t)v;
    }
    path_in_tmp(path, sizeof path, "small.bin");
    CHECK_EQ_INT(shoal_shard_write(path, 300, sha, tok, mask, 8, offs, 2), SHOAL_OK);
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_EQ_INT(shoal_file_read(ref, 1 << 20, &a, &na), SHOAL_OK);
    CHECK_EQ_INT(shoal_file_read(path, 1 << 20, &b, &nb), SHOAL_OK);
    CHECK(a && b && na == nb && memcmp(a, b, na) == 0);
    free(a);
    free(b);
}

static void test_corpus(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/data/train/shard_bad", source_dir());
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d) return;
    int good = 0, bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        shoal_shard *s = NULL;
        shoal_status st = shoal_shard_open(p, &s);
        if (strncmp(e->d_name, "good_", 5) == 0) {
            good++;
            if (st != SHOAL_OK) fprintf(stderr, "  rejected good file %s\n", e->d_name);
            CHECK_EQ_INT(st, SHOAL_OK);
        } else {
            bad++;
            if (st == SHOAL_OK) fprintf(stderr, "  accepted bad file %s\n", e->d_name);
            int want = strncmp(e->d_name, "n_tokens_", 9) == 0 ? SHOAL_ERR_LIMIT : SHOAL_ERR_FORMAT;
            CHECK_EQ_INT(st, want);
            CHECK(s == NULL);
        }
        shoal_shard_close(s);
    }
    closedir(d);
    CHECK(good >= 4);
    CHECK(bad >= 25);
}

/* Every strict prefix and every one-byte extension of a valid shard is rejected. */
static void test_truncations(void) {
    char ref[1024];
    snprintf(ref, sizeof ref, "%s/tests/data/train/shard_bad/good_small.bin", source_dir());
    char *buf = NULL;
    size_t n = 0;
    CHECK_EQ_INT(shoal_file_read(ref, 1 << 20, &buf, &n), SHOAL_OK);
    if (!buf) return;
    int rejected = 0;
    for (size_t len = 0; len < n; len++) {
        shoal_shard *s = NULL;
        if (shoal_shard_parse(buf, len, "prefix", &s) != SHOAL_OK) rejected++;
        shoal_shard_close(s);
    }
    CHECK_EQ_INT(rejected, n);
    char *longer = malloc(n + 1);
    memcpy(longer, buf, n);
    longer[n] = 0;
    shoal_shard *s = NULL;
    CHECK_EQ_INT(shoal_shard_parse(longer, n + 1, "longer", &s), SHOAL_ERR_FORMAT);
    CHECK_EQ_INT(shoal_shard_parse(longer, n, "exact", &s), SHOAL_OK);
    shoal_shard_close(s);
    free(longer);
    free(buf);
}

static void test_open_errors(void) {
    shoal_shard *s = NULL;
    char p[512];
    path_in_tmp(p, sizeof p, "does-not-exist.bin");
    CHECK_EQ_INT(shoal_shard_open(p, &s), SHOAL_ERR_NOT_FOUND);
    CHECK(shoal_shard_open(test_tmpdir(), &s) != SHOAL_OK);
    CHECK(s == NULL);
}

int main(void) {
    TEST_RUN(test_round_trip_u16);
    TEST_RUN(test_round_trip_u32);
    TEST_RUN(test_round_trip_tiny);
    TEST_RUN(test_writer_rejects);
    TEST_RUN(test_matches_python_writer);
    TEST_RUN(test_corpus);
    TEST_RUN(test_truncations);
    TEST_RUN(test_open_errors);
    return TEST_EXIT();
}
