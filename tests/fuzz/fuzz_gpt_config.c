/* fuzz_gpt_config.c: libFuzzer target for GPT config.json parsing (worker/model/gpt_io.c):
 * any bytes must be rejected or give a config that passes shoal_gpt_config_check, without a
 * crash, leak or sanitizer report. Seeds: tests/data/model/config_bad (bad and ok_ files). */
#include <stdint.h>
#include <stdlib.h>

#include "common/json.h"
#include "worker/model/gpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        shoal_log_set_level(SHOAL_LOG_ERROR);
        quiet = 1;
    }
    json_t *doc = NULL;
    if (shoal_json_load_buf((const char *)data, size, "fuzz config.json", &doc) != SHOAL_OK) return 0;
    shoal_gpt_config cfg;
    if (shoal_gpt_config_from_json(doc, "fuzz config.json", &cfg) == SHOAL_OK) {
        if (shoal_gpt_config_check(&cfg, "fuzz") != SHOAL_OK) abort();
        if (shoal_gpt_config_num_params(&cfg) == 0) abort();
    }
    json_decref(doc);
    return 0;
}
