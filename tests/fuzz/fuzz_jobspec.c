/* fuzz_jobspec.c: libFuzzer target for the job spec parser (proto/jobspec.c). Any input must be
 * refused or accepted without a crash, leak or sanitizer report; an accepted spec must pass
 * validation again and survive a round trip through its canonical JSON unchanged.
 * Seeds: tests/data/jobspec. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/jobspec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        shoal_log_set_level(SHOAL_LOG_ERROR);
        quiet = 1;
    }
    shoal_job_spec s;
    if (shoal_job_spec_parse((const char *)data, size, "/base", "fuzz", &s) != SHOAL_OK) return 0;
    if (shoal_job_spec_validate(&s, "fuzz") != SHOAL_OK) abort();
    char *text = NULL;
    if (shoal_job_spec_to_string(&s, &text) != SHOAL_OK) abort();
    shoal_job_spec back;
    if (shoal_job_spec_parse(text, strlen(text), NULL, "fuzz-rt", &back) != SHOAL_OK) abort();
    if (!shoal_job_spec_equal(&s, &back)) abort();
    free(text);
    shoal_job_spec_free(&back);
    shoal_job_spec_free(&s);
    return 0;
}
