/* fuzz_dataset.c: libFuzzer target for the dataset manifest reader (worker/train/dataset.c).
 * Any input must be accepted or rejected without a crash, leak or sanitizer report; an
 * accepted manifest must have plain shard names and split totals equal to their shards'.
 * Seeds: tests/data/train/dataset_seeds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/train/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        shoal_log_set_level(SHOAL_LOG_ERROR);
        quiet = 1;
    }
    shoal_dataset *ds = NULL;
    if (shoal_dataset_parse((const char *)data, size, "fuzz", "fuzz.json", &ds) != SHOAL_OK)
        return 0;
    const shoal_dataset_split *sp[2] = {&ds->train, &ds->val};
    for (int s = 0; s < 2; s++) {
        uint64_t docs = 0, toks = 0;
        for (int i = 0; i < sp[s]->n_shards; i++) {
            const char *f = sp[s]->shards[i].file;
            if (!f[0] || f[0] == '.' || strchr(f, '/')) abort();
            docs += sp[s]->shards[i].documents;
            toks += sp[s]->shards[i].tokens;
        }
        if (docs != sp[s]->documents || toks != sp[s]->tokens) abort();
    }
    if (ds->eot_id < 0 || (uint32_t)ds->eot_id >= ds->vocab_size) abort();
    shoal_dataset_free(ds);
    return 0;
}
