/* cmd_tokenize.c: `shoal tokenize --tokenizer DIR [--decode]`.
 *
 * Encode: all of stdin is one text (bytes as they are, invalid UTF-8 included) -> one line of
 * space-separated ids. Decode: whitespace-separated ids on stdin -> the text bytes, exactly.
 * A thin shell over worker/tokenizer; the tokenizer does the checking. Tested by
 * tests/tokenizer/test_cmd_tokenize.sh.
 */
#define SHOAL_LOG_SUBSYS "cli"
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "common/limits.h"
#include "worker/tokenizer/tokenizer.h"

static void usage(FILE *out) {
    fprintf(out, "usage: shoal tokenize --tokenizer DIR [--decode] < input\n\n"
                 "  encode: text on stdin -> one line of space-separated token ids\n"
                 "  --decode: ids on stdin (whitespace-separated) -> text\n"
                 "DIR holds vocab.json + merges.txt, encoder.json + vocab.bpe, or "
                 "tokenizer.json.\n");
}

/* Read all of stdin, at most max bytes. */
static int read_stdin(char **data, size_t *len, uint64_t max) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return -1;
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                fprintf(stderr,
                        "shoal tokenize: input is larger than %llu bytes (limit "
                        "read_file_bytes)\n",
                        (unsigned long long)max);
                free(buf);
                return -1;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) {
        fprintf(stderr, "shoal tokenize: reading stdin: %s\n", strerror(errno));
        free(buf);
        return -1;
    }
    *data = buf;
    *len = n;
    return 0;
}

static int do_encode(const shoal_tokenizer *t, const char *in, size_t n) {
    int32_t *ids = NULL;
    size_t n_ids = 0;
    shoal_status st = shoal_tokenizer_encode(t, in, n, &ids, &n_ids);
    if (st != SHOAL_OK) {
        fprintf(stderr, "shoal tokenize: encode: %s\n", shoal_status_str(st));
        return 1;
    }
    for (size_t i = 0; i < n_ids; i++)
        printf(i ? " %d" : "%d", (int)ids[i]);
    printf("\n");
    free(ids);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int do_decode(const shoal_tokenizer *t, char *in, size_t n) {
    size_t cap = n / 2 + 1, k = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return 1;
    in[n] = '\0';
    char *p = in;
    int rc = 1;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX ||
            (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')) {
            fprintf(stderr, "shoal tokenize --decode: \"%.20s\" (token %zu) is not an integer id\n",
                    p, k);
            goto done;
        }
        ids[k++] = (int32_t)v;
        p = end;
    }
    char *text = NULL;
    size_t len = 0;
    shoal_status st = shoal_tokenizer_decode(t, ids, k, &text, &len);
    if (st != SHOAL_OK) {
        fprintf(stderr, "shoal tokenize --decode: %s\n", shoal_status_str(st));
        goto done;
    }
    rc = fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : 1;
    free(text);
done:
    free(ids);
    return rc;
}

int shoal_cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL;
    int decode = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--decode") == 0) {
            decode = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "shoal tokenize: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }
    shoal_tokenizer *t = NULL;
    shoal_status st = shoal_tokenizer_load(dir, &t);
    if (st != SHOAL_OK) {
        fprintf(stderr, "shoal tokenize: cannot load a tokenizer from %s: %s\n", dir,
                shoal_status_str(st));
        return 1;
    }
    char *in = NULL;
    size_t n = 0;
    int rc = 1;
    if (read_stdin(&in, &n, shoal_limit(SHOAL_LIMIT_READ_FILE_BYTES)) == 0) {
        /* decode writes a NUL at in[n]: make room */
        char *grown = realloc(in, n + 1);
        if (grown) {
            in = grown;
            rc = decode ? do_decode(t, in, n) : do_encode(t, in, n);
        }
    }
    free(in);
    shoal_tokenizer_free(t);
    return rc;
}
