/* fuzz_shard.c: libFuzzer target for the token shard reader (worker/train/shard.c).
 * Any input must be rejected or accepted without a crash, leak or sanitizer report; when it
 * is accepted, every token must be below the vocabulary, every mask byte 0/1, and every
 * document offset inside the token range. Seeds: tests/data/train/shard_bad. */
#include <stdint.h>
#include <stdlib.h>

#include "worker/train/shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        shoal_log_set_level(SHOAL_LOG_ERROR);
        quiet = 1;
    }
    shoal_shard *s = NULL;
    if (shoal_shard_parse(data, size, "fuzz", &s) != SHOAL_OK) return 0;
    const shoal_shard_info *info = shoal_shard_get_info(s);
    uint64_t n = info->n_tokens;
    int32_t *tok = malloc((size_t)n * sizeof *tok + 1);
    uint8_t *mask = malloc((size_t)n + 1);
    if (!tok || !mask || shoal_shard_read(s, 0, n, tok, mask) != SHOAL_OK) abort();
    for (uint64_t i = 0; i < n; i++)
        if (tok[i] < 0 || (uint32_t)tok[i] >= info->vocab_size || mask[i] > 1) abort();
    uint64_t prev = 0;
    for (uint64_t d = 0; d <= info->n_docs; d++) {
        uint64_t o = shoal_shard_doc_offset(s, d);
        if (o > n || (d > 0 && o <= prev)) abort();
        prev = o;
    }
    free(tok);
    free(mask);
    shoal_shard_close(s);
    return 0;
}
