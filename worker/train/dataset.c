/* dataset.c: see dataset.h. */
#define SHOAL_LOG_SUBSYS "dataset"
#include "worker/train/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/json.h"
#include "common/limits.h"

static int is_hex64(const char *s) {
    if (strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static int plain_name(const char *s) {
    size_t n = strlen(s);
    return n > 0 && n < SHOAL_DATASET_MAX_NAME && s[0] != '.' && !strchr(s, '/') &&
           !strchr(s, '\\');
}

static shoal_status u64_field(const json_t *o, const char *key, const char *what, uint64_t *out) {
    int64_t v = 0;
    SHOAL_CHECK(shoal_json_get_int(o, key, 1, 0, INT64_MAX, what, &v));
    *out = (uint64_t)v;
    return SHOAL_OK;
}

static shoal_status load_split(const json_t *splits, const char *name, const char *what,
                               shoal_dataset_split *sp) {
    const json_t *o = json_object_get(splits, name);
    SHOAL_REQUIRE(json_is_object(o), SHOAL_ERR_FORMAT,
                  "%s: splits.%s is missing or not an "
                  "object",
                  what, name);
    SHOAL_CHECK(u64_field(o, "documents", what, &sp->documents));
    SHOAL_CHECK(u64_field(o, "tokens", what, &sp->tokens));
    SHOAL_CHECK(u64_field(o, "trained_tokens", what, &sp->trained_tokens));
    const json_t *arr = json_object_get(o, "shards");
    SHOAL_REQUIRE(json_is_array(arr), SHOAL_ERR_FORMAT, "%s: splits.%s.shards must be an array",
                  what, name);
    size_t n = json_array_size(arr);
    SHOAL_REQUIRE(n <= shoal_limit(SHOAL_LIMIT_DATASET_SHARDS), SHOAL_ERR_LIMIT,
                  "%s: splits.%s has %zu shards, over the dataset_shards limit", what, name, n);
    sp->shards = calloc(n ? n : 1, sizeof *sp->shards);
    SHOAL_REQUIRE(sp->shards, SHOAL_ERR_NOMEM, "%s: out of memory", what);
    uint64_t docs = 0, toks = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(arr, i);
        shoal_dataset_shard *s = &sp->shards[i];
        const char *file = NULL, *sha = NULL;
        SHOAL_CHECK(shoal_json_get_str(e, "file", 1, what, &file));
        SHOAL_CHECK(shoal_json_get_str(e, "sha256", 1, what, &sha));
        SHOAL_REQUIRE(plain_name(file), SHOAL_ERR_FORMAT,
                      "%s: shard file name \"%s\" must be a plain name inside the directory", what,
                      file);
        SHOAL_REQUIRE(is_hex64(sha), SHOAL_ERR_FORMAT, "%s: shard %s: bad sha256 \"%s\"", what,
                      file, sha);
        snprintf(s->file, sizeof s->file, "%s", file);
        memcpy(s->sha256, sha, 65);
        SHOAL_CHECK(u64_field(e, "documents", what, &s->documents));
        SHOAL_CHECK(u64_field(e, "tokens", what, &s->tokens));
        SHOAL_CHECK(u64_field(e, "bytes", what, &s->bytes));
        SHOAL_REQUIRE(s->tokens <= shoal_limit(SHOAL_LIMIT_SHARD_TOKENS) &&
                          s->documents <= s->tokens,
                      SHOAL_ERR_FORMAT, "%s: shard %s: impossible counts", what, file);
        docs += s->documents;
        toks += s->tokens;
        sp->n_shards++;
    }
    SHOAL_REQUIRE(docs == sp->documents && toks == sp->tokens && sp->trained_tokens <= sp->tokens,
                  SHOAL_ERR_FORMAT, "%s: splits.%s totals do not match its shards", what, name);
    return SHOAL_OK;
}

shoal_status shoal_dataset_load(const char *dir, shoal_dataset **out) {
    *out = NULL;
    char path[SHOAL_MAX_PATH];
    SHOAL_CHECK(shoal_path_join(path, sizeof path, dir, SHOAL_DATASET_MANIFEST));
    char *buf = NULL;
    size_t len = 0;
    SHOAL_CHECK(shoal_file_read(path, shoal_limit(SHOAL_LIMIT_JSON_FILE_BYTES), &buf, &len));
    shoal_status st = shoal_dataset_parse(buf, len, dir, path, out);
    free(buf);
    return st;
}

shoal_status shoal_dataset_parse(const char *buf, size_t len, const char *dir, const char *path,
                                 shoal_dataset **out) {
    *out = NULL;
    json_t *doc = NULL;
    SHOAL_CHECK(shoal_json_load_buf(buf, len, path, &doc));
    shoal_status st = SHOAL_OK;
    shoal_dataset *ds = calloc(1, sizeof *ds);
    SHOAL_REQUIRE_GOTO(ds, SHOAL_ERR_NOMEM, "%s: out of memory", path);
    SHOAL_REQUIRE_GOTO(strlen(dir) < sizeof ds->dir, SHOAL_ERR_LIMIT,
                       "%s: dataset directory path is too long", path);
    snprintf(ds->dir, sizeof ds->dir, "%s", dir);
    const char *format = NULL, *sha = NULL;
    int64_t version = 0, vocab = 0, eot = 0;
    SHOAL_CHECK_GOTO(shoal_json_get_str(doc, "format", 1, path, &format));
    SHOAL_REQUIRE_GOTO(strcmp(format, "shoal-token-shards") == 0, SHOAL_ERR_FORMAT,
                       "%s: format \"%s\" is not shoal-token-shards", path, format);
    SHOAL_CHECK_GOTO(shoal_json_get_int(doc, "version", 1, 1, 1, path, &version));
    const json_t *src = json_object_get(doc, "source"), *tok = json_object_get(doc, "tokenizer");
    SHOAL_CHECK_GOTO(shoal_json_get_str(src, "sha256", 1, path, &sha));
    SHOAL_REQUIRE_GOTO(is_hex64(sha), SHOAL_ERR_FORMAT, "%s: source.sha256 is malformed", path);
    memcpy(ds->source_sha256, sha, 65);
    SHOAL_CHECK_GOTO(u64_field(src, "examples", path, &ds->examples));
    SHOAL_CHECK_GOTO(shoal_json_get_int(tok, "vocab_size", 1, 1, SHOAL_MAX_VOCAB, path, &vocab));
    SHOAL_CHECK_GOTO(shoal_json_get_int(tok, "eot_id", 1, 0, vocab - 1, path, &eot));
    ds->vocab_size = (uint32_t)vocab;
    ds->eot_id = (int32_t)eot;
    const json_t *splits = json_object_get(doc, "splits");
    SHOAL_CHECK_GOTO(load_split(splits, "train", path, &ds->train));
    SHOAL_CHECK_GOTO(load_split(splits, "val", path, &ds->val));
    SHOAL_REQUIRE_GOTO(ds->train.documents + ds->val.documents == ds->examples, SHOAL_ERR_FORMAT,
                       "%s: split documents do not add up to source.examples", path);
    *out = ds;
    ds = NULL;
cleanup:
    shoal_dataset_free(ds);
    json_decref(doc);
    return st;
}

void shoal_dataset_free(shoal_dataset *ds) {
    if (!ds) return;
    free(ds->train.shards);
    free(ds->val.shards);
    free(ds);
}

const shoal_dataset_split *shoal_dataset_get_split(const shoal_dataset *ds, const char *name) {
    if (strcmp(name, "train") == 0) return &ds->train;
    if (strcmp(name, "val") == 0) return &ds->val;
    return NULL;
}

shoal_status shoal_dataset_verify(const shoal_dataset *ds) {
    const shoal_dataset_split *sp[2] = {&ds->train, &ds->val};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < sp[s]->n_shards; i++) {
            char path[SHOAL_MAX_PATH], hex[SHOAL_SHA256_HEX_LEN];
            SHOAL_CHECK(shoal_path_join(path, sizeof path, ds->dir, sp[s]->shards[i].file));
            SHOAL_CHECK(shoal_sha256_file(path, hex));
            SHOAL_REQUIRE(strcmp(hex, sp[s]->shards[i].sha256) == 0, SHOAL_ERR_FORMAT,
                          "%s: sha256 %s does not match the manifest's %s (the file changed "
                          "after preparation)",
                          path, hex, sp[s]->shards[i].sha256);
        }
    }
    return SHOAL_OK;
}
