/* fuzz_privacy_state.c: libFuzzer target for the DP accountant's state parser
 * (privacy/accountant.c, shoal_dp_accountant_from_json). Any input must be rejected or
 * accepted without a crash, leak or sanitizer report; an accepted state must give a
 * non-negative ε (or +inf) and survive to_json -> from_json with the same ε, bit for bit.
 * Seeds: tests/data/privacy_state (one valid state and single-field corruptions of it). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/json.h"
#include "privacy/accountant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        shoal_log_set_level(SHOAL_LOG_ERROR);
        quiet = 1;
    }
    if (size > 65536) return 0; /* state files are a few KB; bound the work per input */
    json_t *j = NULL;
    if (shoal_json_load_buf((const char *)data, size, "fuzz", &j) != SHOAL_OK) return 0;
    shoal_dp_accountant *a = NULL, *b = NULL;
    if (shoal_dp_accountant_from_json(j, "fuzz", &a) == SHOAL_OK) {
        double e1 = -1, e2 = -1;
        if (shoal_dp_accountant_epsilon(a, 1e-5, &e1, NULL) != SHOAL_OK || !(e1 >= 0)) abort();
        json_t *k = NULL;
        if (shoal_dp_accountant_to_json(a, &k) != SHOAL_OK) abort();
        if (shoal_dp_accountant_from_json(k, "fuzz round trip", &b) != SHOAL_OK) abort();
        if (shoal_dp_accountant_epsilon(b, 1e-5, &e2, NULL) != SHOAL_OK) abort();
        if (!(e1 == e2 || (isinf(e1) && isinf(e2)))) abort();
        json_decref(k);
    }
    shoal_dp_accountant_free(a);
    shoal_dp_accountant_free(b);
    json_decref(j);
    return 0;
}
