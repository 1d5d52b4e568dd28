/* prepare.h: JSONL dataset -> token shards + dataset.json (what `shoal data prepare` runs).
 *
 * Every example (worker/train/jsonl.h) becomes one document: for {"text"} its tokens, all
 * trained on; for {"prompt","completion"} the prompt's tokens (mask 0) then the
 * completion's (mask 1); then the end-of-text token (mask 1, so the model learns to stop).
 * The prompt and completion are encoded separately, as the tokenizer sees them at inference.
 *
 * Validation split: exactly k = round(val_fraction * n) examples (at least 1 and at most
 * n-1 when val_fraction > 0 and n >= 2) go to "val", chosen by selection sampling (Knuth's
 * Algorithm S) from a generator seeded by `seed`: the same file and seed always give the same
 * split, in file order, independent of the tokenizer. A first pass counts the lines.
 *
 * Output, in out_dir: train-NNNNN.bin and val-NNNNN.bin (worker/train/shard.h; a new shard
 * starts past shard_tokens), and dataset.json:
 *   {"format": "shoal-token-shards", "version": 1,
 *    "source": {"file", "sha256", "bytes", "examples"},
 *    "tokenizer": {"vocab_size", "eot_id"}, "val_fraction", "seed",
 *    "splits": {"train"|"val": {"documents", "tokens", "trained_tokens",
 *               "shards": [{"file", "documents", "tokens", "bytes", "sha256"}]}}}
 * Nothing half-written: everything goes to "<out_dir>.tmp.<pid>" first, which is renamed to
 * out_dir only when complete (and removed on any error). out_dir must not exist.
 * Tested by tests/train/test_prepare.c (with a byte-level test encoder) and, through the real
 * GPT-2 tokenizer, by tests/train/test_data_cli.sh.
 */
#ifndef SHOAL_TRAIN_PREPARE_H
#define SHOAL_TRAIN_PREPARE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* Text -> ids. The product passes the GPT-2 tokenizer (worker/tokenizer); any encoder whose
 * ids lie in [0, vocab_size) works. encode returns a malloc'd array the caller free()s. */
typedef struct {
    void *ctx;
    uint32_t vocab_size;
    int32_t eot_id;
    shoal_status (*encode)(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n_ids);
} shoal_text_encoder;

typedef struct {
    const char *input_path;
    const char *out_dir;
    double val_fraction; /* [0, 0.5] */
    uint64_t seed;
    uint64_t shard_tokens; /* tokens per shard before a new one starts; 0: 2^26; never
                            * above SHOAL_LIMIT_SHARD_TOKENS */
} shoal_prepare_config;

typedef struct {
    uint64_t examples;
    uint64_t docs[2]; /* [0] train, [1] val */
    uint64_t tokens[2];
    uint64_t trained_tokens[2]; /* mask 1 */
    int shards[2];
    char sha256[65]; /* of the input file */
} shoal_prepare_result;

/* Runs the whole preparation (blocking). On error the message names the file and line, and
 * out_dir is left absent. result may be NULL. */
shoal_status shoal_data_prepare(const shoal_prepare_config *cfg, const shoal_text_encoder *enc,
                                shoal_prepare_result *result);

#endif
