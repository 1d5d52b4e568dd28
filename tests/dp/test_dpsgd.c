/* test_dpsgd.c: the DP-SGD step (worker/train/dpsgd.h) on the tiny fixture model:
 * the Poisson sampler (rate, ascending indices, q = 1, a too-small buffer), the privatised
 * gradient = (Σ clip(g_b) + noise)/(q·N) against brute-force per-example clipping, with the
 * noise's std measured against σ·C, the accountant against shoal_dp_epsilon at σ_eff, the
 * refusal to report ε for a batch that was not Poisson-sampled, resume from saved accountant
 * state, solving σ for a target ε, and bad configurations.
 */
#include <string.h>

#include "privacy/clip.h"
#include "privacy/rdp.h"
#include "test.h"
#include "worker/model/gpt_dp.h"
#include "common/limits.h"
#include "worker/train/dpsgd.h"

static char tiny_dir[4096];

static shoal_gpt *load_tiny(void) {
    shoal_gpt *m = NULL;
    if (shoal_gpt_load_dir(tiny_dir, &m) != SHOAL_OK) {
        fprintf(stderr, "cannot load %s\n", tiny_dir);
        exit(2);
    }
    return m;
}

static void test_sampler(void) {
    shoal_gpt *m = load_tiny();
    shoal_dpsgd_config c;
    shoal_dpsgd_config_default(&c);
    c.n_examples = 10000;
    c.sample_rate = 0.05;
    c.test_seed = 3;
    shoal_dpsgd *dp = NULL;
    CHECK(shoal_dpsgd_init(&c, m, NULL, &dp) == SHOAL_OK);
    enum { DRAWS = 200, CAP = 2000 };
    uint64_t *idx = malloc(CAP * sizeof(uint64_t));
    unsigned *hits = calloc(c.n_examples, sizeof(unsigned));
    double total = 0.0, total_sq = 0.0;
    int ok_order = 1;
    for (int d = 0; d < DRAWS; d++) {
        size_t n = 0;
        CHECK(shoal_dpsgd_sample(dp, idx, CAP, &n) == SHOAL_OK);
        for (size_t i = 0; i < n; i++) {
            if (idx[i] >= c.n_examples || (i && idx[i] <= idx[i - 1]))
                ok_order = 0;
            else
                hits[idx[i]]++;
        }
        total += (double)n;
        total_sq += (double)n * n;
    }
    CHECK(ok_order);
    double mean = total / DRAWS, var = total_sq / DRAWS - mean * mean;
    printf("  batch size mean %.1f (expected 500), variance %.1f (expected 475)\n", mean, var);
    CHECK(fabs(mean - 500.0) < 4.0 * sqrt(475.0 / DRAWS)); /* 4 standard errors */
    CHECK(var > 475.0 * 0.7 && var < 475.0 * 1.3);
    /* inclusion is uniform over positions: first and last tenth of the set agree */
    double lo = 0, hi = 0;
    for (int i = 0; i < 1000; i++) {
        lo += hits[i];
        hi += hits[9000 + i];
    }
    CHECK(fabs(lo - hi) < 5.0 * sqrt(2.0 * 1000 * DRAWS * 0.05));
    size_t n = 0;
    CHECK(shoal_dpsgd_sample(dp, idx, 10, &n) == SHOAL_ERR_LIMIT);
    free(hits);
    free(idx);
    shoal_dpsgd_free(dp);
    /* q = 1 takes everything */
    c.n_examples = 37;
    c.sample_rate = 1.0;
    CHECK(shoal_dpsgd_init(&c, m, NULL, &dp) == SHOAL_OK);
    uint64_t all[64];
    CHECK(shoal_dpsgd_sample(dp, all, 64, &n) == SHOAL_OK);
    CHECK_EQ_INT(n, 37);
    CHECK(all[0] == 0 && all[36] == 36);
    shoal_dpsgd_free(dp);
    shoal_gpt_free(m);
}

enum { N_EX = 40, T = 24 };

static void make_data(int V, int32_t *tok, int32_t *tgt, uint8_t *mask) {
    uint64_t s = 99;
    for (int i = 0; i < N_EX * T; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((s >> 33) % (uint64_t)V);
        tgt[i] = (int32_t)((s >> 13) % (uint64_t)V);
        mask[i] = (uint8_t)((s >> 7) % 5 != 0);
    }
}

static void test_step(void) {
    shoal_gpt *m = load_tiny();
    CHECK(shoal_gpt_set_threads(m, 2) == SHOAL_OK);
    int V = shoal_gpt_cfg(m)->vocab_size;
    size_t P = shoal_gpt_num_params(m);
    static int32_t tok[N_EX * T], tgt[N_EX * T], btok[N_EX * T], btgt[N_EX * T];
    static uint8_t mask[N_EX * T], bmask[N_EX * T];
    make_data(V, tok, tgt, mask);

    shoal_dpsgd_config c;
    shoal_dpsgd_config_default(&c);
    c.n_examples = N_EX;
    c.sample_rate = 0.25;
    c.clip = 5.0; /* between the examples' norms: some clipped, some not */
    c.noise = 0.8;
    c.micro_batch = 3; /* several micro-batches per step */
    c.test_seed = 11;
    shoal_dpsgd *dp = NULL;
    CHECK(shoal_dpsgd_init(&c, m, NULL, &dp) == SHOAL_OK);
    uint64_t idx[N_EX];
    size_t n = 0;
    CHECK(shoal_dpsgd_sample(dp, idx, N_EX, &n) == SHOAL_OK);
    CHECK(n > 3);
    for (size_t i = 0; i < n; i++) {
        memcpy(btok + i * T, tok + idx[i] * T, T * sizeof(int32_t));
        memcpy(btgt + i * T, tgt + idx[i] * T, T * sizeof(int32_t));
        memcpy(bmask + i * T, mask + idx[i] * T, T);
    }
    /* brute force: per-example gradients, clipped and summed */
    float *g = malloc(n * P * sizeof(float)), *ref = calloc(P, sizeof(float));
    for (size_t b = 0; b < n; b++) {
        shoal_gpt_zero_grad(m);
        CHECK(shoal_gpt_forward(m, btok + b * T, btgt + b * T, bmask + b * T, 1, T, NULL) ==
              SHOAL_OK);
        CHECK(shoal_gpt_backward(m) == SHOAL_OK);
        memcpy(g + b * P, shoal_gpt_grads(m), P * sizeof(float));
    }
    size_t n_clipped = 0;
    CHECK(shoal_dp_clip_sum(g, n, P, c.clip, ref, &n_clipped) == SHOAL_OK);

    shoal_dpsgd_step_info info;
    CHECK(shoal_dpsgd_step(dp, m, btok, btgt, bmask, n, T, &info) == SHOAL_OK);
    CHECK_EQ_INT(info.batch, n);
    CHECK_EQ_INT(info.clipped, n_clipped);
    CHECK(n_clipped > 0 && n_clipped < n);
    /* noise = got·qN - Σ clip: mean 0, std σC */
    const float *got = shoal_gpt_grads(m);
    double qN = c.sample_rate * N_EX, s1 = 0, s2 = 0;
    for (size_t i = 0; i < P; i++) {
        double z = (double)got[i] * qN - ref[i];
        s1 += z;
        s2 += z * z;
    }
    double mean = s1 / P, sd = sqrt(s2 / P - mean * mean);
    printf("  %zu examples, %zu clipped; noise mean %.2e sd %.5f (sigma*C = %.5f)\n", n, n_clipped,
           mean, sd, c.noise * c.clip);
    CHECK(fabs(mean) < 5.0 * c.noise * c.clip / sqrt((double)P));
    CHECK(fabs(sd / (c.noise * c.clip) - 1.0) < 0.02);
    double eps = 0, want = 0;
    CHECK(shoal_dpsgd_epsilon(dp, &eps, NULL) == SHOAL_OK);
    CHECK(shoal_dp_epsilon(c.sample_rate, shoal_dpsgd_accounted_noise(dp), 1, c.delta, &want,
                           NULL) == SHOAL_OK);
    CHECK(eps == want && info.epsilon == want);
    CHECK(shoal_dpsgd_accounted_noise(dp) < c.noise &&
          shoal_dpsgd_accounted_noise(dp) > c.noise * (1 - 1e-4));

    /* the same step without noise equals the brute-force clipped sum / qN: tiny sigma */
    shoal_dpsgd_config c0 = c;
    c0.noise = 1e-9;
    shoal_dpsgd *dp0 = NULL;
    CHECK(shoal_dpsgd_init(&c0, m, NULL, &dp0) == SHOAL_OK);
    CHECK(shoal_dpsgd_step(dp0, m, btok, btgt, bmask, n, T, NULL) == SHOAL_OK);
    double dn = 0, rn = 0;
    for (size_t i = 0; i < P; i++) {
        double z = (double)got[i] * qN - ref[i];
        dn += z * z;
        rn += (double)ref[i] * ref[i];
    }
    printf("  noise-free step vs brute force: relative error %.2e\n", sqrt(dn / rn));
    CHECK(sqrt(dn / rn) < 1e-5);
    /* that step was not drawn by the sampler: epsilon is refused from then on */
    CHECK(shoal_dpsgd_epsilon(dp0, &eps, NULL) == SHOAL_ERR_UNSUPPORTED);
    json_t *prov = NULL;
    CHECK(shoal_dpsgd_provenance(dp0, &prov) == SHOAL_OK);
    CHECK(json_is_null(json_object_get(prov, "epsilon")));
    CHECK_STR(json_string_value(json_object_get(prov, "sampler")), "not poisson");
    json_decref(prov);
    shoal_dpsgd_free(dp0);

    /* an empty batch: the update is noise only, and the step counts */
    CHECK(shoal_dpsgd_sample(dp, idx, N_EX, &n) == SHOAL_OK);
    if (n == 0) {
        CHECK(shoal_dpsgd_step(dp, m, NULL, NULL, NULL, 0, T, &info) == SHOAL_OK);
    } else {
        CHECK(shoal_dpsgd_step(dp, m, btok, btgt, bmask, n, T, &info) == SHOAL_OK);
    }
    /* a mismatched count is not Poisson */
    CHECK(shoal_dpsgd_sample(dp, idx, N_EX, &n) == SHOAL_OK);
    json_t *state = NULL;
    CHECK(shoal_dp_accountant_to_json(shoal_dpsgd_accountant(dp), &state) == SHOAL_OK);
    CHECK(shoal_dpsgd_provenance(dp, &prov) == SHOAL_OK);
    CHECK_EQ_INT(json_integer_value(json_object_get(prov, "steps")), 2);
    CHECK(json_is_real(json_object_get(prov, "epsilon")));
    json_decref(prov);
    CHECK(shoal_dpsgd_step(dp, m, btok, btgt, bmask, n + 1 <= N_EX ? n + 1 : n - 1, T, NULL) ==
          SHOAL_OK);
    CHECK(shoal_dpsgd_epsilon(dp, &eps, NULL) == SHOAL_ERR_UNSUPPORTED);
    shoal_dpsgd_free(dp);

    /* resume: a new object continues the saved accountant */
    shoal_dp_accountant *acct = NULL;
    CHECK(shoal_dp_accountant_from_json(state, "state", &acct) == SHOAL_OK);
    json_decref(state);
    CHECK(shoal_dpsgd_init(&c, m, acct, &dp) == SHOAL_OK);
    CHECK(shoal_dpsgd_sample(dp, idx, N_EX, &n) == SHOAL_OK);
    CHECK(shoal_dpsgd_step(dp, m, btok, btgt, bmask, n, T, &info) == SHOAL_OK);
    CHECK(shoal_dp_epsilon(c.sample_rate, shoal_dpsgd_accounted_noise(dp), 3, c.delta, &want,
                           NULL) == SHOAL_OK);
    CHECK(shoal_dpsgd_epsilon(dp, &eps, NULL) == SHOAL_OK);
    CHECK_NEAR(eps, want, 1e-12);
    CHECK_EQ_INT(shoal_dp_accountant_total_steps(shoal_dpsgd_accountant(dp)), 3);
    shoal_dpsgd_free(dp);
    free(ref);
    free(g);
    shoal_gpt_free(m);
}

/* Noise drawn ahead (on threads of its own, during the clipping pass) is the same draw as noise
 * drawn after it: bit-identical updates from the same seeds, both modes; every step's noise is
 * fresh (two steps on the same batch differ by a noise of std sqrt(2)·σC). */
static void test_noise_ahead(void) {
    shoal_gpt *m = load_tiny();
    CHECK(shoal_gpt_set_threads(m, 2) == SHOAL_OK);
    int V = shoal_gpt_cfg(m)->vocab_size;
    size_t P = shoal_gpt_num_params(m);
    static int32_t tok[N_EX * T], tgt[N_EX * T];
    static uint8_t mask[N_EX * T];
    make_data(V, tok, tgt, mask);
    float *a = malloc(P * sizeof(float)), *b = malloc(P * sizeof(float));
    for (int mode = 0; mode < 2; mode++) {
        shoal_dpsgd_config c;
        shoal_dpsgd_config_default(&c);
        c.n_examples = N_EX;
        c.sample_rate = 0.5;
        c.noise_mode = mode ? SHOAL_DP_NOISE_FAST : SHOAL_DP_NOISE_EXACT;
        c.noise_threads = 3; /* uneven slices */
        c.micro_batch = 4;
        c.test_seed = 21;
        shoal_dpsgd *d1 = NULL, *d2 = NULL;
        c.noise_draw = SHOAL_DP_DRAW_AFTER;
        CHECK(shoal_dpsgd_init(&c, m, NULL, &d1) == SHOAL_OK);
        c.noise_draw = SHOAL_DP_DRAW_AHEAD;
        CHECK(shoal_dpsgd_init(&c, m, NULL, &d2) == SHOAL_OK);
        CHECK(!shoal_dpsgd_draws_ahead(d1) && shoal_dpsgd_draws_ahead(d2));
        CHECK(shoal_dpsgd_step(d1, m, tok, tgt, mask, 6, T, NULL) == SHOAL_OK);
        memcpy(a, shoal_gpt_grads(m), P * sizeof(float));
        CHECK(shoal_dpsgd_step(d2, m, tok, tgt, mask, 6, T, NULL) == SHOAL_OK);
        memcpy(b, shoal_gpt_grads(m), P * sizeof(float));
        CHECK(memcmp(a, b, P * sizeof(float)) == 0);
        /* the next step draws new noise */
        CHECK(shoal_dpsgd_step(d2, m, tok, tgt, mask, 6, T, NULL) == SHOAL_OK);
        const float *g = shoal_gpt_grads(m);
        double qN = c.sample_rate * N_EX, s2 = 0;
        for (size_t i = 0; i < P; i++) {
            double z = ((double)g[i] - b[i]) * qN;
            s2 += z * z;
        }
        double sd = sqrt(s2 / P) / sqrt(2.0);
        printf("  %s: ahead == after; step-to-step noise sd %.4f (sigma*C %.4f)\n",
               shoal_dp_noise_mode_name(c.noise_mode), sd, c.noise * c.clip);
        CHECK(fabs(sd / (c.noise * c.clip) - 1.0) < 0.02);
        shoal_dpsgd_free(d1);
        shoal_dpsgd_free(d2);
    }
    free(a);
    free(b);
    shoal_gpt_free(m);
}

static void test_plan_and_bad_config(void) {
    shoal_gpt *m = load_tiny();
    uint64_t d = shoal_gpt_num_params(m);
    double sigma = 0, eps = 0;
    CHECK(shoal_dpsgd_noise_for_epsilon(3.0, 0.01, d, 1000, 1e-5, &sigma) == SHOAL_OK);
    CHECK(shoal_dpsgd_plan_epsilon(NULL, 0.01, sigma, d, 1000, 1e-5, &eps) == SHOAL_OK);
    CHECK(eps <= 3.0 && eps > 2.99);
    CHECK(shoal_dpsgd_plan_epsilon(NULL, 0.01, sigma * 0.999, d, 1000, 1e-5, &eps) == SHOAL_OK);
    CHECK(eps > 3.0);
    printf("  sigma for eps 3 (q 0.01, 1000 steps, delta 1e-5): %.6f\n", sigma);

    shoal_dpsgd_config c;
    shoal_dpsgd *dp = NULL;
    double bad_clip[] = {0.0, -1.0, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        shoal_dpsgd_config_default(&c);
        c.clip = bad_clip[i];
        CHECK(shoal_dpsgd_init(&c, m, NULL, &dp) == SHOAL_ERR_INVALID_ARG && dp == NULL);
    }
    shoal_dpsgd_config_default(&c);
    c.noise = 0.0;
    CHECK(shoal_dpsgd_init(&c, m, NULL, &dp) == SHOAL_ERR_INVALID_ARG);
    shoal_dpsgd_config_default(&c);
    c.sample_rate = 1.5;
    CHECK(shoal_dpsgd_init(&c, m, NULL, &dp) == SHOAL_ERR_INVALID_ARG);
    shoal_dpsgd_config_default(&c);
    c.delta = 1.0;
    CHECK(shoal_dpsgd_init(&c, m, NULL, &dp) == SHOAL_ERR_INVALID_ARG);
    shoal_dpsgd_config_default(&c);
    c.n_examples = 0;
    CHECK(shoal_dpsgd_init(&c, m, NULL, &dp) == SHOAL_ERR_INVALID_ARG);
    shoal_dpsgd_config_default(&c);
    c.micro_batch = 0;
    CHECK(shoal_dpsgd_init(&c, m, NULL, &dp) == SHOAL_ERR_INVALID_ARG);
    /* a passed accountant is freed on error too (ASan checks) */
    shoal_dp_accountant *acct = NULL;
    CHECK(shoal_dp_accountant_init(&acct, NULL, 0, SHOAL_DP_SERIES_MAGNITUDE) == SHOAL_OK);
    CHECK(shoal_dpsgd_init(&c, m, acct, &dp) == SHOAL_ERR_INVALID_ARG);
    shoal_dpsgd_config_default(&c);
    c.noise_draw = (shoal_dpsgd_draw)7;
    CHECK(shoal_dpsgd_init(&c, m, NULL, &dp) == SHOAL_ERR_INVALID_ARG && dp == NULL);
    /* AUTO draws after when the drawing threads would have no CPU of their own: more noise
     * threads than any machine here has CPUs beside the model's */
    shoal_dpsgd_config_default(&c);
    c.noise_threads = SHOAL_MAX_DP_NOISE_THREADS;
    c.test_seed = 3;
    CHECK(shoal_dpsgd_init(&c, m, NULL, &dp) == SHOAL_OK && !shoal_dpsgd_draws_ahead(dp));
    shoal_dpsgd_free(dp);
    dp = NULL;
    shoal_gpt_free(m);
}

int main(void) {
    const char *src = getenv("SHOAL_SOURCE_DIR");
    snprintf(tiny_dir, sizeof tiny_dir, "%s/tests/data/model/gpt2_tiny", src ? src : ".");
    TEST_RUN(test_sampler);
    TEST_RUN(test_step);
    TEST_RUN(test_noise_ahead);
    TEST_RUN(test_plan_and_bad_config);
    return TEST_EXIT();
}
