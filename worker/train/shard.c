/* shard.c: reader and writer of token shards; the format and its checks are in shard.h.
 * Every size is computed with overflow checks before it is compared with the buffer, and
 * every field is read with explicit little-endian loads, so a hostile file can neither make
 * us read out of bounds nor misinterpret it on another host. */
#define SHOAL_LOG_SUBSYS "shard"
#include "worker/train/shard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/limits.h"

struct shoal_shard {
    shoal_shard_info info;
    const uint8_t *base;    /* whole file */
    const uint8_t *offsets; /* u64 LE x (n_docs+1) */
    const uint8_t *tokens;  /* u16/u32 LE x n_tokens */
    const uint8_t *mask;    /* u8 x n_tokens */
    void *map;              /* mmap'd file, or NULL for a caller's buffer */
    size_t map_len;
};

static uint32_t ld32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t ld64(const uint8_t *p) {
    return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}
static void st32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void st64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
/* a*b + c without wrap-around; 0 on overflow. */
static int mul_add(uint64_t a, uint64_t b, uint64_t c, uint64_t *out) {
    if (b && a > (UINT64_MAX - c) / b) return 0;
    *out = a * b + c;
    return 1;
}

uint32_t shoal_shard_token_bytes(uint32_t vocab_size) {
    return vocab_size <= 65536u ? 2u : 4u;
}

static uint32_t token_at(const shoal_shard *s, uint64_t i) {
    if (s->info.token_bytes == 2) {
        const uint8_t *p = s->tokens + 2 * i;
        return (uint32_t)p[0] | (uint32_t)p[1] << 8;
    }
    return ld32(s->tokens + 4 * i);
}

static int all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

shoal_status shoal_shard_parse(const void *buf, size_t len, const char *what, shoal_shard **out) {
    *out = NULL;
    const uint8_t *b = buf;
    SHOAL_REQUIRE(b && len >= SHOAL_SHARD_HEADER_BYTES, SHOAL_ERR_FORMAT,
                  "%s: %zu bytes is shorter than the %u-byte shard header", what, len,
                  SHOAL_SHARD_HEADER_BYTES);
    SHOAL_REQUIRE(memcmp(b, SHOAL_SHARD_MAGIC, 8) == 0, SHOAL_ERR_FORMAT,
                  "%s: not a shoal token shard (bad magic)", what);
    shoal_shard_info info = {0};
    info.version = ld32(b + 8);
    uint32_t header_bytes = ld32(b + 12);
    info.vocab_size = ld32(b + 16);
    info.token_bytes = ld32(b + 20);
    info.flags = ld32(b + 24);
    info.n_tokens = ld64(b + 32);
    info.n_docs = ld64(b + 40);
    memcpy(info.source_sha256, b + 48, 32);
    SHOAL_REQUIRE(info.version == SHOAL_SHARD_VERSION, SHOAL_ERR_FORMAT,
                  "%s: shard version %u is not supported (this build reads version %u)", what,
                  info.version, SHOAL_SHARD_VERSION);
    SHOAL_REQUIRE(header_bytes == SHOAL_SHARD_HEADER_BYTES, SHOAL_ERR_FORMAT,
                  "%s: header_bytes %u, expected %u", what, header_bytes, SHOAL_SHARD_HEADER_BYTES);
    SHOAL_REQUIRE(info.vocab_size >= 1 && info.vocab_size <= SHOAL_MAX_VOCAB, SHOAL_ERR_FORMAT,
                  "%s: vocab_size %u is outside [1, %u]", what, info.vocab_size, SHOAL_MAX_VOCAB);
    SHOAL_REQUIRE(info.token_bytes == shoal_shard_token_bytes(info.vocab_size), SHOAL_ERR_FORMAT,
                  "%s: token_bytes %u does not match vocab_size %u (expected %u)", what,
                  info.token_bytes, info.vocab_size, shoal_shard_token_bytes(info.vocab_size));
    SHOAL_REQUIRE((info.flags & ~SHOAL_SHARD_FLAG_MASKED) == 0, SHOAL_ERR_FORMAT,
                  "%s: unknown flag bits 0x%x", what, info.flags & ~SHOAL_SHARD_FLAG_MASKED);
    SHOAL_REQUIRE(ld32(b + 28) == 0 && all_zero(b + 80, 48), SHOAL_ERR_FORMAT,
                  "%s: reserved header bytes are not zero", what);
    SHOAL_REQUIRE(info.n_tokens <= shoal_limit(SHOAL_LIMIT_SHARD_TOKENS), SHOAL_ERR_LIMIT,
                  "%s: n_tokens %llu is over the shard_tokens limit %llu", what,
                  (unsigned long long)info.n_tokens,
                  (unsigned long long)shoal_limit(SHOAL_LIMIT_SHARD_TOKENS));
    SHOAL_REQUIRE(info.n_docs <= info.n_tokens && (info.n_docs > 0 || info.n_tokens == 0),
                  SHOAL_ERR_FORMAT, "%s: n_docs %llu is impossible for n_tokens %llu", what,
                  (unsigned long long)info.n_docs, (unsigned long long)info.n_tokens);
    /* n_docs <= n_tokens <= 2^36 here, so these cannot overflow; checked anyway. */
    uint64_t off_bytes, tok_end, total;
    SHOAL_REQUIRE(mul_add(info.n_docs + 1, 8, SHOAL_SHARD_HEADER_BYTES, &off_bytes) &&
                      mul_add(info.n_tokens, info.token_bytes, off_bytes, &tok_end) &&
                      mul_add(info.n_tokens, 1, tok_end, &total),
                  SHOAL_ERR_FORMAT, "%s: sizes overflow", what);
    SHOAL_REQUIRE(total == (uint64_t)len, SHOAL_ERR_FORMAT,
                  "%s: file is %zu bytes but its header describes %llu bytes (%s)", what, len,
                  (unsigned long long)total, (uint64_t)len < total ? "truncated" : "trailing data");

    shoal_shard *s = calloc(1, sizeof *s);
    SHOAL_REQUIRE(s, SHOAL_ERR_NOMEM, "%s: out of memory", what);
    s->info = info;
    s->base = b;
    s->offsets = b + SHOAL_SHARD_HEADER_BYTES;
    s->tokens = b + off_bytes;
    s->mask = b + tok_end;

    shoal_status st = SHOAL_OK;
    uint64_t prev = ld64(s->offsets);
    SHOAL_REQUIRE_GOTO(prev == 0, SHOAL_ERR_FORMAT, "%s: doc_offsets[0] is %llu, expected 0", what,
                       (unsigned long long)prev);
    for (uint64_t d = 1; d <= info.n_docs; d++) {
        uint64_t o = ld64(s->offsets + 8 * d);
        SHOAL_REQUIRE_GOTO(o > prev && o <= info.n_tokens, SHOAL_ERR_FORMAT,
                           "%s: doc_offsets[%llu]=%llu is not increasing within [1, %llu]", what,
                           (unsigned long long)d, (unsigned long long)o,
                           (unsigned long long)info.n_tokens);
        prev = o;
    }
    SHOAL_REQUIRE_GOTO(prev == info.n_tokens, SHOAL_ERR_FORMAT,
                       "%s: last doc offset %llu does not equal n_tokens %llu", what,
                       (unsigned long long)prev, (unsigned long long)info.n_tokens);
    for (uint64_t i = 0; i < info.n_tokens; i++) {
        uint32_t t = token_at(s, i);
        SHOAL_REQUIRE_GOTO(t < info.vocab_size, SHOAL_ERR_FORMAT,
                           "%s: token %llu has id %u, not below vocab_size %u", what,
                           (unsigned long long)i, t, info.vocab_size);
    }
    uint64_t trained = 0;
    for (uint64_t i = 0; i < info.n_tokens; i++) {
        uint8_t m = s->mask[i];
        SHOAL_REQUIRE_GOTO(m <= 1, SHOAL_ERR_FORMAT, "%s: mask of token %llu is %u, not 0 or 1",
                           what, (unsigned long long)i, m);
        trained += m;
    }
    s->info.n_trained = trained;
    SHOAL_REQUIRE_GOTO(((info.flags & SHOAL_SHARD_FLAG_MASKED) != 0) == (trained < info.n_tokens),
                       SHOAL_ERR_FORMAT,
                       "%s: flag MASKED=%d disagrees with the mask (%llu of %llu"
                       " tokens trained)",
                       what, (info.flags & SHOAL_SHARD_FLAG_MASKED) != 0,
                       (unsigned long long)trained, (unsigned long long)info.n_tokens);
    *out = s;
    return SHOAL_OK;
cleanup:
    free(s);
    return st;
}

shoal_status shoal_shard_open(const char *path, shoal_shard **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        SHOAL_LOG_ERROR("%s: cannot open: %s", path, strerror(errno));
        return errno == ENOENT ? SHOAL_ERR_NOT_FOUND : SHOAL_ERR_IO;
    }
    shoal_status st = SHOAL_OK;
    void *map = NULL;
    size_t len = 0;
    struct stat sb;
    SHOAL_REQUIRE_GOTO(fstat(fd, &sb) == 0, SHOAL_ERR_IO, "%s: stat: %s", path, strerror(errno));
    SHOAL_REQUIRE_GOTO(S_ISREG(sb.st_mode), SHOAL_ERR_INVALID_ARG, "%s: not a regular file", path);
    SHOAL_REQUIRE_GOTO(sb.st_size >= (off_t)SHOAL_SHARD_HEADER_BYTES, SHOAL_ERR_FORMAT,
                       "%s: %lld bytes is shorter than the %u-byte shard header", path,
                       (long long)sb.st_size, SHOAL_SHARD_HEADER_BYTES);
    len = (size_t)sb.st_size;
    map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    SHOAL_REQUIRE_GOTO(map != MAP_FAILED, SHOAL_ERR_IO, "%s: mmap: %s", path, strerror(errno));
    shoal_shard *s = NULL;
    st = shoal_shard_parse(map, len, path, &s);
    if (st != SHOAL_OK) {
        munmap(map, len);
        goto cleanup;
    }
    s->map = map;
    s->map_len = len;
    *out = s;
cleanup:
    close(fd);
    return st;
}

void shoal_shard_close(shoal_shard *s) {
    if (!s) return;
    if (s->map) munmap(s->map, s->map_len);
    free(s);
}

const shoal_shard_info *shoal_shard_get_info(const shoal_shard *s) {
    return &s->info;
}

uint64_t shoal_shard_doc_offset(const shoal_shard *s, uint64_t d) {
    SHOAL_ASSERT(d <= s->info.n_docs);
    return ld64(s->offsets + 8 * d);
}

shoal_status shoal_shard_read(const shoal_shard *s, uint64_t start, uint64_t n, int32_t *tokens,
                              uint8_t *mask) {
    SHOAL_REQUIRE(start <= s->info.n_tokens && n <= s->info.n_tokens - start, SHOAL_ERR_INVALID_ARG,
                  "shard read [%llu, +%llu) is outside %llu tokens", (unsigned long long)start,
                  (unsigned long long)n, (unsigned long long)s->info.n_tokens);
    if (tokens) {
        if (s->info.token_bytes == 2) {
            const uint8_t *p = s->tokens + 2 * start;
            for (uint64_t i = 0; i < n; i++)
                tokens[i] = (int32_t)(p[2 * i] | p[2 * i + 1] << 8);
        } else {
            for (uint64_t i = 0; i < n; i++)
                tokens[i] = (int32_t)token_at(s, start + i);
        }
    }
    if (mask) memcpy(mask, s->mask + start, n);
    return SHOAL_OK;
}

shoal_status shoal_shard_write(const char *path, uint32_t vocab_size,
                               const uint8_t source_sha256[32], const int32_t *tokens,
                               const uint8_t *mask, uint64_t n_tokens, const uint64_t *doc_offsets,
                               uint64_t n_docs) {
    SHOAL_REQUIRE(vocab_size >= 1 && vocab_size <= SHOAL_MAX_VOCAB, SHOAL_ERR_INVALID_ARG,
                  "%s: vocab_size %u is outside [1, %u]", path, vocab_size, SHOAL_MAX_VOCAB);
    SHOAL_REQUIRE(n_tokens <= shoal_limit(SHOAL_LIMIT_SHARD_TOKENS), SHOAL_ERR_LIMIT,
                  "%s: %llu tokens is over the shard_tokens limit %llu", path,
                  (unsigned long long)n_tokens,
                  (unsigned long long)shoal_limit(SHOAL_LIMIT_SHARD_TOKENS));
    SHOAL_REQUIRE(n_docs <= n_tokens && (n_docs > 0 || n_tokens == 0) && doc_offsets &&
                      (n_tokens == 0 || (tokens && mask)),
                  SHOAL_ERR_INVALID_ARG, "%s: %llu documents for %llu tokens", path,
                  (unsigned long long)n_docs, (unsigned long long)n_tokens);
    SHOAL_REQUIRE(doc_offsets[0] == 0 && doc_offsets[n_docs] == n_tokens, SHOAL_ERR_INVALID_ARG,
                  "%s: document offsets must run from 0 to n_tokens", path);
    for (uint64_t d = 1; d <= n_docs; d++)
        SHOAL_REQUIRE(doc_offsets[d] > doc_offsets[d - 1], SHOAL_ERR_INVALID_ARG,
                      "%s: document %llu is empty or offsets decrease", path,
                      (unsigned long long)(d - 1));
    uint32_t flags = 0;
    for (uint64_t i = 0; i < n_tokens; i++) {
        SHOAL_REQUIRE(tokens[i] >= 0 && (uint32_t)tokens[i] < vocab_size, SHOAL_ERR_INVALID_ARG,
                      "%s: token %llu has id %d, outside [0, %u)", path, (unsigned long long)i,
                      tokens[i], vocab_size);
        SHOAL_REQUIRE(mask[i] <= 1, SHOAL_ERR_INVALID_ARG, "%s: mask of token %llu is %u", path,
                      (unsigned long long)i, mask[i]);
        if (!mask[i]) flags |= SHOAL_SHARD_FLAG_MASKED;
    }
    uint32_t tb = shoal_shard_token_bytes(vocab_size);
    uint8_t header[SHOAL_SHARD_HEADER_BYTES] = {0};
    memcpy(header, SHOAL_SHARD_MAGIC, 8);
    st32(header + 8, SHOAL_SHARD_VERSION);
    st32(header + 12, SHOAL_SHARD_HEADER_BYTES);
    st32(header + 16, vocab_size);
    st32(header + 20, tb);
    st32(header + 24, flags);
    st64(header + 32, n_tokens);
    st64(header + 40, n_docs);
    if (source_sha256) memcpy(header + 48, source_sha256, 32);

    /* n_docs, n_tokens <= 2^36: these products fit in size_t on 64-bit hosts. */
    size_t off_len = (size_t)(n_docs + 1) * 8, tok_len = (size_t)n_tokens * tb;
    uint8_t *offs = malloc(off_len), *toks = malloc(tok_len ? tok_len : 1);
    shoal_status st = SHOAL_OK;
    SHOAL_REQUIRE_GOTO(offs && toks, SHOAL_ERR_NOMEM, "%s: cannot allocate %zu bytes", path,
                       off_len + tok_len);
    for (uint64_t d = 0; d <= n_docs; d++)
        st64(offs + 8 * d, doc_offsets[d]);
    for (uint64_t i = 0; i < n_tokens; i++) {
        if (tb == 2) {
            toks[2 * i] = (uint8_t)tokens[i];
            toks[2 * i + 1] = (uint8_t)(tokens[i] >> 8);
        } else {
            st32(toks + 4 * i, (uint32_t)tokens[i]);
        }
    }
    shoal_iovec parts[4] = {
        {header, sizeof header}, {offs, off_len}, {toks, tok_len}, {mask, (size_t)n_tokens}};
    st = shoal_file_writev_atomic(path, parts, 4);
cleanup:
    free(toks);
    free(offs);
    return st;
}
