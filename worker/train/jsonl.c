/* jsonl.c: see jsonl.h. UTF-8 is checked before jansson sees the line so the message can
 * give the byte column; jansson then parses with duplicate keys rejected and NUL in strings
 * refused (its default), so every string handed on is NUL-free, valid UTF-8. */
#define SHOAL_LOG_SUBSYS "jsonl"
#include "worker/train/jsonl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"

int shoal_utf8_valid(const char *str, size_t n, size_t *bad_offset) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t need;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0; /* overlong */
            if (c == 0xED) hi = 0x9F; /* UTF-16 surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90; /* overlong */
            if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
        } else {
            goto bad;
        }
        if (n - i <= need) goto bad;
        if (s[i + 1] < lo || s[i + 1] > hi) goto bad;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80) goto bad;
        i += need + 1;
    }
    return 1;
bad:
    if (bad_offset) *bad_offset = i;
    return 0;
}

#define BLOCK (64u << 10)

struct shoal_jsonl_reader {
    FILE *f;
    char path[1024];
    shoal_sha256 *hash;
    uint64_t bytes, lineno;
    char block[BLOCK];
    size_t block_len, block_pos;
    char *line; /* current line, grown up to the line limit + 1 */
    size_t line_cap;
    int eof, failed;
};

shoal_status shoal_jsonl_reader_open(const char *path, shoal_jsonl_reader **out) {
    *out = NULL;
    shoal_jsonl_reader *r = calloc(1, sizeof *r);
    SHOAL_REQUIRE(r, SHOAL_ERR_NOMEM, "%s: out of memory", path);
    snprintf(r->path, sizeof r->path, "%s", path);
    r->f = fopen(path, "rb");
    if (!r->f) {
        int e = errno;
        SHOAL_LOG_ERROR("%s: cannot open: %s", path, strerror(e));
        free(r);
        return e == ENOENT ? SHOAL_ERR_NOT_FOUND : SHOAL_ERR_IO;
    }
    shoal_status st = shoal_sha256_init(&r->hash);
    if (st != SHOAL_OK) {
        shoal_jsonl_reader_free(r);
        return st;
    }
    *out = r;
    return SHOAL_OK;
}

void shoal_jsonl_reader_free(shoal_jsonl_reader *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    shoal_sha256_free(r->hash);
    free(r->line);
    free(r);
}

static shoal_status fill(shoal_jsonl_reader *r) {
    r->block_len = fread(r->block, 1, BLOCK, r->f);
    r->block_pos = 0;
    if (r->block_len == 0) {
        SHOAL_REQUIRE(!ferror(r->f), SHOAL_ERR_IO, "%s: read error after line %llu", r->path,
                      (unsigned long long)r->lineno);
        r->eof = 1;
        return SHOAL_OK;
    }
    r->bytes += r->block_len;
    return shoal_sha256_update(r->hash, r->block, r->block_len);
}

static shoal_status append(shoal_jsonl_reader *r, size_t *len, const char *p, size_t n) {
    size_t limit = (size_t)shoal_limit(SHOAL_LIMIT_JSONL_LINE_BYTES);
    SHOAL_REQUIRE(*len + n <= limit, SHOAL_ERR_LIMIT,
                  "%s:%llu: line is longer than the jsonl_line_bytes limit of %zu bytes", r->path,
                  (unsigned long long)r->lineno, limit);
    if (*len + n + 1 > r->line_cap) {
        size_t cap = r->line_cap ? r->line_cap : 4096;
        while (cap < *len + n + 1)
            cap *= 2;
        char *nl = realloc(r->line, cap);
        SHOAL_REQUIRE(nl, SHOAL_ERR_NOMEM, "%s:%llu: out of memory", r->path,
                      (unsigned long long)r->lineno);
        r->line = nl;
        r->line_cap = cap;
    }
    memcpy(r->line + *len, p, n);
    *len += n;
    return SHOAL_OK;
}

shoal_status shoal_jsonl_reader_next(shoal_jsonl_reader *r, const char **line, size_t *len,
                                     uint64_t *lineno) {
    *line = NULL;
    *len = 0;
    SHOAL_REQUIRE(!r->failed, SHOAL_ERR_INVALID_ARG, "%s: reader used after an error", r->path);
    size_t n = 0;
    int got_any = 0;
    r->lineno++;
    *lineno = r->lineno;
    for (;;) {
        if (r->block_pos == r->block_len) {
            if (!r->eof) {
                shoal_status st = fill(r);
                if (st != SHOAL_OK) {
                    r->failed = 1;
                    return st;
                }
            }
            if (r->eof) break;
        }
        const char *start = r->block + r->block_pos;
        size_t avail = r->block_len - r->block_pos;
        const char *nl = memchr(start, '\n', avail);
        size_t take = nl ? (size_t)(nl - start) : avail;
        shoal_status st = append(r, &n, start, take);
        if (st != SHOAL_OK) {
            r->failed = 1;
            return st;
        }
        got_any = 1;
        r->block_pos += take + (nl ? 1 : 0);
        if (nl) break;
    }
    if (!got_any) return SHOAL_OK; /* end of file */
    if (n > 0 && r->line[n - 1] == '\r') n--;
    if (!r->line) { /* an empty line at the very start: give a valid pointer */
        shoal_status st = append(r, &n, "", 0);
        if (st != SHOAL_OK) return st;
    }
    r->line[n] = '\0';
    *line = r->line;
    *len = n;
    return SHOAL_OK;
}

shoal_status shoal_jsonl_reader_digest(shoal_jsonl_reader *r, char hex[SHOAL_SHA256_HEX_LEN],
                                       uint8_t raw[32], uint64_t *bytes) {
    SHOAL_REQUIRE(r->eof && r->hash, SHOAL_ERR_INVALID_ARG,
                  "%s: digest asked before the end of the file", r->path);
    shoal_status st = shoal_sha256_final(r->hash, hex);
    r->hash = NULL; /* final frees it, also on error */
    SHOAL_CHECK(st);
    for (int i = 0; i < 32; i++) {
        unsigned v = 0;
        sscanf(hex + 2 * i, "%2x", &v);
        raw[i] = (uint8_t)v;
    }
    if (bytes) *bytes = r->bytes;
    return SHOAL_OK;
}

void shoal_jsonl_doc_free(shoal_jsonl_doc *doc) {
    if (doc->root) json_decref(doc->root);
    memset(doc, 0, sizeof *doc);
}

static shoal_status get_string(json_t *root, const char *key, const char *file, uint64_t lineno,
                               const char **s, size_t *len) {
    json_t *v = json_object_get(root, key);
    *s = NULL;
    *len = 0;
    if (!v) return SHOAL_OK;
    SHOAL_REQUIRE(json_is_string(v), SHOAL_ERR_FORMAT, "%s:%llu: field \"%s\" must be a string",
                  file, (unsigned long long)lineno, key);
    *s = json_string_value(v);
    *len = json_string_length(v);
    return SHOAL_OK;
}

shoal_status shoal_jsonl_parse_line(const char *line, size_t len, const char *file, uint64_t lineno,
                                    shoal_jsonl_doc *doc) {
    memset(doc, 0, sizeof *doc);
    unsigned long long ln = (unsigned long long)lineno;
    size_t ws = 0;
    while (ws < len && (line[ws] == ' ' || line[ws] == '\t' || line[ws] == '\r'))
        ws++;
    SHOAL_REQUIRE(ws < len, SHOAL_ERR_FORMAT,
                  "%s:%llu: empty line (each line must be one JSON example)", file, ln);
    size_t bad = 0;
    SHOAL_REQUIRE(shoal_utf8_valid(line, len, &bad), SHOAL_ERR_FORMAT,
                  "%s:%llu: invalid UTF-8 at byte %zu (0x%02x)", file, ln, bad + 1,
                  (unsigned)(unsigned char)line[bad]);
    json_error_t err;
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
    SHOAL_REQUIRE(root, SHOAL_ERR_FORMAT, "%s:%llu: invalid JSON at column %d: %s", file, ln,
                  err.column, err.text);
    shoal_status st = SHOAL_OK;
    SHOAL_REQUIRE_GOTO(json_is_object(root), SHOAL_ERR_FORMAT,
                       "%s:%llu: expected a JSON object with \"text\" or \"prompt\" and "
                       "\"completion\"",
                       file, ln);
    SHOAL_CHECK_GOTO(get_string(root, "text", file, lineno, &doc->text, &doc->text_len));
    SHOAL_CHECK_GOTO(get_string(root, "prompt", file, lineno, &doc->prompt, &doc->prompt_len));
    SHOAL_CHECK_GOTO(
        get_string(root, "completion", file, lineno, &doc->completion, &doc->completion_len));
    if (doc->text) {
        SHOAL_REQUIRE_GOTO(!doc->prompt && !doc->completion, SHOAL_ERR_FORMAT,
                           "%s:%llu: has both \"text\" and \"prompt\"/\"completion\"; use one "
                           "form per line",
                           file, ln);
        SHOAL_REQUIRE_GOTO(doc->text_len > 0, SHOAL_ERR_FORMAT, "%s:%llu: \"text\" is empty", file,
                           ln);
    } else {
        SHOAL_REQUIRE_GOTO(doc->prompt || doc->completion, SHOAL_ERR_FORMAT,
                           "%s:%llu: missing field: need \"text\", or \"prompt\" and "
                           "\"completion\"",
                           file, ln);
        SHOAL_REQUIRE_GOTO(doc->prompt, SHOAL_ERR_FORMAT,
                           "%s:%llu: missing field \"prompt\" (\"completion\" is present)", file,
                           ln);
        SHOAL_REQUIRE_GOTO(doc->completion, SHOAL_ERR_FORMAT,
                           "%s:%llu: missing field \"completion\" (\"prompt\" is present)", file,
                           ln);
        SHOAL_REQUIRE_GOTO(doc->completion_len > 0, SHOAL_ERR_FORMAT,
                           "%s:%llu: \"completion\" is empty: there would be nothing to train on",
                           file, ln);
    }
    doc->root = root;
    return SHOAL_OK;
cleanup:
    json_decref(root);
    memset(doc, 0, sizeof *doc);
    return st;
}
