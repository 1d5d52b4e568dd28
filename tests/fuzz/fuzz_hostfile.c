/* fuzz_hostfile.c: libFuzzer target for the coordinator's hostfile parser
 * (coordinator/hostfile.c). Any input must be refused or accepted without a crash, leak or
 * sanitizer report; an accepted file must give 1..SHOAL_MAX_HOSTS distinct, well-formed hosts
 * within the slot limits. Seeds: tests/data/hostfile. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/hostfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        shoal_log_set_level(SHOAL_LOG_ERROR);
        quiet = 1;
    }
    shoal_host *h = NULL;
    int n = 0;
    if (shoal_hostfile_parse((const char *)data, size, "fuzz", &h, &n) != SHOAL_OK) return 0;
    if (n < 1 || n > SHOAL_MAX_HOSTS) abort();
    for (int i = 0; i < n; i++) {
        size_t len = strnlen(h[i].name, sizeof h[i].name);
        if (len == 0 || len >= sizeof h[i].name) abort();
        if (h[i].cpu_slots < 1 || h[i].cpu_slots > SHOAL_MAX_JOB_RANKS) abort();
        if (h[i].gpus < 0 || h[i].gpus > 1024) abort();
        for (int j = 0; j < i; j++)
            if (strcmp(h[i].name, h[j].name) == 0) abort();
    }
    free(h);
    return 0;
}
