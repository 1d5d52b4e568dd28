/* test_accountant.c: the accountant of privacy/accountant.h.
 *
 * Composition: N calls of step(1) equal one step(N), phases with different (q, σ) add, and
 * the result equals the rdp.h functions on the summed curve; the Opacus vector reproduced
 * through the accountant (signed series, Opacus grid, 2250 single steps). Persistence: a
 * save/load round trip resumes ε exactly, a resumed accountant continues as if never stopped,
 * and malformed or edited state files (the corpus in tests/data/privacy_state/) are refused
 * with FORMAT and a message, never loaded.
 */
#include <math.h>

#include "common/fileio.h"
#include "common/json.h"
#include "privacy/accountant.h"
#include "test.h"

static void test_compose(void) {
    shoal_dp_accountant *a, *b;
    CHECK(shoal_dp_accountant_init(&a, NULL, 0, SHOAL_DP_SERIES_MAGNITUDE) == SHOAL_OK);
    CHECK(shoal_dp_accountant_init(&b, NULL, 0, SHOAL_DP_SERIES_MAGNITUDE) == SHOAL_OK);
    double e0;
    CHECK(shoal_dp_accountant_epsilon(a, 1e-5, &e0, NULL) == SHOAL_OK);
    CHECK(e0 == 0.0);
    for (int i = 0; i < 500; i++)
        CHECK(shoal_dp_accountant_step(a, 0.01, 1.1, 1) == SHOAL_OK);
    CHECK(shoal_dp_accountant_step(b, 0.01, 1.1, 500) == SHOAL_OK);
    CHECK(shoal_dp_accountant_phase_count(a) == 1);
    double ea, eb, ed, oa, ob;
    CHECK(shoal_dp_accountant_epsilon(a, 1e-5, &ea, &oa) == SHOAL_OK);
    CHECK(shoal_dp_accountant_epsilon(b, 1e-5, &eb, &ob) == SHOAL_OK);
    CHECK(fabs(ea - eb) <= 1e-12 * eb && oa == ob);
    CHECK(shoal_dp_epsilon(0.01, 1.1, 500, 1e-5, &ed, NULL) == SHOAL_OK);
    CHECK(fabs(ea - ed) <= 1e-12 * ed);
    /* a second phase adds RDP: ε grows, and equals the sum of curves */
    double pred;
    CHECK(shoal_dp_accountant_epsilon_if(a, 0.02, 0.9, 300, 1e-5, &pred) == SHOAL_OK);
    CHECK(shoal_dp_accountant_step(a, 0.02, 0.9, 300) == SHOAL_OK);
    CHECK(shoal_dp_accountant_phase_count(a) == 2);
    CHECK(shoal_dp_accountant_total_steps(a) == 800);
    CHECK(shoal_dp_accountant_epsilon(a, 1e-5, &ea, NULL) == SHOAL_OK);
    CHECK(ea > eb && fabs(ea - pred) <= 1e-12 * ea);
    const double *o;
    size_t n = shoal_dp_default_orders(&o);
    double r1[156], r2[156], e;
    CHECK(shoal_dp_rdp_subsampled_gaussian(0.01, 1.1, o, n, 0, r1) == SHOAL_OK);
    CHECK(shoal_dp_rdp_subsampled_gaussian(0.02, 0.9, o, n, 0, r2) == SHOAL_OK);
    for (size_t k = 0; k < n; k++)
        r1[k] = 500 * r1[k] + 300 * r2[k];
    CHECK(shoal_dp_rdp_to_epsilon(o, r1, n, 1e-5, &e, NULL) == SHOAL_OK);
    CHECK(fabs(ea - e) <= 1e-12 * e);
    double d;
    CHECK(shoal_dp_accountant_delta(a, ea, &d, NULL) == SHOAL_OK);
    CHECK(fabs(d - 1e-5) < 1e-11);
    shoal_dp_phase ph;
    CHECK(shoal_dp_accountant_phase(a, 1, &ph) == SHOAL_OK && ph.q == 0.02 && ph.steps == 300);
    CHECK(shoal_dp_accountant_phase(a, 2, &ph) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_dp_accountant_step(a, 1.5, 1.0, 1) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_dp_accountant_step(a, 0.1, -1.0, 1) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_dp_accountant_step(a, 0.1, 1.0, 0) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_dp_accountant_total_steps(a) == 800);
    shoal_dp_accountant_free(a);
    shoal_dp_accountant_free(b);
    shoal_dp_accountant_free(NULL);
}

/* pytorch/opacus opacus/tests/accountants_test.py test_rdp_accountant, stepped one at a time
 * as Opacus does: 2250 steps at σ 1.5, q 0.04 -> ε 7.32911117143 at δ 1e-5. */
static void test_opacus_through_accountant(void) {
    double o[160];
    size_t n = 0;
    for (int x = 1; x < 100; x++)
        o[n++] = 1 + x / 10.0;
    for (int x = 12; x < 64; x++)
        o[n++] = x;
    shoal_dp_accountant *a;
    CHECK(shoal_dp_accountant_init(&a, o, n, SHOAL_DP_SERIES_SIGNED) == SHOAL_OK);
    for (int i = 0; i < 2250; i++)
        CHECK(shoal_dp_accountant_step(a, 0.04, 1.5, 1) == SHOAL_OK);
    double e;
    CHECK(shoal_dp_accountant_epsilon(a, 1e-5, &e, NULL) == SHOAL_OK);
    CHECK(fabs(e - 7.32911117143) / 7.32911117143 < 1e-6);
    shoal_dp_accountant_free(a);
}

static void test_save_resume(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/acct.json", test_tmpdir());
    shoal_dp_accountant *a, *b, *full;
    CHECK(shoal_dp_accountant_init(&a, NULL, 0, SHOAL_DP_SERIES_MAGNITUDE) == SHOAL_OK);
    CHECK(shoal_dp_accountant_init(&full, NULL, 0, SHOAL_DP_SERIES_MAGNITUDE) == SHOAL_OK);
    CHECK(shoal_dp_accountant_step(a, 0.01, 1.0, 1000) == SHOAL_OK);
    CHECK(shoal_dp_accountant_step(a, 0.005, 0.8, 37) == SHOAL_OK);
    CHECK(shoal_dp_accountant_save(a, path) == SHOAL_OK);
    CHECK(shoal_dp_accountant_load(path, &b) == SHOAL_OK);
    double ea, eb;
    CHECK(shoal_dp_accountant_epsilon(a, 1e-6, &ea, NULL) == SHOAL_OK);
    CHECK(shoal_dp_accountant_epsilon(b, 1e-6, &eb, NULL) == SHOAL_OK);
    CHECK(ea == eb);
    CHECK(shoal_dp_accountant_total_steps(b) == 1037);
    /* the resumed run continues: same ε as a run that never stopped */
    CHECK(shoal_dp_accountant_step(b, 0.005, 0.8, 63) == SHOAL_OK);
    CHECK(shoal_dp_accountant_step(full, 0.01, 1.0, 1000) == SHOAL_OK);
    CHECK(shoal_dp_accountant_step(full, 0.005, 0.8, 100) == SHOAL_OK);
    CHECK(shoal_dp_accountant_epsilon(b, 1e-6, &eb, NULL) == SHOAL_OK);
    CHECK(shoal_dp_accountant_epsilon(full, 1e-6, &ea, NULL) == SHOAL_OK);
    CHECK(fabs(ea - eb) <= 1e-12 * ea);
    CHECK(shoal_dp_accountant_phase_count(b) == 2);
    /* σ = 0 phase: infinite RDP serialises as null and loads back */
    CHECK(shoal_dp_accountant_step(b, 0.1, 0.0, 1) == SHOAL_OK);
    CHECK(shoal_dp_accountant_save(b, path) == SHOAL_OK);
    shoal_dp_accountant *c;
    CHECK(shoal_dp_accountant_load(path, &c) == SHOAL_OK);
    CHECK(shoal_dp_accountant_epsilon(c, 1e-6, &eb, NULL) == SHOAL_OK);
    CHECK(isinf(eb));
    shoal_dp_accountant_free(a);
    shoal_dp_accountant_free(b);
    shoal_dp_accountant_free(c);
    shoal_dp_accountant_free(full);
}

static shoal_status load_str(const char *s) {
    json_t *j = NULL;
    shoal_dp_accountant *a = NULL;
    shoal_status st = shoal_json_load_buf(s, strlen(s), "test", &j);
    if (st == SHOAL_OK) st = shoal_dp_accountant_from_json(j, "test", &a);
    json_decref(j);
    shoal_dp_accountant_free(a);
    return st;
}

static void test_malformed_inline(void) {
    /* a valid document, then single edits of it */
    shoal_dp_accountant *a;
    CHECK(shoal_dp_accountant_init(&a, (const double[]){2.0, 8.0}, 2, 0) == SHOAL_OK);
    CHECK(shoal_dp_accountant_step(a, 0.1, 1.0, 10) == SHOAL_OK);
    json_t *j;
    CHECK(shoal_dp_accountant_to_json(a, &j) == SHOAL_OK);
    char *good = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK(load_str(good) == SHOAL_OK);
    json_object_set_new(j, "total_steps", json_integer(11));
    char *s = json_dumps(j, JSON_COMPACT);
    CHECK(load_str(s) == SHOAL_ERR_FORMAT);
    free(s);
    json_object_set_new(j, "total_steps", json_integer(10));
    json_array_set_new(json_object_get(j, "rdp"), 0, json_real(0.0001));
    s = json_dumps(j, JSON_COMPACT);
    CHECK(load_str(s) == SHOAL_ERR_FORMAT); /* edited ε */
    free(s);
    json_decref(j);
    free(good);
    shoal_dp_accountant_free(a);
    CHECK(load_str("[]") == SHOAL_ERR_FORMAT);
    CHECK(load_str("{}") == SHOAL_ERR_FORMAT);
    CHECK(load_str("{\"format\":\"shoal-dp-accountant\",\"version\":2}") == SHOAL_ERR_FORMAT);
}

/* Every file of the malformed corpus (also the fuzz seeds) is refused. */
static void test_malformed_corpus(void) {
    const char *src = getenv("SHOAL_SOURCE_DIR");
    if (!src) src = ".";
    const char *bad[] = {"bad_version.json",   "edited_rdp.json",       "order_one.json",
                         "phase_q_range.json", "phase_steps_zero.json", "missing_phases.json",
                         "rdp_length.json",    "too_many_orders.json",  "not_json.json",
                         "series_unknown.json"};
    for (int i = 0; i < 10; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/tests/data/privacy_state/%s", src, bad[i]);
        shoal_dp_accountant *a = NULL;
        shoal_status st = shoal_dp_accountant_load(p, &a);
        CHECK(st == SHOAL_ERR_FORMAT);
        if (st != SHOAL_ERR_FORMAT) fprintf(stderr, "  %s: %s\n", bad[i], shoal_status_str(st));
        CHECK(a == NULL);
    }
    char p[1024];
    snprintf(p, sizeof p, "%s/tests/data/privacy_state/good.json", src);
    shoal_dp_accountant *a = NULL;
    CHECK(shoal_dp_accountant_load(p, &a) == SHOAL_OK);
    double e;
    CHECK(a && shoal_dp_accountant_epsilon(a, 1e-5, &e, NULL) == SHOAL_OK && e > 0);
    shoal_dp_accountant_free(a);
}

int main(void) {
    TEST_RUN(test_compose);
    TEST_RUN(test_opacus_through_accountant);
    TEST_RUN(test_save_resume);
    TEST_RUN(test_malformed_inline);
    TEST_RUN(test_malformed_corpus);
    return TEST_EXIT();
}
