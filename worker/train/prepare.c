/* prepare.c: see prepare.h. Two passes over the input: the first counts lines (so the
 * validation split can be an exact size), the second validates, encodes, splits and writes
 * shards into a temporary directory that becomes out_dir by one rename at the end. */
#define SHOAL_LOG_SUBSYS "prepare"
#include "worker/train/prepare.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/json.h"
#include "common/limits.h"
#include "common/sha256.h"
#include "worker/train/jsonl.h"
#include "worker/train/shard.h"

static const char *split_names[2] = {"train", "val"};

typedef struct {
    int32_t *tok;
    uint8_t *mask;
    uint64_t n, cap;
    uint64_t *offs; /* n_docs+1 entries */
    uint64_t n_docs, cap_docs;
    int n_shards;
    uint64_t docs, tokens, trained; /* totals over all shards */
    json_t *shards;                 /* array of shard descriptions */
} split_buf;

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static shoal_status grow(split_buf *b, uint64_t more_tokens) {
    if (b->n + more_tokens > b->cap) {
        uint64_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + more_tokens)
            cap *= 2;
        int32_t *t = realloc(b->tok, cap * sizeof *t);
        if (t) b->tok = t;
        uint8_t *m = realloc(b->mask, cap);
        if (m) b->mask = m;
        SHOAL_REQUIRE(t && m, SHOAL_ERR_NOMEM, "out of memory for %llu tokens",
                      (unsigned long long)cap);
        b->cap = cap;
    }
    if (b->n_docs + 2 > b->cap_docs) {
        uint64_t cap = b->cap_docs ? b->cap_docs * 2 : 1024;
        uint64_t *o = realloc(b->offs, cap * sizeof *o);
        SHOAL_REQUIRE(o, SHOAL_ERR_NOMEM, "out of memory for %llu documents",
                      (unsigned long long)cap);
        b->offs = o;
        b->cap_docs = cap;
        b->offs[0] = 0;
    }
    return SHOAL_OK;
}

static shoal_status flush(split_buf *b, int which, const char *dir, uint32_t vocab,
                          const uint8_t sha[32]) {
    if (b->n_docs == 0) return SHOAL_OK;
    SHOAL_REQUIRE((uint64_t)b->n_shards < shoal_limit(SHOAL_LIMIT_DATASET_SHARDS), SHOAL_ERR_LIMIT,
                  "%s split needs more than the dataset_shards limit of %llu", split_names[which],
                  (unsigned long long)shoal_limit(SHOAL_LIMIT_DATASET_SHARDS));
    char name[64], path[SHOAL_MAX_PATH], hex[SHOAL_SHA256_HEX_LEN];
    snprintf(name, sizeof name, "%s-%05d.bin", split_names[which], b->n_shards);
    SHOAL_CHECK(shoal_path_join(path, sizeof path, dir, name));
    SHOAL_CHECK(shoal_shard_write(path, vocab, sha, b->tok, b->mask, b->n, b->offs, b->n_docs));
    SHOAL_CHECK(shoal_sha256_file(path, hex));
    struct stat sb;
    SHOAL_REQUIRE(stat(path, &sb) == 0, SHOAL_ERR_IO, "%s: stat failed", path);
    uint64_t trained = 0;
    for (uint64_t i = 0; i < b->n; i++)
        trained += b->mask[i];
    json_t *o =
        json_pack("{s:s, s:I, s:I, s:I, s:s}", "file", name, "documents", (json_int_t)b->n_docs,
                  "tokens", (json_int_t)b->n, "bytes", (json_int_t)sb.st_size, "sha256", hex);
    SHOAL_REQUIRE(o && json_array_append_new(b->shards, o) == 0, SHOAL_ERR_NOMEM, "out of memory");
    b->n_shards++;
    b->docs += b->n_docs;
    b->tokens += b->n;
    b->trained += trained;
    b->n = 0;
    b->n_docs = 0;
    return SHOAL_OK;
}

/* Append ids with one mask value; checks ids against the vocabulary (a wrong tokenizer
 * directory would otherwise write a shard the model cannot index). */
static shoal_status put(split_buf *b, const int32_t *ids, size_t n, uint8_t m, uint32_t vocab,
                        const char *file, uint64_t lineno) {
    for (size_t i = 0; i < n; i++) {
        SHOAL_REQUIRE(ids[i] >= 0 && (uint32_t)ids[i] < vocab, SHOAL_ERR_INTERNAL,
                      "%s:%llu: tokenizer produced id %d outside its vocabulary of %u", file,
                      (unsigned long long)lineno, ids[i], vocab);
        b->tok[b->n] = ids[i];
        b->mask[b->n] = m;
        b->n++;
    }
    return SHOAL_OK;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[SHOAL_MAX_PATH];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (shoal_path_join(p, sizeof p, dir, e->d_name) == SHOAL_OK) unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* First pass: count the examples (lines) and hash the file. */
static shoal_status scan(const char *path, uint64_t *n, char hex[SHOAL_SHA256_HEX_LEN],
                         uint8_t raw[32], uint64_t *bytes) {
    shoal_jsonl_reader *r = NULL;
    *n = 0;
    SHOAL_CHECK(shoal_jsonl_reader_open(path, &r));
    shoal_status st;
    for (;;) {
        const char *line;
        size_t len;
        uint64_t lineno;
        st = shoal_jsonl_reader_next(r, &line, &len, &lineno);
        if (st != SHOAL_OK || !line) break;
        (*n)++;
    }
    if (st == SHOAL_OK) st = shoal_jsonl_reader_digest(r, hex, raw, bytes);
    shoal_jsonl_reader_free(r);
    return st;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

shoal_status shoal_data_prepare(const shoal_prepare_config *cfg, const shoal_text_encoder *enc,
                                shoal_prepare_result *result) {
    SHOAL_REQUIRE(cfg && enc && enc->encode && cfg->input_path && cfg->out_dir,
                  SHOAL_ERR_INVALID_ARG, "prepare: missing input, output or encoder");
    SHOAL_REQUIRE(cfg->val_fraction >= 0.0 && cfg->val_fraction <= 0.5, SHOAL_ERR_INVALID_ARG,
                  "--val-fraction %g must be in [0, 0.5]", cfg->val_fraction);
    SHOAL_REQUIRE(enc->vocab_size >= 1 && enc->vocab_size <= SHOAL_MAX_VOCAB && enc->eot_id >= 0 &&
                      (uint32_t)enc->eot_id < enc->vocab_size,
                  SHOAL_ERR_INVALID_ARG, "prepare: tokenizer vocab %u / end-of-text id %d invalid",
                  enc->vocab_size, enc->eot_id);
    /* Default shard size 2^26 tokens: the split buffers (5 bytes a token) stay ~320 MB each
     * and a shard file ~190 MB; never above the reader's limit. */
    uint64_t shard_tokens = cfg->shard_tokens ? cfg->shard_tokens : (1ull << 26);
    if (shard_tokens > shoal_limit(SHOAL_LIMIT_SHARD_TOKENS))
        shard_tokens = shoal_limit(SHOAL_LIMIT_SHARD_TOKENS);

    char out[SHOAL_MAX_PATH], tmp[SHOAL_MAX_PATH + 32], path[SHOAL_MAX_PATH + 64];
    size_t ol = strlen(cfg->out_dir);
    SHOAL_REQUIRE(ol > 0 && ol < sizeof out, SHOAL_ERR_INVALID_ARG, "--out: bad path");
    memcpy(out, cfg->out_dir, ol + 1);
    while (ol > 1 && out[ol - 1] == '/')
        out[--ol] = '\0';
    SHOAL_REQUIRE(!shoal_path_exists(out), SHOAL_ERR_INVALID_ARG,
                  "%s already exists; remove it or choose another --out", out);
    const char *file = cfg->input_path;

    uint64_t n_lines = 0, bytes = 0;
    uint8_t sha_raw[32] = {0};
    char sha_hex[SHOAL_SHA256_HEX_LEN] = "";
    SHOAL_CHECK(scan(file, &n_lines, sha_hex, sha_raw, &bytes));
    SHOAL_REQUIRE(n_lines > 0, SHOAL_ERR_FORMAT, "%s: no examples (the file is empty)", file);
    uint64_t k_val = 0;
    if (cfg->val_fraction > 0 && n_lines >= 2) {
        double k = floor(cfg->val_fraction * (double)n_lines + 0.5);
        k_val = k < 1 ? 1 : (uint64_t)k;
        if (k_val > n_lines - 1) k_val = n_lines - 1;
    }

    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    remove_tree(tmp); /* a leftover from a crashed run with our pid */
    SHOAL_CHECK(shoal_mkdir_p(tmp));

    shoal_status st = SHOAL_OK;
    shoal_jsonl_reader *r = NULL;
    json_t *manifest = NULL;
    int32_t *ids = NULL;
    shoal_jsonl_doc doc = {0};
    split_buf bufs[2] = {{0}, {0}};
    for (int s = 0; s < 2; s++) {
        bufs[s].shards = json_array();
        SHOAL_REQUIRE_GOTO(bufs[s].shards, SHOAL_ERR_NOMEM, "out of memory");
    }
    uint64_t rng = cfg->seed, selected = 0, examples = 0;

    SHOAL_CHECK_GOTO(shoal_jsonl_reader_open(file, &r));
    for (;;) {
        const char *line;
        size_t len;
        uint64_t lineno;
        SHOAL_CHECK_GOTO(shoal_jsonl_reader_next(r, &line, &len, &lineno));
        if (!line) break;
        SHOAL_CHECK_GOTO(shoal_jsonl_parse_line(line, len, file, lineno, &doc));
        examples++;
        SHOAL_REQUIRE_GOTO(examples <= n_lines, SHOAL_ERR_IO,
                           "%s: the file changed while it was being prepared", file);
        /* Algorithm S: select with probability (still needed) / (still to see). */
        double u = (double)(splitmix64(&rng) >> 11) * 0x1.0p-53;
        int which = u * (double)(n_lines - examples + 1) < (double)(k_val - selected) ? 1 : 0;
        selected += (uint64_t)which;
        split_buf *b = &bufs[which];

        size_t n1 = 0, n2 = 0;
        const char *t1 = doc.text ? doc.text : doc.prompt;
        size_t l1 = doc.text ? doc.text_len : doc.prompt_len;
        int32_t *ids2 = NULL;
        if (l1 > 0) SHOAL_CHECK_GOTO(enc->encode(enc->ctx, t1, l1, &ids, &n1));
        if (!doc.text) {
            st = enc->encode(enc->ctx, doc.completion, doc.completion_len, &ids2, &n2);
            if (st != SHOAL_OK) {
                SHOAL_LOG_ERROR("%s:%llu: cannot encode the completion", file,
                                (unsigned long long)lineno);
                goto cleanup;
            }
        }
        uint64_t doc_tokens = (uint64_t)n1 + n2 + 1;
        if (doc_tokens > shard_tokens) {
            free(ids2);
            SHOAL_REQUIRE_GOTO(0, SHOAL_ERR_LIMIT,
                               "%s:%llu: example has %llu tokens, more than a shard holds "
                               "(shard_tokens %llu)",
                               file, (unsigned long long)lineno, (unsigned long long)doc_tokens,
                               (unsigned long long)shard_tokens);
        }
        if (b->n + doc_tokens > shard_tokens) {
            st = flush(b, which, tmp, enc->vocab_size, sha_raw);
            if (st != SHOAL_OK) {
                free(ids2);
                goto cleanup;
            }
        }
        st = grow(b, doc_tokens);
        if (st == SHOAL_OK) st = put(b, ids, n1, doc.text ? 1 : 0, enc->vocab_size, file, lineno);
        if (st == SHOAL_OK) st = put(b, ids2, n2, 1, enc->vocab_size, file, lineno);
        if (st == SHOAL_OK) st = put(b, &enc->eot_id, 1, 1, enc->vocab_size, file, lineno);
        free(ids2);
        free(ids);
        ids = NULL;
        if (st != SHOAL_OK) goto cleanup;
        b->offs[++b->n_docs] = b->n;
        shoal_jsonl_doc_free(&doc);
    }
    SHOAL_REQUIRE_GOTO(examples == n_lines, SHOAL_ERR_IO,
                       "%s: the file changed while it was being prepared", file);
    for (int s = 0; s < 2; s++)
        SHOAL_CHECK_GOTO(flush(&bufs[s], s, tmp, enc->vocab_size, sha_raw));

    manifest = json_pack("{s:s, s:i, s:{s:s, s:s, s:I, s:I}, s:{s:I, s:i}, s:f, s:I}", "format",
                         "shoal-token-shards", "version", 1, "source", "file", base_name(file),
                         "sha256", sha_hex, "bytes", (json_int_t)bytes, "examples",
                         (json_int_t)examples, "tokenizer", "vocab_size",
                         (json_int_t)enc->vocab_size, "eot_id", (int)enc->eot_id, "val_fraction",
                         cfg->val_fraction, "seed", (json_int_t)cfg->seed);
    SHOAL_REQUIRE_GOTO(manifest, SHOAL_ERR_NOMEM, "out of memory");
    json_t *splits = json_object();
    SHOAL_REQUIRE_GOTO(splits && json_object_set_new(manifest, "splits", splits) == 0,
                       SHOAL_ERR_NOMEM, "out of memory");
    for (int s = 0; s < 2; s++) {
        json_t *o = json_pack("{s:I, s:I, s:I, s:O}", "documents", (json_int_t)bufs[s].docs,
                              "tokens", (json_int_t)bufs[s].tokens, "trained_tokens",
                              (json_int_t)bufs[s].trained, "shards", bufs[s].shards);
        SHOAL_REQUIRE_GOTO(o && json_object_set_new(splits, split_names[s], o) == 0,
                           SHOAL_ERR_NOMEM, "out of memory");
    }
    SHOAL_CHECK_GOTO(shoal_path_join(path, sizeof path, tmp, "dataset.json"));
    SHOAL_CHECK_GOTO(shoal_json_write_file(path, manifest));
    SHOAL_REQUIRE_GOTO(!shoal_path_exists(out), SHOAL_ERR_INVALID_ARG,
                       "%s appeared while preparing; not replacing it", out);
    SHOAL_REQUIRE_GOTO(rename(tmp, out) == 0, SHOAL_ERR_IO, "rename %s -> %s failed", tmp, out);
    st = shoal_fsync_parent_dir(out);
    if (st != SHOAL_OK) goto done; /* renamed: the output exists, only durability is unsure */
    if (result) {
        memset(result, 0, sizeof *result);
        result->examples = examples;
        for (int s = 0; s < 2; s++) {
            result->docs[s] = bufs[s].docs;
            result->tokens[s] = bufs[s].tokens;
            result->trained_tokens[s] = bufs[s].trained;
            result->shards[s] = bufs[s].n_shards;
        }
        memcpy(result->sha256, sha_hex, sizeof sha_hex);
    }
    goto done;
cleanup:
    remove_tree(tmp);
done:
    free(ids);
    shoal_jsonl_doc_free(&doc);
    shoal_jsonl_reader_free(r);
    json_decref(manifest);
    for (int s = 0; s < 2; s++) {
        free(bufs[s].tok);
        free(bufs[s].mask);
        free(bufs[s].offs);
        json_decref(bufs[s].shards);
    }
    return st;
}
