/* tokenizer_impl.h: the shoal_tokenizer struct, shared by bpe_load.c (which builds it) and
 * bpe_encode.c (which reads it). Internal to worker/tokenizer.
 *
 * Tokens are byte strings (GPT-2's printable-character disguise undone at load), so encode
 * and decode never see the byte <-> unicode mapping. Two open-addressing hash tables:
 * bytes -> id, and (left id, right id) -> (rank, merged id) for the BPE merges. */
#ifndef SHOAL_WORKER_TOKENIZER_IMPL_H
#define SHOAL_WORKER_TOKENIZER_IMPL_H

#include <stdint.h>

#include "worker/tokenizer/tokenizer.h"

struct shoal_tokenizer {
    int n_vocab;
    uint8_t *blob;     /* every token's bytes, back to back */
    uint32_t *tok_off; /* (n_vocab+1): token id's bytes are blob[tok_off[id] .. tok_off[id+1]) */
    int32_t *vmap;     /* (vmap_mask+1): ids by hash of their bytes, -1 = empty */
    uint32_t vmap_mask;
    int32_t byte_id[256]; /* id of each single byte */
    int n_merges;
    uint64_t *mkey;  /* (mmask+1): left << 32 | right; UINT64_MAX = empty */
    uint32_t *mrank; /* rank (line order) of the merge */
    int32_t *mres;   /* id of the merged token */
    uint32_t mmask;
    int32_t eot;
    uint8_t *whole; /* (n_vocab): 1 when BPE of the token's own bytes gives exactly that token,
                       so a piece found in the vocabulary needs no merge loop */
};

/* Fill t->whole (bpe_encode.c); called once the merges are loaded. */
shoal_status shoal_tok_mark_whole(struct shoal_tokenizer *t);

static inline uint64_t shoal_tok_hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a, 64-bit */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static inline uint32_t shoal_tok_hash_pair(uint64_t key) {
    key *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(key >> 32);
}

/* Id of the token with these bytes, or -1. */
static inline int32_t shoal_tok_lookup(const struct shoal_tokenizer *t, const uint8_t *p,
                                       size_t n) {
    uint32_t h = (uint32_t)shoal_tok_hash_bytes(p, n) & t->vmap_mask;
    for (;;) {
        int32_t id = t->vmap[h];
        if (id < 0) return -1;
        uint32_t o = t->tok_off[id], e = t->tok_off[id + 1];
        if (e - o == n && (n == 0 || __builtin_memcmp(t->blob + o, p, n) == 0)) return id;
        h = (h + 1) & t->vmap_mask;
    }
}

/* Index of the merge slot for (a, b), or -1. */
static inline int64_t shoal_tok_merge_find(const struct shoal_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t h = shoal_tok_hash_pair(key) & t->mmask;
    for (;;) {
        uint64_t k = t->mkey[h];
        if (k == key) return h;
        if (k == UINT64_MAX) return -1;
        h = (h + 1) & t->mmask;
    }
}

#endif
