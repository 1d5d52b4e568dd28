/* bpe_load.c: building a shoal_tokenizer from GPT-2 / Hugging Face files, and carrying those
 * files into a model directory.
 *
 * Three layouts, one builder: a vocabulary (token string -> id; strings in GPT-2's byte ->
 * printable-character disguise) and an ordered merge list. Everything read is checked before
 * use, each failure logged with the file, the line or token, and the problem: ids must be
 * dense, distinct and under the vocabulary limit; every token must decode to bytes; all 256
 * single bytes must be tokens (else it is not a byte-level vocabulary); each merge must name
 * two known tokens whose concatenation is a token. Sizes are bounded by common/limits.h
 * before anything is allocated from them.
 * Tested by tests/tokenizer/test_tokenizer_load.c (three layouts agree, malformed files) and
 * tests/fuzz/fuzz_tokenizer.c.
 */
#define SHOAL_LOG_SUBSYS "tokenizer"
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/json.h"
#include "common/limits.h"
#include "worker/tokenizer/pretokenize.h"
#include "worker/tokenizer/tokenizer_impl.h"

/* ---- GPT-2's bytes_to_unicode(), inverted: code point -> byte, -1 if not a byte char ---- */

#define BYTE_CP_MAX 324 /* 256 + the 68 bytes that are not printable as themselves */

static void byte_decoder(int16_t dec[BYTE_CP_MAX]) {
    for (int i = 0; i < BYTE_CP_MAX; i++)
        dec[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        dec[printable ? b : 256 + n++] = (int16_t)b;
    }
}

/* Undo the byte disguise of a token string; out has room for slen bytes (never more). */
static shoal_status token_bytes(const int16_t dec[BYTE_CP_MAX], const char *s, size_t slen,
                                uint8_t *out, size_t *n, const char *what) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, k = 0;
    while (i < slen) {
        uint32_t cp;
        shoal_uclass cls;
        int m = shoal_utf8_char(p + i, slen - i, &cp, &cls);
        SHOAL_REQUIRE(cp < BYTE_CP_MAX && dec[cp] >= 0, SHOAL_ERR_FORMAT,
                      "%s: token \"%.*s\" has character U+%04X, which is not one of GPT-2's 256 "
                      "byte characters (not a byte-level BPE vocabulary)",
                      what, (int)(slen > 64 ? 64 : slen), s, cp == 0xFFFFFFFFu ? 0xFFFD : cp);
        out[k++] = (uint8_t)dec[cp];
        i += (size_t)m;
    }
    *n = k;
    return SHOAL_OK;
}

/* ---- builder: entries collected in file order, then laid out by id ---- */

typedef struct {
    int64_t id;
    size_t off, len; /* into builder blob */
    int added;       /* from tokenizer.json added_tokens: literal text, may repeat a vocab id */
} entry;

typedef struct {
    int16_t dec[BYTE_CP_MAX];
    entry *e;
    size_t n, cap;
    uint8_t *blob;
    size_t blob_len, blob_cap;
} builder;

static void builder_free(builder *b) {
    free(b->e);
    free(b->blob);
}

static shoal_status builder_add(builder *b, int64_t id, const char *s, size_t slen, int added,
                                const char *what) {
    uint64_t vmax = shoal_limit(SHOAL_LIMIT_TOKENIZER_VOCAB);
    SHOAL_REQUIRE(id >= 0 && (uint64_t)id < vmax, id < 0 ? SHOAL_ERR_FORMAT : SHOAL_ERR_LIMIT,
                  "%s: token \"%.*s\" has id %lld, outside [0, %llu) (limit tokenizer_vocab)", what,
                  (int)(slen > 64 ? 64 : slen), s, (long long)id, (unsigned long long)vmax);
    SHOAL_REQUIRE(b->n < vmax, SHOAL_ERR_LIMIT, "%s: more than %llu tokens (limit tokenizer_vocab)",
                  what, (unsigned long long)vmax);
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        entry *e = realloc(b->e, cap * sizeof *e);
        SHOAL_REQUIRE(e, SHOAL_ERR_NOMEM, "%s: out of memory for %zu tokens", what, cap);
        b->e = e;
        b->cap = cap;
    }
    if (b->blob_len + slen + 1 > b->blob_cap) {
        size_t cap = b->blob_cap ? b->blob_cap : 4096;
        while (cap < b->blob_len + slen + 1)
            cap *= 2;
        uint8_t *nb = realloc(b->blob, cap);
        SHOAL_REQUIRE(nb, SHOAL_ERR_NOMEM, "%s: out of memory for token bytes", what);
        b->blob = nb;
        b->blob_cap = cap;
    }
    size_t n = 0;
    if (added) {
        memcpy(b->blob + b->blob_len, s, slen);
        n = slen;
    } else {
        SHOAL_CHECK(token_bytes(b->dec, s, slen, b->blob + b->blob_len, &n, what));
    }
    b->e[b->n++] = (entry){id, b->blob_len, n, added};
    b->blob_len += n;
    return SHOAL_OK;
}

static uint32_t pow2_at_least(uint64_t n) {
    uint32_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

/* Lay the entries out by id (dense, distinct) and build the bytes -> id map. */
static shoal_status builder_finish(builder *b, shoal_tokenizer *t, const char *what) {
    shoal_status st = SHOAL_OK;
    int64_t max_id = -1;
    for (size_t i = 0; i < b->n; i++)
        if (b->e[i].id > max_id) max_id = b->e[i].id;
    SHOAL_REQUIRE(max_id >= 0, SHOAL_ERR_FORMAT, "%s: the vocabulary is empty", what);
    size_t nv = (size_t)max_id + 1;
    size_t *slot = malloc(nv * sizeof *slot); /* entry index of each id, SIZE_MAX = none */
    SHOAL_REQUIRE(slot, SHOAL_ERR_NOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < nv; i++)
        slot[i] = SIZE_MAX;
    for (size_t i = 0; i < b->n; i++) {
        const entry *e = &b->e[i];
        size_t prev = slot[e->id];
        if (prev == SIZE_MAX) {
            slot[e->id] = i;
            continue;
        }
        const entry *p = &b->e[prev];
        int same = p->len == e->len && memcmp(b->blob + p->off, b->blob + e->off, e->len) == 0;
        /* tokenizer.json lists special tokens both in model.vocab and in added_tokens. */
        SHOAL_REQUIRE_GOTO(same && (e->added || p->added), SHOAL_ERR_FORMAT,
                           "%s: id %lld is used by two different tokens", what, (long long)e->id);
    }
    for (size_t i = 0; i < nv; i++)
        SHOAL_REQUIRE_GOTO(slot[i] != SIZE_MAX, SHOAL_ERR_FORMAT,
                           "%s: no token has id %zu, but ids go up to %lld (ids must be dense)",
                           what, i, (long long)max_id);

    t->n_vocab = (int)nv;
    t->tok_off = malloc((nv + 1) * sizeof *t->tok_off);
    t->blob = malloc(b->blob_len + 1);
    t->vmap_mask = pow2_at_least(2 * (uint64_t)nv) - 1;
    t->vmap = malloc(((size_t)t->vmap_mask + 1) * sizeof *t->vmap);
    SHOAL_REQUIRE_GOTO(t->tok_off && t->blob && t->vmap, SHOAL_ERR_NOMEM,
                       "%s: out of memory for %zu tokens", what, nv);
    SHOAL_REQUIRE_GOTO(b->blob_len < UINT32_MAX, SHOAL_ERR_LIMIT,
                       "%s: %zu bytes of tokens is too many", what, b->blob_len);
    size_t off = 0;
    for (size_t i = 0; i < nv; i++) {
        const entry *e = &b->e[slot[i]];
        t->tok_off[i] = (uint32_t)off;
        if (e->len) memcpy(t->blob + off, b->blob + e->off, e->len);
        off += e->len;
    }
    t->tok_off[nv] = (uint32_t)off;
    memset(t->vmap, 0xff, ((size_t)t->vmap_mask + 1) * sizeof *t->vmap);
    for (size_t i = 0; i < nv; i++) {
        const uint8_t *p = t->blob + t->tok_off[i];
        size_t n = t->tok_off[i + 1] - t->tok_off[i];
        /* Two ids with the same bytes can only come from added_tokens; the first id wins
         * for encoding, both decode. */
        if (shoal_tok_lookup(t, p, n) >= 0) continue;
        uint32_t h = (uint32_t)shoal_tok_hash_bytes(p, n) & t->vmap_mask;
        while (t->vmap[h] >= 0)
            h = (h + 1) & t->vmap_mask;
        t->vmap[h] = (int32_t)i;
    }
    for (int c = 0; c < 256; c++) {
        uint8_t byte = (uint8_t)c;
        t->byte_id[c] = shoal_tok_lookup(t, &byte, 1);
        SHOAL_REQUIRE_GOTO(t->byte_id[c] >= 0, SHOAL_ERR_FORMAT,
                           "%s: no token for byte 0x%02X; a byte-level BPE vocabulary has all 256",
                           what, c);
    }
    t->eot = shoal_tok_lookup(t, (const uint8_t *)"<|endoftext|>", 13);
cleanup:
    free(slot);
    return st;
}

/* ---- merges ---- */

static shoal_status merges_alloc(shoal_tokenizer *t, uint64_t count, const char *what) {
    uint64_t mmax = shoal_limit(SHOAL_LIMIT_TOKENIZER_MERGES);
    SHOAL_REQUIRE(count <= mmax, SHOAL_ERR_LIMIT,
                  "%s: %llu merges is over the limit of %llu (limit tokenizer_merges)", what,
                  (unsigned long long)count, (unsigned long long)mmax);
    t->mmask = pow2_at_least(2 * count) - 1;
    size_t cap = (size_t)t->mmask + 1;
    t->mkey = malloc(cap * sizeof *t->mkey);
    t->mrank = malloc(cap * sizeof *t->mrank);
    t->mres = malloc(cap * sizeof *t->mres);
    SHOAL_REQUIRE(t->mkey && t->mrank && t->mres, SHOAL_ERR_NOMEM,
                  "%s: out of memory for %llu merges", what, (unsigned long long)count);
    memset(t->mkey, 0xff, cap * sizeof *t->mkey);
    return SHOAL_OK;
}

/* Add merge rule number t->n_merges: the two token strings a and b (disguised form). */
static shoal_status merge_add(shoal_tokenizer *t, const int16_t dec[BYTE_CP_MAX], const char *a,
                              size_t alen, const char *b, size_t blen, const char *what,
                              size_t line) {
    shoal_status st = SHOAL_OK;
    uint8_t *buf = malloc(alen + blen + 1);
    SHOAL_REQUIRE(buf, SHOAL_ERR_NOMEM, "%s: out of memory", what);
    size_t na, nb;
    SHOAL_CHECK_GOTO(token_bytes(dec, a, alen, buf, &na, what));
    SHOAL_CHECK_GOTO(token_bytes(dec, b, blen, buf + na, &nb, what));
    int32_t ia = shoal_tok_lookup(t, buf, na), ib = shoal_tok_lookup(t, buf + na, nb);
    int32_t ir = shoal_tok_lookup(t, buf, na + nb);
    SHOAL_REQUIRE_GOTO(ia >= 0 && ib >= 0, SHOAL_ERR_FORMAT,
                       "%s: merge %zu (\"%.*s %.*s\"): token \"%.*s\" is not in the vocabulary",
                       what, line, (int)alen, a, (int)blen, b, ia < 0 ? (int)alen : (int)blen,
                       ia < 0 ? a : b);
    SHOAL_REQUIRE_GOTO(ir >= 0, SHOAL_ERR_FORMAT,
                       "%s: merge %zu (\"%.*s %.*s\"): the merged token \"%.*s%.*s\" is not in "
                       "the vocabulary",
                       what, line, (int)alen, a, (int)blen, b, (int)alen, a, (int)blen, b);
    uint64_t key = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
    int64_t found = shoal_tok_merge_find(t, ia, ib);
    uint32_t h;
    if (found >= 0) {
        /* The reference implementations build a dict from the list, so the last one wins. */
        SHOAL_LOG_WARN("%s: merge %zu (\"%.*s %.*s\") repeats an earlier merge; the later rank "
                       "is used, as GPT-2's encoder does",
                       what, line, (int)alen, a, (int)blen, b);
        h = (uint32_t)found;
    } else {
        h = shoal_tok_hash_pair(key) & t->mmask;
        while (t->mkey[h] != UINT64_MAX)
            h = (h + 1) & t->mmask;
    }
    t->mkey[h] = key;
    t->mrank[h] = (uint32_t)t->n_merges++;
    t->mres[h] = ir;
cleanup:
    free(buf);
    return st;
}

/* merges.txt / vocab.bpe: an optional "#version" first line, then "left right" per line. */
static shoal_status merges_from_text(shoal_tokenizer *t, const int16_t dec[BYTE_CP_MAX],
                                     const char *text, size_t len, const char *what) {
    uint64_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    SHOAL_CHECK(merges_alloc(t, lines, what));
    size_t pos = 0, line = 0;
    while (pos < len) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl ? 1 : 0);
        line++;
        if (n && s[n - 1] == '\r') n--;
        if (n == 0) continue;
        if (line == 1 && n >= 8 && memcmp(s, "#version", 8) == 0) continue;
        const char *sp = memchr(s, ' ', n);
        int ok = sp && sp > s && sp < s + n - 1 && !memchr(sp + 1, ' ', (size_t)(s + n - sp - 1));
        SHOAL_REQUIRE(ok && !memchr(s, '\0', n), SHOAL_ERR_FORMAT,
                      "%s line %zu: expected two tokens separated by one space, got \"%.*s\"", what,
                      line, (int)(n > 80 ? 80 : n), s);
        SHOAL_CHECK(
            merge_add(t, dec, s, (size_t)(sp - s), sp + 1, (size_t)(s + n - sp - 1), what, line));
    }
    return SHOAL_OK;
}

/* ---- vocabularies ---- */

static shoal_status vocab_from_json(builder *b, const json_t *vocab, const char *what) {
    SHOAL_REQUIRE(json_is_object(vocab), SHOAL_ERR_FORMAT,
                  "%s: the vocabulary must be a JSON object of token -> id", what);
    uint64_t vmax = shoal_limit(SHOAL_LIMIT_TOKENIZER_VOCAB);
    SHOAL_REQUIRE(json_object_size(vocab) <= vmax, SHOAL_ERR_LIMIT,
                  "%s: %zu tokens is over the limit of %llu (limit tokenizer_vocab)", what,
                  json_object_size(vocab), (unsigned long long)vmax);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)vocab, key, val) {
        SHOAL_REQUIRE(json_is_integer(val), SHOAL_ERR_FORMAT,
                      "%s: the id of token \"%.64s\" must be an integer", what, key);
        SHOAL_CHECK(builder_add(b, (int64_t)json_integer_value(val), key, strlen(key), 0, what));
    }
    return SHOAL_OK;
}

static shoal_status new_tokenizer(shoal_tokenizer **out) {
    *out = calloc(1, sizeof **out);
    SHOAL_REQUIRE(*out, SHOAL_ERR_NOMEM, "out of memory");
    return SHOAL_OK;
}

static shoal_status load_vm(const char *vj, size_t vlen, const char *vwhat, const char *mt,
                            size_t mlen, const char *mwhat, shoal_tokenizer **out) {
    shoal_status st = SHOAL_OK;
    builder b = {0};
    json_t *doc = NULL;
    shoal_tokenizer *t = NULL;
    *out = NULL;
    byte_decoder(b.dec);
    SHOAL_CHECK_GOTO(shoal_json_load_buf(vj, vlen, vwhat, &doc));
    SHOAL_CHECK_GOTO(vocab_from_json(&b, doc, vwhat));
    SHOAL_CHECK_GOTO(new_tokenizer(&t));
    SHOAL_CHECK_GOTO(builder_finish(&b, t, vwhat));
    SHOAL_CHECK_GOTO(merges_from_text(t, b.dec, mt, mlen, mwhat));
    SHOAL_CHECK_GOTO(shoal_tok_mark_whole(t));
    *out = t;
    t = NULL;
cleanup:
    shoal_tokenizer_free(t);
    json_decref(doc);
    builder_free(&b);
    return st;
}

shoal_status shoal_tokenizer_load_vocab_merges(const char *vocab_json, size_t vocab_len,
                                               const char *merges, size_t merges_len,
                                               const char *what, shoal_tokenizer **out) {
    SHOAL_REQUIRE(out && vocab_json && merges, SHOAL_ERR_INVALID_ARG, "tokenizer: NULL argument");
    return load_vm(vocab_json, vocab_len, what ? what : "vocab", merges, merges_len,
                   what ? what : "merges", out);
}

/* tokenizer.json: check it is byte-level BPE as GPT-2 uses it, then the same builder. */
static shoal_status check_tokenizer_json(const json_t *doc, const char *what) {
    const json_t *model = json_object_get(doc, "model");
    SHOAL_REQUIRE(json_is_object(model), SHOAL_ERR_FORMAT, "%s: missing object \"model\"", what);
    const char *type = NULL;
    SHOAL_CHECK(shoal_json_get_str(model, "type", 0, what, &type));
    SHOAL_REQUIRE(!type || strcmp(type, "BPE") == 0, SHOAL_ERR_UNSUPPORTED,
                  "%s: model type \"%s\" is not supported (only byte-level BPE)", what, type);
    const json_t *d = json_object_get(model, "dropout");
    SHOAL_REQUIRE(!d || json_is_null(d) || (json_is_number(d) && json_number_value(d) == 0.0),
                  SHOAL_ERR_UNSUPPORTED, "%s: BPE dropout is not supported", what);
    const char *fields[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const json_t *f = json_object_get(model, fields[i]);
        SHOAL_REQUIRE(!f || json_is_null(f) || (json_is_string(f) && !json_string_length(f)),
                      SHOAL_ERR_UNSUPPORTED, "%s: model.%s is not supported by byte-level BPE",
                      what, fields[i]);
    }
    int ignore_merges = 0;
    SHOAL_CHECK(shoal_json_get_bool(model, "ignore_merges", 0, what, &ignore_merges));
    SHOAL_REQUIRE(!ignore_merges, SHOAL_ERR_UNSUPPORTED,
                  "%s: model.ignore_merges=true (whole words looked up before BPE) is not GPT-2's "
                  "BPE and is not supported",
                  what);
    const json_t *norm = json_object_get(doc, "normalizer");
    SHOAL_REQUIRE(!norm || json_is_null(norm), SHOAL_ERR_UNSUPPORTED,
                  "%s: a normalizer is not supported (GPT-2 has none)", what);
    const json_t *pre = json_object_get(doc, "pre_tokenizer");
    const char *ptype = NULL;
    if (json_is_object(pre)) SHOAL_CHECK(shoal_json_get_str(pre, "type", 0, what, &ptype));
    SHOAL_REQUIRE(ptype && strcmp(ptype, "ByteLevel") == 0, SHOAL_ERR_UNSUPPORTED,
                  "%s: pre_tokenizer must be ByteLevel (got %s); only GPT-2 byte-level BPE is "
                  "supported",
                  what, ptype ? ptype : "none");
    int prefix = 0, regex = 1;
    SHOAL_CHECK(shoal_json_get_bool(pre, "add_prefix_space", 0, what, &prefix));
    SHOAL_CHECK(shoal_json_get_bool(pre, "use_regex", 0, what, &regex));
    SHOAL_REQUIRE(!prefix && regex, SHOAL_ERR_UNSUPPORTED,
                  "%s: ByteLevel with add_prefix_space=true or use_regex=false is not GPT-2's "
                  "pre-tokenisation and is not supported",
                  what);
    return SHOAL_OK;
}

static shoal_status load_tj(const char *json, size_t len, const char *what, shoal_tokenizer **out) {
    shoal_status st = SHOAL_OK;
    builder b = {0};
    json_t *doc = NULL;
    shoal_tokenizer *t = NULL;
    *out = NULL;
    byte_decoder(b.dec);
    SHOAL_CHECK_GOTO(shoal_json_load_buf(json, len, what, &doc));
    SHOAL_REQUIRE_GOTO(json_is_object(doc), SHOAL_ERR_FORMAT, "%s: expected a JSON object", what);
    SHOAL_CHECK_GOTO(check_tokenizer_json(doc, what));
    const json_t *model = json_object_get(doc, "model");
    SHOAL_CHECK_GOTO(vocab_from_json(&b, json_object_get(model, "vocab"), what));
    const json_t *added = json_object_get(doc, "added_tokens");
    SHOAL_REQUIRE_GOTO(!added || json_is_null(added) || json_is_array(added), SHOAL_ERR_FORMAT,
                       "%s: \"added_tokens\" must be an array", what);
    size_t i;
    const json_t *a;
    json_array_foreach(added, i, a) {
        int64_t id = -1;
        const char *content = NULL;
        SHOAL_CHECK_GOTO(shoal_json_get_int(a, "id", 1, 0, INT32_MAX, what, &id));
        SHOAL_CHECK_GOTO(shoal_json_get_str(a, "content", 1, what, &content));
        SHOAL_CHECK_GOTO(builder_add(&b, id, content, strlen(content), 1, what));
    }
    SHOAL_CHECK_GOTO(new_tokenizer(&t));
    SHOAL_CHECK_GOTO(builder_finish(&b, t, what));
    const json_t *merges = json_object_get(model, "merges");
    SHOAL_REQUIRE_GOTO(json_is_array(merges), SHOAL_ERR_FORMAT, "%s: model.merges must be an array",
                       what);
    SHOAL_CHECK_GOTO(merges_alloc(t, json_array_size(merges), what));
    const json_t *m;
    json_array_foreach(merges, i, m) {
        const char *l = NULL, *r = NULL;
        size_t ll = 0, rl = 0;
        if (json_is_string(m)) { /* "left right" (tokenizers < 0.20) */
            const char *s = json_string_value(m);
            size_t n = json_string_length(m);
            const char *sp = memchr(s, ' ', n);
            if (sp && sp > s && sp < s + n - 1 && !memchr(sp + 1, ' ', (size_t)(s + n - sp - 1))) {
                l = s, ll = (size_t)(sp - s), r = sp + 1, rl = (size_t)(s + n - sp - 1);
            }
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            l = json_string_value(json_array_get(m, 0)); /* ["left", "right"] (>= 0.20) */
            ll = json_string_length(json_array_get(m, 0));
            r = json_string_value(json_array_get(m, 1));
            rl = json_string_length(json_array_get(m, 1));
        }
        SHOAL_REQUIRE_GOTO(l && r && ll && rl, SHOAL_ERR_FORMAT,
                           "%s: model.merges[%zu] must be \"left right\" or [\"left\", \"right\"]",
                           what, i);
        SHOAL_CHECK_GOTO(merge_add(t, b.dec, l, ll, r, rl, what, i));
    }
    SHOAL_CHECK_GOTO(shoal_tok_mark_whole(t));
    *out = t;
    t = NULL;
cleanup:
    shoal_tokenizer_free(t);
    json_decref(doc);
    builder_free(&b);
    return st;
}

shoal_status shoal_tokenizer_load_tokenizer_json(const char *json, size_t len, const char *what,
                                                 shoal_tokenizer **out) {
    SHOAL_REQUIRE(out && json, SHOAL_ERR_INVALID_ARG, "tokenizer: NULL argument");
    return load_tj(json, len, what ? what : "tokenizer.json", out);
}

void shoal_tokenizer_free(shoal_tokenizer *t) {
    if (!t) return;
    free(t->blob);
    free(t->tok_off);
    free(t->vmap);
    free(t->mkey);
    free(t->mrank);
    free(t->mres);
    free(t->whole);
    free(t);
}

int shoal_tokenizer_vocab_size(const shoal_tokenizer *t) {
    return t ? t->n_vocab : 0;
}

int32_t shoal_tokenizer_eot_id(const shoal_tokenizer *t) {
    return t ? t->eot : -1;
}

/* ---- directories ---- */

typedef enum { LAYOUT_HF = 0, LAYOUT_OPENAI, LAYOUT_TOKENIZER_JSON } layout;
static const char *const layout_files[3][2] = {
    {"vocab.json", "merges.txt"}, {"encoder.json", "vocab.bpe"}, {"tokenizer.json", NULL}};

static shoal_status detect(const char *dir, layout *out) {
    char p[SHOAL_MAX_PATH], q[SHOAL_MAX_PATH];
    for (int l = 0; l < 3; l++) {
        SHOAL_CHECK(shoal_path_join(p, sizeof p, dir, layout_files[l][0]));
        if (!shoal_path_exists(p)) continue;
        if (layout_files[l][1]) {
            SHOAL_CHECK(shoal_path_join(q, sizeof q, dir, layout_files[l][1]));
            if (!shoal_path_exists(q)) {
                SHOAL_LOG_WARN("%s: has %s but no %s; trying other layouts", dir,
                               layout_files[l][0], layout_files[l][1]);
                continue;
            }
        }
        *out = (layout)l;
        return SHOAL_OK;
    }
    SHOAL_LOG_ERROR("%s: no tokenizer files (expected vocab.json + merges.txt, encoder.json + "
                    "vocab.bpe, or tokenizer.json)",
                    dir);
    return SHOAL_ERR_NOT_FOUND;
}

static shoal_status read_file(const char *dir, const char *name, char *path, char **data,
                              size_t *len) {
    SHOAL_CHECK(shoal_path_join(path, SHOAL_MAX_PATH, dir, name));
    shoal_status st =
        shoal_file_read(path, shoal_limit(SHOAL_LIMIT_TOKENIZER_FILE_BYTES), data, len);
    if (st == SHOAL_ERR_LIMIT)
        SHOAL_LOG_ERROR("%s: larger than the limit tokenizer_file_bytes (%llu)", path,
                        (unsigned long long)shoal_limit(SHOAL_LIMIT_TOKENIZER_FILE_BYTES));
    return st;
}

/* Load layout l from buffers already read (names for messages). */
static shoal_status load_layout(layout l, char *const data[2], const size_t len[2],
                                const char *const path[2], shoal_tokenizer **out) {
    if (l == LAYOUT_TOKENIZER_JSON) return load_tj(data[0], len[0], path[0], out);
    return load_vm(data[0], len[0], path[0], data[1], len[1], path[1], out);
}

shoal_status shoal_tokenizer_load(const char *dir, shoal_tokenizer **out) {
    SHOAL_REQUIRE(dir && out, SHOAL_ERR_INVALID_ARG, "tokenizer: NULL argument");
    *out = NULL;
    layout l;
    SHOAL_CHECK(detect(dir, &l));
    shoal_status st = SHOAL_OK;
    char *data[2] = {NULL, NULL};
    size_t len[2] = {0, 0};
    char path[2][SHOAL_MAX_PATH];
    for (int k = 0; k < 2 && layout_files[l][k]; k++)
        SHOAL_CHECK_GOTO(read_file(dir, layout_files[l][k], path[k], &data[k], &len[k]));
    const char *names[2] = {path[0], path[1]};
    SHOAL_CHECK_GOTO(load_layout(l, data, len, names, out));
    SHOAL_LOG_DEBUG("%s: loaded %d tokens and %d merges from %s", dir, (*out)->n_vocab,
                    (*out)->n_merges, layout_files[l][0]);
cleanup:
    free(data[0]);
    free(data[1]);
    return st;
}

shoal_status shoal_tokenizer_copy_files(const char *src_dir, const char *dst_dir) {
    SHOAL_REQUIRE(src_dir && dst_dir, SHOAL_ERR_INVALID_ARG, "tokenizer: NULL argument");
    static const char *const names[] = {"vocab.json",
                                        "merges.txt",
                                        "encoder.json",
                                        "vocab.bpe",
                                        "tokenizer.json",
                                        "tokenizer_config.json",
                                        "special_tokens_map.json",
                                        "added_tokens.json"};
    enum { N = sizeof names / sizeof names[0] };
    layout l;
    SHOAL_CHECK(detect(src_dir, &l));
    shoal_status st = SHOAL_OK;
    char *data[N] = {0};
    size_t len[N] = {0};
    char path[SHOAL_MAX_PATH], lpath[2][SHOAL_MAX_PATH];
    shoal_tokenizer *t = NULL;
    char *ldata[2] = {NULL, NULL};
    size_t llen[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        SHOAL_CHECK_GOTO(shoal_path_join(path, sizeof path, src_dir, names[i]));
        if (!shoal_path_exists(path)) continue;
        SHOAL_CHECK_GOTO(read_file(src_dir, names[i], path, &data[i], &len[i]));
        for (int k = 0; k < 2; k++) {
            if (layout_files[l][k] && strcmp(layout_files[l][k], names[i]) == 0) {
                ldata[k] = data[i];
                llen[k] = len[i];
                memcpy(lpath[k], path, sizeof path);
            }
        }
    }
    /* Validate exactly the bytes that will be written. */
    const char *lnames[2] = {lpath[0], lpath[1]};
    SHOAL_CHECK_GOTO(load_layout(l, ldata, llen, lnames, &t));
    SHOAL_CHECK_GOTO(shoal_mkdir_p(dst_dir));
    for (int i = 0; i < N; i++) {
        if (!data[i]) continue;
        SHOAL_CHECK_GOTO(shoal_path_join(path, sizeof path, dst_dir, names[i]));
        SHOAL_CHECK_GOTO(shoal_file_write_atomic(path, data[i], len[i]));
    }
cleanup:
    shoal_tokenizer_free(t);
    for (int i = 0; i < N; i++)
        free(data[i]);
    return st;
}
