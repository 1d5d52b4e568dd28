/* fuzz_tokenizer.c: libFuzzer target for worker/tokenizer: the file loaders and encode.
 *
 * The first byte picks what the rest is: 0 = text, encoded with the GPT-2 vocabulary when
 * installed (else the tiny synthetic one); 1 = a vocab.json, a NUL byte, then a merges.txt;
 * 2 = a tokenizer.json. Any input must be accepted or rejected without a crash, leak or
 * sanitizer report; whatever loads must encode arbitrary bytes to in-range ids that decode
 * back to exactly those bytes (else abort). Seeds: tests/data/tokenizer/fuzz_seeds
 * (gen_tiny.py). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "worker/tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const shoal_tokenizer *t, const uint8_t *s, size_t n) {
    int32_t *ids = NULL;
    size_t k = 0;
    if (shoal_tokenizer_encode(t, (const char *)s, n, &ids, &k) != SHOAL_OK) abort();
    int vs = shoal_tokenizer_vocab_size(t);
    for (size_t i = 0; i < k; i++)
        if (ids[i] < 0 || ids[i] >= vs) abort();
    char *text = NULL;
    size_t len = 0;
    if (shoal_tokenizer_decode(t, ids, k, &text, &len) != SHOAL_OK) abort();
    if (len != n || (n && memcmp(text, s, n) != 0)) abort();
    free(text);
    free(ids);
}

static const shoal_tokenizer *text_tokenizer(void) {
    static shoal_tokenizer *t;
    if (t) return t;
    char dir[1024];
    const char *env = getenv("SHOAL_VOCAB_DIR");
    if (env && env[0])
        snprintf(dir, sizeof dir, "%s", env);
    else
        snprintf(dir, sizeof dir, "%s/.cache/shoal/gpt2-vocab",
                 getenv("HOME") ? getenv("HOME") : "");
    if (shoal_tokenizer_load(dir, &t) != SHOAL_OK &&
        shoal_tokenizer_load(SHOAL_TOKENIZER_TINY_DIR, &t) != SHOAL_OK) {
        fprintf(stderr, "fuzz_tokenizer: cannot load %s or %s\n", dir, SHOAL_TOKENIZER_TINY_DIR);
        abort();
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        shoal_log_set_level(SHOAL_LOG_ERROR);
        quiet = 1;
    }
    if (size == 0) return 0;
    uint8_t mode = data[0] % 3;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (mode == 0) {
        round_trip(text_tokenizer(), p, n);
        return 0;
    }
    shoal_tokenizer *t = NULL;
    shoal_status st;
    if (mode == 1) {
        const uint8_t *nul = memchr(p, 0, n);
        size_t vn = nul ? (size_t)(nul - p) : n;
        const char *m = nul ? (const char *)nul + 1 : "";
        size_t mn = nul ? n - vn - 1 : 0;
        st = shoal_tokenizer_load_vocab_merges((const char *)p, vn, m, mn, "fuzz", &t);
    } else {
        st = shoal_tokenizer_load_tokenizer_json((const char *)p, n, "fuzz", &t);
    }
    if (st == SHOAL_OK) {
        static const char probe[] = "Hello world! It's 2024: caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd "
                                    "\xf0\x9f\x8e\x89  \t\n\xff the cat sat";
        round_trip(t, (const uint8_t *)probe, sizeof probe - 1);
        round_trip(t, data, size);
    } else if (t) {
        abort(); /* a failed load must not hand out a tokenizer */
    }
    shoal_tokenizer_free(t);
    return 0;
}
