/* bpe_encode.c: encode (pre-tokenise, then BPE each piece) and decode.
 *
 * The merge loop is the usual priority-queue form of GPT-2's bpe(): symbols in a linked list,
 * a min-heap of (rank, position) for adjacent pairs that have a merge, popping the lowest
 * rank, leftmost first, and skipping entries made stale by earlier merges. encoder.py merges
 * every occurrence of the best bigram, left to right, before it looks at the pairs those
 * merges created; to match it exactly even for merge lists whose ranks are out of training
 * order, the new pairs of a merge are pushed only once every entry of the current rank has
 * been popped. O(n log n) per piece instead of O(n^2): a hostile megabyte-long "word" costs
 * milliseconds.
 * Two shortcuts skip the merge loop. At load, every token whose own bytes BPE to exactly that
 * token is marked "whole"; a piece found in the vocabulary with that mark is its own id (most
 * English words with their leading space). Otherwise a per-call cache (piece bytes -> where
 * its ids were first written) serves repeated pieces; keeping it per call keeps encode free
 * of locks and the tokenizer immutable.
 * Tested by tests/tokenizer/test_tokenizer_ref.c (reference ids), test_tokenizer_load.c, the
 * fuzz target (round trip on arbitrary bytes) and bench/tokenizer.
 */
#define SHOAL_LOG_SUBSYS "tokenizer"
#include <stdlib.h>
#include <string.h>

#include "worker/tokenizer/pretokenize.h"
#include "worker/tokenizer/tokenizer_impl.h"

/* Pieces longer than this are not cached: long pieces rarely repeat. */
#define CACHE_MAX_PIECE 64
/* The cache stops growing at this many slots (16 MB of slots). */
#define CACHE_MAX_SLOTS (1u << 20)

typedef struct {
    uint64_t hash;
    size_t text_off; /* where the piece's bytes are in the input */
    size_t ids_off;  /* where its ids were written in the output */
    uint32_t len;    /* piece bytes; 0 = empty slot */
    uint32_t n_ids;
} cache_slot;

typedef struct {
    /* BPE of one piece; capacity cap symbols */
    int32_t *sym, *prv, *nxt;
    uint64_t *heap; /* capacity 3*cap */
    size_t cap, heap_n;
    int32_t *pend; /* capacity 2*cap: symbols whose pairs wait for the current rank to end */
    size_t n_pend;
    /* output */
    int32_t *ids;
    size_t n_ids, ids_cap;
    /* word cache */
    cache_slot *cache;
    size_t cmask, cused;
} scratch;

static void scratch_free(scratch *s) {
    free(s->sym);
    free(s->prv);
    free(s->nxt);
    free(s->heap);
    free(s->pend);
    free(s->ids);
    free(s->cache);
}

static shoal_status reserve_ids(scratch *s, size_t more) {
    if (s->n_ids + more <= s->ids_cap) return SHOAL_OK;
    size_t cap = s->ids_cap ? s->ids_cap : 64;
    while (cap < s->n_ids + more)
        cap *= 2;
    SHOAL_REQUIRE(cap <= SIZE_MAX / sizeof(int32_t), SHOAL_ERR_NOMEM, "encode: too many ids");
    int32_t *p = realloc(s->ids, cap * sizeof *p);
    SHOAL_REQUIRE(p, SHOAL_ERR_NOMEM, "encode: out of memory for %zu ids", cap);
    s->ids = p;
    s->ids_cap = cap;
    return SHOAL_OK;
}

static shoal_status reserve_syms(scratch *s, size_t n) {
    if (n <= s->cap) return SHOAL_OK;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n)
        cap *= 2;
    SHOAL_REQUIRE(cap <= SIZE_MAX / (3 * sizeof(uint64_t)), SHOAL_ERR_NOMEM,
                  "encode: piece too long");
    free(s->sym);
    free(s->prv);
    free(s->nxt);
    free(s->heap);
    free(s->pend);
    s->pend = malloc(2 * cap * sizeof *s->pend);
    s->sym = malloc(cap * sizeof *s->sym);
    s->prv = malloc(cap * sizeof *s->prv);
    s->nxt = malloc(cap * sizeof *s->nxt);
    s->heap = malloc(3 * cap * sizeof *s->heap);
    s->cap = (s->sym && s->prv && s->nxt && s->heap && s->pend) ? cap : 0;
    SHOAL_REQUIRE(s->cap, SHOAL_ERR_NOMEM, "encode: out of memory for a %zu-byte piece", n);
    return SHOAL_OK;
}

static inline void heap_push(scratch *s, uint64_t v) {
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (s->heap[p] <= v) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = v;
}

static inline uint64_t heap_pop(scratch *s) {
    uint64_t top = s->heap[0], v = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && s->heap[c + 1] < s->heap[c]) c++;
        if (v <= s->heap[c]) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = v;
    return top;
}

/* Push the pair that starts at symbol k, if it has a merge. Keys sort by rank, then position. */
static inline void push_pair(const shoal_tokenizer *t, scratch *s, int32_t k) {
    int32_t j = s->nxt[k];
    if (j < 0) return;
    int64_t slot = shoal_tok_merge_find(t, s->sym[k], s->sym[j]);
    if (slot >= 0) heap_push(s, ((uint64_t)t->mrank[slot] << 32) | (uint32_t)k);
}

/* BPE of piece w[0..n) (n >= 1, n < 2^31); appends its ids to s->ids. */
static shoal_status bpe_piece(const shoal_tokenizer *t, scratch *s, const uint8_t *w, size_t n) {
    if (n == 1) {
        SHOAL_CHECK(reserve_ids(s, 1));
        s->ids[s->n_ids++] = t->byte_id[w[0]];
        return SHOAL_OK;
    }
    SHOAL_CHECK(reserve_syms(s, n));
    for (size_t k = 0; k < n; k++) {
        s->sym[k] = t->byte_id[w[k]];
        s->prv[k] = (int32_t)k - 1;
        s->nxt[k] = k + 1 < n ? (int32_t)k + 1 : -1;
    }
    s->heap_n = 0;
    s->n_pend = 0;
    for (size_t k = 0; k + 1 < n; k++)
        push_pair(t, s, (int32_t)k);
    while (s->heap_n) {
        uint64_t top = heap_pop(s);
        int32_t k = (int32_t)(uint32_t)top, j = s->nxt[k];
        if (s->sym[k] >= 0 && j >= 0) {
            int64_t slot = shoal_tok_merge_find(t, s->sym[k], s->sym[j]);
            if (slot >= 0 && t->mrank[slot] == (uint32_t)(top >> 32)) { /* else stale */
                s->sym[k] = t->mres[slot];
                s->sym[j] = -1;
                s->nxt[k] = s->nxt[j];
                if (s->nxt[j] >= 0) s->prv[s->nxt[j]] = k;
                if (s->prv[k] >= 0) s->pend[s->n_pend++] = s->prv[k];
                s->pend[s->n_pend++] = k;
            }
        }
        /* The rank is done: now the pairs its merges created may compete. */
        if (s->n_pend && (!s->heap_n || (s->heap[0] >> 32) != (top >> 32))) {
            for (size_t p = 0; p < s->n_pend; p++)
                if (s->sym[s->pend[p]] >= 0) push_pair(t, s, s->pend[p]);
            s->n_pend = 0;
        }
    }
    size_t m = 0;
    for (int32_t k = 0; k >= 0; k = s->nxt[k])
        m++;
    SHOAL_CHECK(reserve_ids(s, m));
    for (int32_t k = 0; k >= 0; k = s->nxt[k])
        s->ids[s->n_ids++] = s->sym[k];
    return SHOAL_OK;
}

/* Cache lookup: slot index for this piece (a hit when its len != 0). */
static size_t cache_find(const scratch *s, const uint8_t *text, size_t off, size_t n, uint64_t h) {
    size_t i = (size_t)h & s->cmask;
    for (;;) {
        const cache_slot *c = &s->cache[i];
        if (c->len == 0) return i;
        if (c->hash == h && c->len == n && memcmp(text + c->text_off, text + off, n) == 0) return i;
        i = (i + 1) & s->cmask;
    }
}

static void cache_grow(scratch *s, const uint8_t *text) {
    size_t cap = (s->cmask + 1) * 2;
    if (cap > CACHE_MAX_SLOTS) return;
    cache_slot *nc = calloc(cap, sizeof *nc);
    if (!nc) return; /* the cache is an optimisation: stay at the current size */
    cache_slot *old = s->cache;
    size_t old_cap = s->cmask + 1;
    s->cache = nc;
    s->cmask = cap - 1;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].len) continue;
        size_t j = cache_find(s, text, old[i].text_off, old[i].len, old[i].hash);
        s->cache[j] = old[i];
    }
    free(old);
}

shoal_status shoal_tokenizer_encode(const shoal_tokenizer *t, const char *text, size_t len,
                                    int32_t **ids, size_t *n_ids) {
    SHOAL_REQUIRE(t && ids && n_ids && (text || len == 0), SHOAL_ERR_INVALID_ARG,
                  "encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    SHOAL_REQUIRE(len < ((size_t)1 << 31) * 2 - 1, SHOAL_ERR_LIMIT,
                  "encode: %zu bytes in one call; split texts over 4 GiB", len);
    shoal_status st = SHOAL_OK;
    scratch s = {0};
    const uint8_t *u = (const uint8_t *)text;
    SHOAL_CHECK_GOTO(reserve_ids(&s, len / 4 + 16));
    /* Start small (short prompts are the common call) and grow at half load. */
    s.cmask = 63;
    while (s.cmask < 4095 && (s.cmask + 1) * 8 < len)
        s.cmask = s.cmask * 2 + 1;
    s.cache = calloc(s.cmask + 1, sizeof *s.cache);
    SHOAL_REQUIRE_GOTO(s.cache, SHOAL_ERR_NOMEM, "encode: out of memory");
    size_t pos = 0;
    while (pos < len) {
        size_t end = shoal_pretok_next(u, len, pos), n = end - pos;
        if (n > CACHE_MAX_PIECE) {
            SHOAL_REQUIRE_GOTO(n < ((size_t)1 << 31), SHOAL_ERR_LIMIT,
                               "encode: a %zu-byte piece without breaks is over 2 GiB", n);
            SHOAL_CHECK_GOTO(bpe_piece(t, &s, u + pos, n));
            pos = end;
            continue;
        }
        int32_t id = shoal_tok_lookup(t, u + pos, n);
        if (id >= 0 && t->whole[id]) {
            SHOAL_CHECK_GOTO(reserve_ids(&s, 1));
            s.ids[s.n_ids++] = id;
            pos = end;
            continue;
        }
        uint64_t h = shoal_tok_hash_bytes(u + pos, n);
        size_t ci = cache_find(&s, u, pos, n, h);
        cache_slot *c = &s.cache[ci];
        if (c->len) {
            SHOAL_CHECK_GOTO(reserve_ids(&s, c->n_ids));
            memcpy(s.ids + s.n_ids, s.ids + c->ids_off, c->n_ids * sizeof *s.ids);
            s.n_ids += c->n_ids;
        } else {
            size_t first = s.n_ids;
            SHOAL_CHECK_GOTO(bpe_piece(t, &s, u + pos, n));
            *c = (cache_slot){h, pos, first, (uint32_t)n, (uint32_t)(s.n_ids - first)};
            if (++s.cused * 2 > s.cmask + 1) cache_grow(&s, u);
        }
        pos = end;
    }
    *ids = s.ids;
    *n_ids = s.n_ids;
    s.ids = NULL;
cleanup:
    scratch_free(&s);
    return st;
}

shoal_status shoal_tok_mark_whole(shoal_tokenizer *t) {
    shoal_status st = SHOAL_OK;
    scratch s = {0};
    t->whole = calloc((size_t)t->n_vocab, 1);
    SHOAL_REQUIRE(t->whole, SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    for (int id = 0; id < t->n_vocab; id++) {
        const uint8_t *p = t->blob + t->tok_off[id];
        size_t n = t->tok_off[id + 1] - t->tok_off[id];
        if (n == 0) continue;
        s.n_ids = 0;
        SHOAL_CHECK_GOTO(bpe_piece(t, &s, p, n));
        t->whole[id] = s.n_ids == 1 && s.ids[0] == id;
    }
cleanup:
    scratch_free(&s);
    return st;
}

shoal_status shoal_tokenizer_decode(const shoal_tokenizer *t, const int32_t *ids, size_t n,
                                    char **text, size_t *len) {
    SHOAL_REQUIRE(t && text && len && (ids || n == 0), SHOAL_ERR_INVALID_ARG,
                  "decode: NULL argument");
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        SHOAL_REQUIRE(ids[i] >= 0 && ids[i] < t->n_vocab, SHOAL_ERR_INVALID_ARG,
                      "decode: id %lld at position %zu is outside the vocabulary [0, %d)",
                      (long long)ids[i], i, t->n_vocab);
        total += t->tok_off[ids[i] + 1] - t->tok_off[ids[i]];
    }
    char *out = malloc(total + 1);
    SHOAL_REQUIRE(out, SHOAL_ERR_NOMEM, "decode: out of memory for %zu bytes", total);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t o = t->tok_off[ids[i]], e = t->tok_off[ids[i] + 1];
        memcpy(out + k, t->blob + o, e - o);
        k += e - o;
    }
    out[k] = '\0';
    *text = out;
    *len = k;
    return SHOAL_OK;
}
