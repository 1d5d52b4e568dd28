/* loader.h: batches of (tokens, targets, mask) from token shards, for training and eval.
 *
 * The token stream of each shard is cut into windows of T+1 tokens at stride T (windows
 * never cross a shard; a shard yields floor((n_tokens-1)/T) windows). Row r of a batch is one
 * window: tokens = w[0..T), targets = w[1..T+1), mask = the shard mask of the targets (1 =
 * this position's loss counts; prompt tokens are 0). Each epoch visits every window once, in
 * an order that is a seeded permutation (shuffle=1; Fisher-Yates over splitmix64 seeded with
 * seed and epoch) or file order (shuffle=0).
 *
 * Data parallel: one step consumes a global batch of G = B*world consecutive windows of the
 * epoch order; rank r takes rows [r*B, (r+1)*B) of it. So ranks see disjoint windows, and
 * world=2 at B sees exactly the windows world=1 sees at 2B, step by step (the order does not
 * depend on world). drop_last=1 (training) skips the incomplete final global batch of an
 * epoch; drop_last=0 (evaluation) pads it with rows whose mask is all 0, so a masked mean
 * loss is unaffected and every window is seen once.
 *
 * Position: (seed, epoch, cursor = windows consumed this epoch) plus n_windows and T as a
 * check, serialised into SHOAL_LOADER_STATE_BYTES bytes for checkpoints. Restoring it makes
 * the loader produce exactly the batches the saved one would have produced next, also with a
 * different world size as long as B*world is the same.
 * Not thread-safe: one owner. Tested by tests/train/test_loader.c.
 */
#ifndef SHOAL_TRAIN_LOADER_H
#define SHOAL_TRAIN_LOADER_H

#include <stdint.h>

#include "common/status.h"
#include "worker/train/dataset.h"

typedef struct {
    int B, T;        /* rows per rank per step, tokens per row */
    int rank, world; /* 0 <= rank < world */
    uint64_t seed;
    int shuffle;   /* 1: permute windows each epoch; 0: file order */
    int drop_last; /* 1: full global batches only; 0: pad the last with mask-0 rows */
} shoal_loader_config;

typedef struct {
    uint64_t seed, epoch, cursor, n_windows;
    uint32_t T;
} shoal_loader_state;

#define SHOAL_LOADER_STATE_BYTES 48

typedef struct shoal_loader shoal_loader;

/* Open a split ("train"/"val") of a loaded dataset: every shard is mapped, validated and
 * checked against its manifest entry. INVALID_ARG when the split has less than one global
 * batch of windows (the message says how many there are). */
shoal_status shoal_loader_open_split(const shoal_dataset *ds, const char *split,
                                     const shoal_loader_config *cfg, shoal_loader **out);
/* Open shard files directly (tests, tools). */
shoal_status shoal_loader_open_files(const char *const *paths, int n_paths,
                                     const shoal_loader_config *cfg, shoal_loader **out);
void shoal_loader_free(shoal_loader *l);

/* Fill the next batch of this rank: tokens and targets (B*T int32, row-major) and mask
 * (B*T bytes). Advances to the next epoch (reshuffled) after its last step. */
shoal_status shoal_loader_next(shoal_loader *l, int32_t *tokens, int32_t *targets, uint8_t *mask);

/* Window w (file order, < n_windows) into tokens, targets and mask (T each), without moving
 * the position: random access for samplers that do not follow the epoch order (DP-SGD's
 * Poisson batches, worker/train/dpsgd.h). INVALID_ARG when w is out of range. */
shoal_status shoal_loader_window(shoal_loader *l, uint64_t w, int32_t *tokens, int32_t *targets,
                                 uint8_t *mask);

uint64_t shoal_loader_n_windows(const shoal_loader *l);
uint64_t shoal_loader_steps_per_epoch(const shoal_loader *l);
uint32_t shoal_loader_vocab_size(const shoal_loader *l);

void shoal_loader_get_state(const shoal_loader *l, shoal_loader_state *st);
/* INVALID_ARG when the state does not fit this loader (other T, other data, a cursor that
 * is not a multiple of B*world). Adopts the state's seed. */
shoal_status shoal_loader_set_state(shoal_loader *l, const shoal_loader_state *st);
/* Back to the start of epoch `epoch` (evaluation passes use this). */
shoal_status shoal_loader_rewind(shoal_loader *l, uint64_t epoch);

void shoal_loader_state_encode(const shoal_loader_state *st, uint8_t out[SHOAL_LOADER_STATE_BYTES]);
/* FORMAT when the bytes are not a loader state of this version. */
shoal_status shoal_loader_state_decode(const uint8_t *in, size_t len, shoal_loader_state *st);

#endif
