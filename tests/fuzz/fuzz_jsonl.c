/* fuzz_jsonl.c: libFuzzer target for one JSONL example line (worker/train/jsonl.c): UTF-8
 * check, JSON parse, field rules. Any input must be accepted or rejected without a crash,
 * leak or sanitizer report; an accepted example must have valid UTF-8 strings of the stated
 * lengths in exactly one of the two forms. Seeds: tests/data/train/jsonl_seeds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/train/jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        shoal_log_set_level(SHOAL_LOG_ERROR);
        quiet = 1;
    }
    if (memchr(data, '\n', size)) return 0; /* the reader never hands over a newline */
    shoal_jsonl_doc doc;
    if (shoal_jsonl_parse_line((const char *)data, size, "fuzz", 1, &doc) != SHOAL_OK) return 0;
    if (doc.text) {
        if (doc.prompt || doc.completion || doc.text_len == 0) abort();
        if (!shoal_utf8_valid(doc.text, doc.text_len, NULL)) abort();
        if (strlen(doc.text) != doc.text_len) abort();
    } else {
        if (!doc.prompt || !doc.completion || doc.completion_len == 0) abort();
        if (!shoal_utf8_valid(doc.prompt, doc.prompt_len, NULL)) abort();
        if (!shoal_utf8_valid(doc.completion, doc.completion_len, NULL)) abort();
    }
    shoal_jsonl_doc_free(&doc);
    return 0;
}
