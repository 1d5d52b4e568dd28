/* loader.c: see loader.h. The epoch order is a permutation array of window ids (8 bytes per
 * window: 4M windows of T=256 cover 10^9 tokens in 32 MB), rebuilt at each epoch; a window id
 * maps to (shard, offset) by binary search over the shards' window counts. */
#define SHOAL_LOG_SUBSYS "loader"
#include "worker/train/loader.h"

#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/limits.h"
#include "worker/train/shard.h"

struct shoal_loader {
    shoal_loader_config cfg;
    int n_shards;
    shoal_shard **shards;
    uint64_t *first_window; /* n_shards+1 prefix sums of windows per shard */
    uint64_t n_windows, steps_per_epoch, global_batch;
    uint32_t vocab_size;
    uint64_t *perm; /* this epoch's order */
    uint64_t epoch, cursor;
    int32_t *row; /* T+1 tokens */
    uint8_t *row_mask;
};

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void build_perm(shoal_loader *l) {
    for (uint64_t i = 0; i < l->n_windows; i++)
        l->perm[i] = i;
    if (!l->cfg.shuffle) return;
    /* One generator per (seed, epoch): mixing both through splitmix64 gives unrelated
     * streams for neighbouring epochs and seeds. */
    uint64_t s = l->cfg.seed;
    uint64_t mixed = splitmix64(&s) ^ (l->epoch * 0xD1B54A32D192ED03ull);
    s = mixed;
    for (uint64_t i = l->n_windows; i > 1; i--) {
        uint64_t j = splitmix64(&s) % i; /* bias < i / 2^64: immaterial */
        uint64_t t = l->perm[i - 1];
        l->perm[i - 1] = l->perm[j];
        l->perm[j] = t;
    }
}

void shoal_loader_free(shoal_loader *l) {
    if (!l) return;
    for (int i = 0; i < l->n_shards; i++)
        shoal_shard_close(l->shards[i]);
    free(l->shards);
    free(l->first_window);
    free(l->perm);
    free(l->row);
    free(l->row_mask);
    free(l);
}

static shoal_status check_config(const shoal_loader_config *c) {
    SHOAL_REQUIRE(c->B >= 1 && c->T >= 1 && c->world >= 1 && c->rank >= 0 && c->rank < c->world,
                  SHOAL_ERR_INVALID_ARG, "loader: bad geometry B=%d T=%d rank=%d world=%d", c->B,
                  c->T, c->rank, c->world);
    SHOAL_REQUIRE((uint64_t)c->B * (uint64_t)c->T <= (1ull << 31) && c->world <= (1 << 20),
                  SHOAL_ERR_LIMIT, "loader: batch B=%d x T=%d is too large", c->B, c->T);
    return SHOAL_OK;
}

/* Takes ownership of shards (closed on error). */
static shoal_status finish_open(shoal_shard **shards, int n, const shoal_loader_config *cfg,
                                const char *what, shoal_loader **out) {
    shoal_status st = SHOAL_OK;
    shoal_loader *l = calloc(1, sizeof *l);
    if (!l) {
        for (int i = 0; i < n; i++)
            shoal_shard_close(shards[i]);
        free(shards);
        SHOAL_REQUIRE(0, SHOAL_ERR_NOMEM, "loader: out of memory");
    }
    l->cfg = *cfg;
    l->shards = shards;
    l->n_shards = n;
    l->first_window = calloc((size_t)n + 1, sizeof *l->first_window);
    SHOAL_REQUIRE_GOTO(l->first_window, SHOAL_ERR_NOMEM, "loader: out of memory");
    uint64_t T = (uint64_t)cfg->T;
    for (int i = 0; i < n; i++) {
        const shoal_shard_info *info = shoal_shard_get_info(shards[i]);
        SHOAL_REQUIRE_GOTO(i == 0 || info->vocab_size == l->vocab_size, SHOAL_ERR_FORMAT,
                           "%s: shard %d has vocab_size %u, shard 0 has %u", what, i,
                           info->vocab_size, l->vocab_size);
        l->vocab_size = info->vocab_size;
        uint64_t w = info->n_tokens > T ? (info->n_tokens - 1) / T : 0;
        l->first_window[i + 1] = l->first_window[i] + w;
    }
    l->n_windows = l->first_window[n];
    l->global_batch = (uint64_t)cfg->B * (uint64_t)cfg->world;
    l->steps_per_epoch = cfg->drop_last ? l->n_windows / l->global_batch
                                        : (l->n_windows + l->global_batch - 1) / l->global_batch;
    SHOAL_REQUIRE_GOTO(l->steps_per_epoch > 0, SHOAL_ERR_INVALID_ARG,
                       "%s: %llu windows of %d+1 tokens, fewer than one global batch of %llu "
                       "(B=%d x world=%d); use a smaller batch or sequence length, or more data",
                       what, (unsigned long long)l->n_windows, cfg->T,
                       (unsigned long long)l->global_batch, cfg->B, cfg->world);
    l->perm = malloc(l->n_windows * sizeof *l->perm);
    l->row = malloc((T + 1) * sizeof *l->row);
    l->row_mask = malloc(T + 1);
    SHOAL_REQUIRE_GOTO(l->perm && l->row && l->row_mask, SHOAL_ERR_NOMEM,
                       "loader: out of memory for %llu windows", (unsigned long long)l->n_windows);
    build_perm(l);
    *out = l;
    return SHOAL_OK;
cleanup:
    shoal_loader_free(l);
    return st;
}

shoal_status shoal_loader_open_files(const char *const *paths, int n_paths,
                                     const shoal_loader_config *cfg, shoal_loader **out) {
    *out = NULL;
    SHOAL_CHECK(check_config(cfg));
    SHOAL_REQUIRE(n_paths >= 1 && (uint64_t)n_paths <= shoal_limit(SHOAL_LIMIT_DATASET_SHARDS),
                  SHOAL_ERR_INVALID_ARG, "loader: %d shard files", n_paths);
    shoal_shard **shards = calloc((size_t)n_paths, sizeof *shards);
    SHOAL_REQUIRE(shards, SHOAL_ERR_NOMEM, "loader: out of memory");
    for (int i = 0; i < n_paths; i++) {
        shoal_status st = shoal_shard_open(paths[i], &shards[i]);
        if (st != SHOAL_OK) {
            for (int j = 0; j < i; j++)
                shoal_shard_close(shards[j]);
            free(shards);
            return st;
        }
    }
    return finish_open(shards, n_paths, cfg, paths[0], out);
}

shoal_status shoal_loader_open_split(const shoal_dataset *ds, const char *split,
                                     const shoal_loader_config *cfg, shoal_loader **out) {
    *out = NULL;
    SHOAL_CHECK(check_config(cfg));
    const shoal_dataset_split *sp = shoal_dataset_get_split(ds, split);
    SHOAL_REQUIRE(sp, SHOAL_ERR_INVALID_ARG, "loader: unknown split \"%s\"", split);
    SHOAL_REQUIRE(sp->n_shards > 0, SHOAL_ERR_INVALID_ARG,
                  "%s: the %s split is empty (prepare with a --val-fraction above 0 for a "
                  "validation split)",
                  ds->dir, split);
    shoal_shard **shards = calloc((size_t)sp->n_shards, sizeof *shards);
    SHOAL_REQUIRE(shards, SHOAL_ERR_NOMEM, "loader: out of memory");
    shoal_status st = SHOAL_OK;
    int opened = 0;
    for (int i = 0; i < sp->n_shards; i++) {
        char path[SHOAL_MAX_PATH];
        const shoal_dataset_shard *e = &sp->shards[i];
        SHOAL_CHECK_GOTO(shoal_path_join(path, sizeof path, ds->dir, e->file));
        SHOAL_CHECK_GOTO(shoal_shard_open(path, &shards[i]));
        opened++;
        const shoal_shard_info *info = shoal_shard_get_info(shards[i]);
        SHOAL_REQUIRE_GOTO(info->n_tokens == e->tokens && info->n_docs == e->documents &&
                               info->vocab_size == ds->vocab_size,
                           SHOAL_ERR_FORMAT,
                           "%s: header (%llu tokens, %llu documents, vocab %u) disagrees with "
                           "dataset.json (%llu, %llu, %u)",
                           path, (unsigned long long)info->n_tokens,
                           (unsigned long long)info->n_docs, info->vocab_size,
                           (unsigned long long)e->tokens, (unsigned long long)e->documents,
                           ds->vocab_size);
    }
    return finish_open(shards, sp->n_shards, cfg, ds->dir, out);
cleanup:
    for (int j = 0; j < opened; j++)
        shoal_shard_close(shards[j]);
    free(shards);
    return st;
}

static shoal_status read_window(shoal_loader *l, uint64_t w, int32_t *tokens, int32_t *targets,
                                uint8_t *mask) {
    int lo = 0, hi = l->n_shards - 1; /* last shard whose first_window <= w */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (l->first_window[mid] <= w)
            lo = mid;
        else
            hi = mid - 1;
    }
    /* empty shards share first_window with the next: skip to the one that holds w */
    while (l->first_window[lo + 1] <= w)
        lo++;
    uint64_t T = (uint64_t)l->cfg.T, start = (w - l->first_window[lo]) * T;
    SHOAL_CHECK(shoal_shard_read(l->shards[lo], start, T + 1, l->row, l->row_mask));
    memcpy(tokens, l->row, T * sizeof *tokens);
    memcpy(targets, l->row + 1, T * sizeof *targets);
    memcpy(mask, l->row_mask + 1, T);
    return SHOAL_OK;
}

shoal_status shoal_loader_next(shoal_loader *l, int32_t *tokens, int32_t *targets, uint8_t *mask) {
    if (l->cursor >= l->steps_per_epoch * l->global_batch) {
        l->epoch++;
        l->cursor = 0;
        build_perm(l);
    }
    size_t T = (size_t)l->cfg.T;
    for (int b = 0; b < l->cfg.B; b++) {
        uint64_t idx = l->cursor + (uint64_t)l->cfg.rank * (uint64_t)l->cfg.B + (uint64_t)b;
        int32_t *tk = tokens + (size_t)b * T, *tg = targets + (size_t)b * T;
        uint8_t *m = mask + (size_t)b * T;
        if (idx < l->n_windows) {
            SHOAL_CHECK(read_window(l, l->perm[idx], tk, tg, m));
        } else { /* padding of the last eval batch: valid ids, no loss */
            memset(tk, 0, T * sizeof *tk);
            memset(tg, 0, T * sizeof *tg);
            memset(m, 0, T);
        }
    }
    l->cursor += l->global_batch;
    return SHOAL_OK;
}

shoal_status shoal_loader_window(shoal_loader *l, uint64_t w, int32_t *tokens, int32_t *targets,
                                 uint8_t *mask) {
    SHOAL_REQUIRE(l && tokens && targets && mask, SHOAL_ERR_INVALID_ARG,
                  "shoal_loader_window: NULL argument");
    SHOAL_REQUIRE(w < l->n_windows, SHOAL_ERR_INVALID_ARG,
                  "loader: window %llu is out of range (%llu windows)", (unsigned long long)w,
                  (unsigned long long)l->n_windows);
    return read_window(l, w, tokens, targets, mask);
}

uint64_t shoal_loader_n_windows(const shoal_loader *l) {
    return l->n_windows;
}
uint64_t shoal_loader_steps_per_epoch(const shoal_loader *l) {
    return l->steps_per_epoch;
}
uint32_t shoal_loader_vocab_size(const shoal_loader *l) {
    return l->vocab_size;
}

void shoal_loader_get_state(const shoal_loader *l, shoal_loader_state *st) {
    st->seed = l->cfg.seed;
    st->epoch = l->epoch;
    st->cursor = l->cursor;
    st->n_windows = l->n_windows;
    st->T = (uint32_t)l->cfg.T;
}

shoal_status shoal_loader_set_state(shoal_loader *l, const shoal_loader_state *st) {
    SHOAL_REQUIRE(st->T == (uint32_t)l->cfg.T, SHOAL_ERR_INVALID_ARG,
                  "loader state is for sequence length %u, this run uses %d", st->T, l->cfg.T);
    SHOAL_REQUIRE(st->n_windows == l->n_windows, SHOAL_ERR_INVALID_ARG,
                  "loader state is for %llu windows, this dataset has %llu (different data?)",
                  (unsigned long long)st->n_windows, (unsigned long long)l->n_windows);
    SHOAL_REQUIRE(st->cursor % l->global_batch == 0 &&
                      st->cursor <= l->steps_per_epoch * l->global_batch,
                  SHOAL_ERR_INVALID_ARG,
                  "loader state cursor %llu does not fit the global batch %llu (B x world "
                  "must match the saved run)",
                  (unsigned long long)st->cursor, (unsigned long long)l->global_batch);
    if (st->seed != l->cfg.seed)
        SHOAL_LOG_INFO("resuming with the saved data seed %llu (not %llu)",
                       (unsigned long long)st->seed, (unsigned long long)l->cfg.seed);
    l->cfg.seed = st->seed;
    l->epoch = st->epoch;
    l->cursor = st->cursor;
    build_perm(l);
    return SHOAL_OK;
}

shoal_status shoal_loader_rewind(shoal_loader *l, uint64_t epoch) {
    l->epoch = epoch;
    l->cursor = 0;
    build_perm(l);
    return SHOAL_OK;
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Layout: "SLDR", u32 version 1, u32 T, u32 reserved 0, u64 seed, epoch, cursor, n_windows;
 * little-endian. */
void shoal_loader_state_encode(const shoal_loader_state *st,
                               uint8_t out[SHOAL_LOADER_STATE_BYTES]) {
    memset(out, 0, SHOAL_LOADER_STATE_BYTES);
    memcpy(out, "SLDR", 4);
    put32(out + 4, 1);
    put32(out + 8, st->T);
    put64(out + 16, st->seed);
    put64(out + 24, st->epoch);
    put64(out + 32, st->cursor);
    put64(out + 40, st->n_windows);
}

shoal_status shoal_loader_state_decode(const uint8_t *in, size_t len, shoal_loader_state *st) {
    SHOAL_REQUIRE(in && len == SHOAL_LOADER_STATE_BYTES && memcmp(in, "SLDR", 4) == 0,
                  SHOAL_ERR_FORMAT, "loader state: not a shoal loader state (%zu bytes)", len);
    SHOAL_REQUIRE(get32(in + 4) == 1 && get32(in + 12) == 0, SHOAL_ERR_FORMAT,
                  "loader state: unsupported version or reserved bits set");
    uint32_t T = get32(in + 8);
    SHOAL_REQUIRE(T >= 1 && T <= (1u << 31), SHOAL_ERR_FORMAT, "loader state: T=%u", T);
    st->T = T;
    st->seed = get64(in + 16);
    st->epoch = get64(in + 24);
    st->cursor = get64(in + 32);
    st->n_windows = get64(in + 40);
    return SHOAL_OK;
}
