/* tok_fixtures.h: helpers shared by the tokenizer tests and bench: where the GPT-2
 * vocabulary and the fixtures are, and a reader for the tab-separated fixture files
 * (tests/data/tokenizer/ref_*.tsv, texts as hex). Header-only, static functions. */
#ifndef SHOAL_TESTS_TOK_FIXTURES_H
#define SHOAL_TESTS_TOK_FIXTURES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"

/* The GPT-2 vocabulary directory ($SHOAL_VOCAB_DIR or ~/.cache/shoal/gpt2-vocab), or NULL
 * when encoder.json is not there. */
static inline const char *tok_vocab_dir(void) {
    static char dir[1024];
    const char *env = getenv("SHOAL_VOCAB_DIR");
    if (env && env[0])
        snprintf(dir, sizeof dir, "%s", env);
    else
        snprintf(dir, sizeof dir, "%s/.cache/shoal/gpt2-vocab",
                 getenv("HOME") ? getenv("HOME") : "");
    char p[1100];
    snprintf(p, sizeof p, "%s/encoder.json", dir);
    return shoal_path_exists(p) ? dir : NULL;
}

/* tests/data/tokenizer/<name> under $SHOAL_SOURCE_DIR (set by CTest) or the build's source. */
static inline const char *tok_data(const char *name) {
    static char p[4][1024];
    static int k;
    const char *src = getenv("SHOAL_SOURCE_DIR");
    char *out = p[k++ & 3];
    snprintf(out, 1024, "%s/tests/data/tokenizer/%s",
             src && src[0] ? src : SHOAL_SOURCE_DIR_DEFAULT, name);
    return out;
}

/* Decode hex ("-" = empty) into a new buffer. */
static inline uint8_t *tok_unhex(const char *s, size_t n, size_t *len) {
    uint8_t *out = malloc(n / 2 + 1);
    *len = 0;
    if (!out || (n == 1 && s[0] == '-')) return out;
    for (size_t i = 0; i + 1 < n; i += 2) {
        unsigned v;
        char b[3] = {s[i], s[i + 1], 0};
        if (sscanf(b, "%2x", &v) != 1) break;
        out[(*len)++] = (uint8_t)v;
    }
    return out;
}

/* Parse space-separated integers ("-" = none) into a new array. */
static inline int32_t *tok_parse_ids(const char *s, size_t n, size_t *count) {
    int32_t *out = malloc((n / 2 + 1) * sizeof *out);
    *count = 0;
    if (!out || (n == 1 && s[0] == '-')) return out;
    const char *e = s + n;
    while (s < e) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        out[(*count)++] = (int32_t)v;
        s = end;
        while (s < e && *s == ' ')
            s++;
    }
    return out;
}

/* One fixture line split into up to 8 tab-separated fields (pointers into the file text). */
typedef struct {
    const char *f[8];
    size_t n[8];
    int nf;
} tok_row;

/* Iterate rows of a .tsv loaded whole: *pos is the cursor; returns 0 at the end. Lines
 * starting with '#' are skipped. */
static inline int tok_next_row(const char *text, size_t len, size_t *pos, tok_row *r) {
    while (*pos < len) {
        const char *s = text + *pos;
        const char *nl = memchr(s, '\n', len - *pos);
        size_t n = nl ? (size_t)(nl - s) : len - *pos;
        *pos += n + 1;
        if (n == 0 || s[0] == '#') continue;
        r->nf = 0;
        const char *e = s + n;
        while (s <= e && r->nf < 8) {
            const char *tab = memchr(s, '\t', (size_t)(e - s));
            const char *fe = tab ? tab : e;
            r->f[r->nf] = s;
            r->n[r->nf++] = (size_t)(fe - s);
            if (!tab) break;
            s = tab + 1;
        }
        return 1;
    }
    return 0;
}

#endif
