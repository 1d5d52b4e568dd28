/* fuzz_safetensors.c: libFuzzer target for the safetensors parser (common/safetensors.c).
 * Any input must be rejected or accepted without a crash, leak or sanitizer report; when it
 * is accepted, every tensor must lie inside the buffer. Seeds: tests/data/safetensors_bad. */
#include <stdint.h>
#include <stdlib.h>

#include "common/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        shoal_log_set_level(SHOAL_LOG_ERROR);
        quiet = 1;
    }
    shoal_safetensors *st = NULL;
    if (shoal_safetensors_parse(data, size, "fuzz", &st) == SHOAL_OK) {
        for (int i = 0; i < shoal_safetensors_count(st); i++) {
            const shoal_st_tensor *t = shoal_safetensors_at(st, i);
            const uint8_t *p = t->data;
            if (p < data || p + t->nbytes > data + size) abort();
            volatile uint8_t sink = 0;
            for (uint64_t j = 0; j < t->nbytes; j++) sink ^= p[j];
            (void)sink;
        }
        shoal_safetensors_close(st);
    }
    return 0;
}
