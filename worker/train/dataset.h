/* dataset.h: reading a prepared dataset directory (dataset.json + token shards).
 *
 * The manifest is outside input like any file: it is validated field by field (format and
 * version, counts in range, at most SHOAL_LIMIT_DATASET_SHARDS shards per split, shard file
 * names plain — no '/', no leading '.', so a manifest cannot point outside its directory —
 * sha256 strings of 64 hex digits, split totals equal to the sum over their shards). Opening a
 * split's shards (worker/train/loader.h) then checks each shard's header against its manifest
 * entry; shoal_dataset_verify() additionally re-hashes every shard file.
 * Tested by tests/train/test_prepare.c; fuzzed by tests/fuzz/fuzz_dataset.c.
 */
#ifndef SHOAL_TRAIN_DATASET_H
#define SHOAL_TRAIN_DATASET_H

#include <stdint.h>

#include "common/sha256.h"
#include "common/status.h"

#define SHOAL_DATASET_MANIFEST "dataset.json"
#define SHOAL_DATASET_MAX_NAME 128

typedef struct {
    char file[SHOAL_DATASET_MAX_NAME]; /* relative to the dataset directory */
    uint64_t documents, tokens, bytes;
    char sha256[SHOAL_SHA256_HEX_LEN];
} shoal_dataset_shard;

typedef struct {
    uint64_t documents, tokens, trained_tokens;
    int n_shards;
    shoal_dataset_shard *shards;
} shoal_dataset_split;

typedef struct {
    char dir[1024];
    uint32_t vocab_size;
    int32_t eot_id;
    uint64_t examples;
    char source_sha256[SHOAL_SHA256_HEX_LEN];
    shoal_dataset_split train, val;
} shoal_dataset;

/* Read and validate dir/dataset.json. *out is NULL on error (FORMAT, LIMIT, NOT_FOUND). */
shoal_status shoal_dataset_load(const char *dir, shoal_dataset **out);
/* The same from a manifest already in memory (fuzz target, tests); dir is where its shards
 * live, path names the manifest in messages. */
shoal_status shoal_dataset_parse(const char *buf, size_t len, const char *dir, const char *path,
                                 shoal_dataset **out);
void shoal_dataset_free(shoal_dataset *ds);
/* "train" or "val"; NULL for another name. */
const shoal_dataset_split *shoal_dataset_get_split(const shoal_dataset *ds, const char *name);
/* Re-hash every shard of both splits and compare with the manifest (FORMAT on mismatch). */
shoal_status shoal_dataset_verify(const shoal_dataset *ds);

#endif
