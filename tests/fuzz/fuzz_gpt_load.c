/* fuzz_gpt_load.c: libFuzzer target for loading checkpoint tensors into a GPT
 * (shoal_gpt_load_tensors, worker/model/gpt_io.c). Any bytes are parsed as safetensors and, when
 * valid, loaded into a tiny model (1 layer, 2 heads, 8 channels, vocab 16, 8 positions): the
 * load must succeed or fail cleanly, and on failure leave the parameters untouched.
 * Seeds: tests/data/model/load_seeds (gen_load_seeds.py). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/safetensors.h"
#include "worker/model/gpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static shoal_gpt *m;
    static float *before;
    if (!m) {
        shoal_log_set_level(SHOAL_LOG_ERROR);
        shoal_gpt_config c = {1, 2, 8, 16, 8, 1e-5f};
        if (shoal_gpt_create(&c, &m) != SHOAL_OK) abort();
        before = malloc(shoal_gpt_num_params(m) * sizeof(float));
        if (!before) abort();
    }
    size_t np = shoal_gpt_num_params(m);
    shoal_safetensors *sf = NULL;
    if (shoal_safetensors_parse(data, size, "fuzz", &sf) != SHOAL_OK) return 0;
    memcpy(before, shoal_gpt_params(m), np * sizeof(float));
    if (shoal_gpt_load_tensors(m, sf, "fuzz") != SHOAL_OK &&
        memcmp(before, shoal_gpt_params(m), np * sizeof(float)) != 0)
        abort();
    shoal_safetensors_close(sf);
    return 0;
}
