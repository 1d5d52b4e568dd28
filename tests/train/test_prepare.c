/* test_prepare.c: JSONL -> shards (worker/train/prepare.h) and the manifest reader
 * (worker/train/dataset.h), with a byte-level encoder defined here (ids = bytes, end-of-text
 * 256) so every token can be mapped back to the input by hand. The product uses the GPT-2
 * tokenizer; tests/train/test_data_cli.sh covers that path.
 * Checked: tokens and masks of every document against the input, exact and deterministic
 * validation split, shard splitting, manifest totals and hashes, each bad input leaving no
 * output (nor temp directory) behind, malformed manifests. */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/json.h"
#include "common/limits.h"
#include "common/sha256.h"
#include "test.h"
#include "worker/train/dataset.h"
#include "worker/train/prepare.h"
#include "worker/train/shard.h"

/* ---- the test-only byte-level encoder ---- */
static shoal_status byte_encode(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n) {
    (void)ctx;
    *ids = malloc(len ? len * sizeof **ids : 1);
    if (!*ids) return SHOAL_ERR_NOMEM;
    for (size_t i = 0; i < len; i++)
        (*ids)[i] = (unsigned char)text[i];
    *n = len;
    return SHOAL_OK;
}
static const shoal_text_encoder byte_enc = {NULL, 257, 256, byte_encode};

static char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    return p;
}

static void write_text(const char *path, const char *s) {
    CHECK_EQ_INT(shoal_file_write_atomic(path, s, strlen(s)), SHOAL_OK);
}

/* n examples: every third a text, the rest prompt/completion; returns the file. */
static const char *make_input(const char *name, int n) {
    size_t cap = (size_t)n * 128 + 1, len = 0;
    char *s = malloc(cap);
    for (int i = 0; i < n; i++) {
        if (i % 3 == 0)
            len += (size_t)snprintf(s + len, cap - len, "{\"text\": \"doc %d\"}\n", i);
        else
            len += (size_t)snprintf(
                s + len, cap - len,
                "{\"prompt\": \"Q%d:\", \"completion\": \" a%d\", \"id\": %d}\n", i, i * 7, i);
    }
    const char *p = tmp_path(name);
    CHECK_EQ_INT(shoal_file_write_atomic(p, s, len), SHOAL_OK);
    free(s);
    return p;
}

/* What example i of make_input encodes to. */
static void expected_doc(int i, int32_t *tok, uint8_t *mask, size_t *n) {
    char a[64], b[64];
    size_t k = 0;
    if (i % 3 == 0) {
        snprintf(a, sizeof a, "doc %d", i);
        for (size_t j = 0; a[j]; j++, k++)
            tok[k] = (unsigned char)a[j], mask[k] = 1;
    } else {
        snprintf(a, sizeof a, "Q%d:", i);
        snprintf(b, sizeof b, " a%d", i * 7);
        for (size_t j = 0; a[j]; j++, k++)
            tok[k] = (unsigned char)a[j], mask[k] = 0;
        for (size_t j = 0; b[j]; j++, k++)
            tok[k] = (unsigned char)b[j], mask[k] = 1;
    }
    tok[k] = 256;
    mask[k++] = 1;
    *n = k;
}

/* No "<name>.tmp.*" directory is left in the scratch directory. */
static int no_temp_left(void) {
    DIR *d = opendir(test_tmpdir());
    struct dirent *e;
    int ok = 1;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) ok = 0;
    if (d) closedir(d);
    return ok;
}

/* Walks every document of both splits and checks it against the input; each example must
 * appear exactly once. Returns the val example indices as a bitmap string. */
static void check_output(const char *dir, int n, char *is_val) {
    shoal_dataset *ds = NULL;
    CHECK_EQ_INT(shoal_dataset_load(dir, &ds), SHOAL_OK);
    if (!ds) return;
    CHECK_EQ_INT(ds->vocab_size, 257);
    CHECK_EQ_INT(ds->eot_id, 256);
    CHECK_EQ_INT(ds->examples, n);
    CHECK_EQ_INT(shoal_dataset_verify(ds), SHOAL_OK);
    char *seen = calloc((size_t)n, 1);
    memset(is_val, 0, (size_t)n);
    for (int s = 0; s < 2; s++) {
        const shoal_dataset_split *sp = shoal_dataset_get_split(ds, s ? "val" : "train");
        uint64_t trained = 0;
        for (int i = 0; i < sp->n_shards; i++) {
            char p[2048];
            snprintf(p, sizeof p, "%s/%s", dir, sp->shards[i].file);
            shoal_shard *sh = NULL;
            CHECK_EQ_INT(shoal_shard_open(p, &sh), SHOAL_OK);
            if (!sh) continue;
            const shoal_shard_info *info = shoal_shard_get_info(sh);
            CHECK_EQ_INT(info->n_tokens, sp->shards[i].tokens);
            CHECK_EQ_INT(info->n_docs, sp->shards[i].documents);
            trained += info->n_trained;
            for (uint64_t d = 0; d < info->n_docs; d++) {
                uint64_t a = shoal_shard_doc_offset(sh, d), b = shoal_shard_doc_offset(sh, d + 1);
                int32_t tok[128], want[128];
                uint8_t mask[128], wmask[128];
                if (b - a > 128) {
                    CHECK(0);
                    continue;
                }
                CHECK_EQ_INT(shoal_shard_read(sh, a, b - a, tok, mask), SHOAL_OK);
                /* recover the example index from its digits */
                int idx = -1;
                char txt[128];
                size_t m = 0;
                for (uint64_t j = 0; j + 1 < b - a && m < 127; j++)
                    txt[m++] = (char)tok[j];
                txt[m] = 0;
                if (sscanf(txt, "doc %d", &idx) != 1) sscanf(txt, "Q%d:", &idx);
                CHECK(idx >= 0 && idx < n);
                if (idx < 0 || idx >= n) continue;
                CHECK(!seen[idx]);
                seen[idx] = 1;
                is_val[idx] = (char)s;
                size_t wn = 0;
                expected_doc(idx, want, wmask, &wn);
                CHECK_EQ_INT(wn, b - a);
                CHECK(memcmp(tok, want, wn * sizeof *tok) == 0);
                CHECK(memcmp(mask, wmask, wn) == 0);
            }
            shoal_shard_close(sh);
        }
        CHECK_EQ_INT(trained, sp->trained_tokens);
    }
    for (int i = 0; i < n; i++)
        CHECK(seen[i]);
    free(seen);
    shoal_dataset_free(ds);
}

static void test_prepare_round_trip(void) {
    const char *in = make_input("in.jsonl", 200);
    shoal_prepare_config cfg = {in, tmp_path("out1"), 0.05, 42, 0};
    shoal_prepare_result res;
    CHECK_EQ_INT(shoal_data_prepare(&cfg, &byte_enc, &res), SHOAL_OK);
    CHECK_EQ_INT(res.examples, 200);
    CHECK_EQ_INT(res.docs[1], 10); /* exactly round(0.05 * 200) */
    CHECK_EQ_INT(res.docs[0], 190);
    CHECK_EQ_INT(res.shards[0], 1);
    CHECK_EQ_INT(res.shards[1], 1);
    char want[SHOAL_SHA256_HEX_LEN];
    CHECK_EQ_INT(shoal_sha256_file(in, want), SHOAL_OK);
    CHECK_STR(res.sha256, want);
    char val1[200], val2[200], val3[200];
    check_output(cfg.out_dir, 200, val1);
    int n_val = 0;
    for (int i = 0; i < 200; i++)
        n_val += val1[i];
    CHECK_EQ_INT(n_val, 10);
    CHECK(no_temp_left());

    /* same seed: identical files; other seed: another split of the same size */
    shoal_prepare_config cfg2 = {in, tmp_path("out2"), 0.05, 42, 0};
    CHECK_EQ_INT(shoal_data_prepare(&cfg2, &byte_enc, NULL), SHOAL_OK);
    check_output(cfg2.out_dir, 200, val2);
    CHECK(memcmp(val1, val2, 200) == 0);
    char a[1024], b[1024], ha[65], hb[65];
    snprintf(a, sizeof a, "%s/train-00000.bin", cfg.out_dir);
    snprintf(b, sizeof b, "%s/train-00000.bin", cfg2.out_dir);
    CHECK_EQ_INT(shoal_sha256_file(a, ha), SHOAL_OK);
    CHECK_EQ_INT(shoal_sha256_file(b, hb), SHOAL_OK);
    CHECK_STR(ha, hb);
    shoal_prepare_config cfg3 = {in, tmp_path("out3"), 0.05, 43, 0};
    CHECK_EQ_INT(shoal_data_prepare(&cfg3, &byte_enc, &res), SHOAL_OK);
    CHECK_EQ_INT(res.docs[1], 10);
    check_output(cfg3.out_dir, 200, val3);
    CHECK(memcmp(val1, val3, 200) != 0);

    /* the output directory is never replaced */
    CHECK_EQ_INT(shoal_data_prepare(&cfg, &byte_enc, NULL), SHOAL_ERR_INVALID_ARG);
}

static void test_prepare_shards_and_fractions(void) {
    const char *in = make_input("in2.jsonl", 300);
    shoal_prepare_config cfg = {in, tmp_path("sharded"), 0.1, 7, 500};
    shoal_prepare_result res;
    CHECK_EQ_INT(shoal_data_prepare(&cfg, &byte_enc, &res), SHOAL_OK);
    CHECK_EQ_INT(res.docs[1], 30);
    CHECK(res.shards[0] >= (int)(res.tokens[0] / 500)); /* ~2,800 tokens, shards <= 500 */
    CHECK(res.shards[0] >= 5);
    char val[300];
    check_output(cfg.out_dir, 300, val);
    shoal_dataset *ds = NULL;
    CHECK_EQ_INT(shoal_dataset_load(cfg.out_dir, &ds), SHOAL_OK);
    for (int i = 0; ds && i < ds->train.n_shards; i++)
        CHECK(ds->train.shards[i].tokens <= 500);
    shoal_dataset_free(ds);

    shoal_prepare_config none = {in, tmp_path("noval"), 0.0, 7, 0};
    CHECK_EQ_INT(shoal_data_prepare(&none, &byte_enc, &res), SHOAL_OK);
    CHECK_EQ_INT(res.docs[1], 0);
    CHECK_EQ_INT(res.shards[1], 0);
    check_output(none.out_dir, 300, val);

    /* two examples and a small fraction: val still gets exactly one */
    const char *two = tmp_path("two.jsonl");
    write_text(two, "{\"text\": \"doc 0\"}\n{\"prompt\": \"Q1:\", \"completion\": \" a7\"}");
    shoal_prepare_config c2 = {two, tmp_path("two"), 0.01, 1, 0};
    CHECK_EQ_INT(shoal_data_prepare(&c2, &byte_enc, &res), SHOAL_OK);
    CHECK_EQ_INT(res.docs[0], 1);
    CHECK_EQ_INT(res.docs[1], 1);
    check_output(c2.out_dir, 2, val);
    CHECK_EQ_INT(
        shoal_data_prepare(&(shoal_prepare_config){in, tmp_path("x"), 0.6, 1, 0}, &byte_enc, NULL),
        SHOAL_ERR_INVALID_ARG);
}

static void test_prepare_bad_inputs(void) {
    static const struct {
        const char *content;
        shoal_status want;
    } cases[] = {
        {"", SHOAL_ERR_FORMAT},
        {"{\"text\": \"a\"}\n\n{\"text\": \"b\"}\n", SHOAL_ERR_FORMAT},
        {"{\"text\": \"a\"}\n{\"text\": \"caf\xc3(\"}\n", SHOAL_ERR_FORMAT},
        {"{\"text\": \"a\"}\n{\"text\": }\n", SHOAL_ERR_FORMAT},
        {"{\"text\": \"a\"}\n{\"prompt\": \"p\"}\n", SHOAL_ERR_FORMAT},
        {"{\"text\": \"a\"}\n{\"txt\": \"p\"}\n", SHOAL_ERR_FORMAT},
        {"{\"text\": \"a\"}\n[1]\n", SHOAL_ERR_FORMAT},
        {"{\"text\": \"a\"}\n{\"text\": \"0123456789012345678901234567890123456789\"}\n",
         SHOAL_ERR_LIMIT},
    };
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_JSONL_LINE_BYTES, 40), SHOAL_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64], out[64];
        snprintf(name, sizeof name, "bad%zu.jsonl", i);
        snprintf(out, sizeof out, "bad%zu-out", i);
        const char *in = tmp_path(name), *od = tmp_path(out);
        write_text(in, cases[i].content);
        shoal_prepare_config cfg = {in, od, 0.05, 1, 0};
        shoal_status st = shoal_data_prepare(&cfg, &byte_enc, NULL);
        if (st != cases[i].want) fprintf(stderr, "  case %zu: status %d\n", i, st);
        CHECK_EQ_INT(st, cases[i].want);
        CHECK(!shoal_path_exists(od));
    }
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_JSONL_LINE_BYTES,
                                 shoal_limit_describe(SHOAL_LIMIT_JSONL_LINE_BYTES)->def),
                 SHOAL_OK);
    /* an example longer than a shard */
    const char *in = tmp_path("long.jsonl");
    write_text(in, "{\"text\": \"a fairly long document\"}\n");
    CHECK_EQ_INT(shoal_data_prepare(&(shoal_prepare_config){in, tmp_path("long-out"), 0, 1, 10},
                                    &byte_enc, NULL),
                 SHOAL_ERR_LIMIT);
    CHECK(!shoal_path_exists(tmp_path("long-out")));
    CHECK_EQ_INT(shoal_data_prepare(
                     &(shoal_prepare_config){tmp_path("missing.jsonl"), tmp_path("m-out"), 0, 1, 0},
                     &byte_enc, NULL),
                 SHOAL_ERR_NOT_FOUND);
    CHECK(!shoal_path_exists(tmp_path("m-out")));
    CHECK(no_temp_left());
}

/* Manifests that lie are refused. */
static void test_manifest_malformed(void) {
    const char *in = make_input("in3.jsonl", 30);
    const char *dir = tmp_path("mf");
    CHECK_EQ_INT(shoal_data_prepare(&(shoal_prepare_config){in, dir, 0.1, 3, 0}, &byte_enc, NULL),
                 SHOAL_OK);
    char mpath[1024];
    snprintf(mpath, sizeof mpath, "%s/dataset.json", dir);
    char *orig = NULL;
    size_t olen = 0;
    CHECK_EQ_INT(shoal_file_read(mpath, 1 << 20, &orig, &olen), SHOAL_OK);
    if (!orig) return;
    static const struct {
        const char *from, *to;
    } edits[] = {
        {"\"train-00000.bin\"", "\"../train-00000.bin\""}, {"\"train-00000.bin\"", "\".hidden\""},
        {"\"shoal-token-shards\"", "\"other\""},           {"\"version\": 1", "\"version\": 2"},
        {"\"vocab_size\": 257", "\"vocab_size\": 0"},      {"\"eot_id\": 256", "\"eot_id\": 257"},
        {"\"examples\": 30", "\"examples\": 31"},          {"\"sha256\": \"", "\"sha256\": \"zz"},
    };
    shoal_dataset *ds = NULL;
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *p = strstr(orig, edits[i].from);
        CHECK(p != NULL);
        if (!p) continue;
        size_t pre = (size_t)(p - orig), fl = strlen(edits[i].from), tl = strlen(edits[i].to);
        char *m = malloc(olen + tl + 1);
        memcpy(m, orig, pre);
        memcpy(m + pre, edits[i].to, tl);
        memcpy(m + pre + tl, p + fl, olen - pre - fl + 1);
        CHECK_EQ_INT(shoal_file_write_atomic(mpath, m, strlen(m)), SHOAL_OK);
        shoal_status st = shoal_dataset_load(dir, &ds);
        if (st == SHOAL_OK) fprintf(stderr, "  edit %zu accepted\n", i);
        CHECK(st != SHOAL_OK);
        CHECK(ds == NULL);
        free(m);
    }
    /* intact manifest but a shard changed after preparation */
    CHECK_EQ_INT(shoal_file_write_atomic(mpath, orig, olen), SHOAL_OK);
    CHECK_EQ_INT(shoal_dataset_load(dir, &ds), SHOAL_OK);
    char spath[1024];
    snprintf(spath, sizeof spath, "%s/val-00000.bin", dir);
    char *sh = NULL;
    size_t sl = 0;
    CHECK_EQ_INT(shoal_file_read(spath, 1 << 20, &sh, &sl), SHOAL_OK);
    if (sh && sl > 200) {
        sh[sl - 1] ^= 1; /* a mask byte 1 -> 0 */
        CHECK_EQ_INT(shoal_file_write_atomic(spath, sh, sl), SHOAL_OK);
    }
    CHECK_EQ_INT(shoal_dataset_verify(ds), SHOAL_ERR_FORMAT);
    free(sh);
    shoal_dataset_free(ds);
    free(orig);
}

int main(void) {
    TEST_RUN(test_prepare_round_trip);
    TEST_RUN(test_prepare_shards_and_fractions);
    TEST_RUN(test_prepare_bad_inputs);
    TEST_RUN(test_manifest_malformed);
    return TEST_EXIT();
}
