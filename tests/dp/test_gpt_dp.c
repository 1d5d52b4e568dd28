/* test_gpt_dp.c: per-example gradient norms and ghost clipping (worker/model/gpt_dp.h) against
 * brute force: B separate forward/backward passes of one example each on the tiny fixture model
 * (tests/data/model/gpt2_tiny, tied lm_head/wte), with a loss mask, ignored targets, repeated
 * tokens (several wte rows gathered from one example) and an example that counts no token.
 * Norms must agree to 1e-5 relative in every norm mode; the clipped sum Σ c_b g_b to 1e-5 of
 * its norm; misuse (wrong call order) is refused.
 */
#include <string.h>

#include "privacy/clip.h"
#include "test.h"
#include "worker/model/gpt_dp.h"

static char tiny_dir[4096];

enum { B = 5, T = 33 };

static shoal_gpt *load_tiny(void) {
    shoal_gpt *m = NULL;
    if (shoal_gpt_load_dir(tiny_dir, &m) != SHOAL_OK) {
        fprintf(stderr, "cannot load %s\n", tiny_dir);
        exit(2);
    }
    return m;
}

static uint64_t rs = 12345;
static uint32_t rnd(void) {
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rs >> 33);
}

static void make_batch(int V, int32_t *tok, int32_t *tgt, uint8_t *mask) {
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int32_t)(rnd() % (uint32_t)V);
        tgt[i] = (int32_t)(rnd() % (uint32_t)V);
        mask[i] = (uint8_t)(rnd() % 4 != 0);
    }
    for (int t = 0; t < T; t++)
        tok[1 * T + t] = (int32_t)(t % 3); /* many repeated rows */
    for (int t = 0; t < T / 2; t++)
        mask[2 * T + t] = 0; /* a prompt-style mask */
    tgt[2 * T + T - 1] = -1; /* ignored target */
    for (int t = 0; t < T; t++)
        mask[3 * T + t] = 0; /* counts no token */
    /* example 4: a target equal to an input token of the same example (cross term) */
    tgt[4 * T + 5] = tok[4 * T + 9];
}

/* Brute force: per-example gradients g (B, P) and their norms. */
static void brute(shoal_gpt *m, const int32_t *tok, const int32_t *tgt, const uint8_t *mask,
                  float *g, double *norms) {
    size_t P = shoal_gpt_num_params(m);
    for (int b = 0; b < B; b++) {
        shoal_gpt_zero_grad(m);
        float loss;
        shoal_status st = shoal_gpt_forward(m, tok + b * T, tgt + b * T, mask + b * T, 1, T, &loss);
        if (st == SHOAL_OK) {
            CHECK(shoal_gpt_backward(m) == SHOAL_OK);
        } else {
            CHECK(b == 3); /* only the all-masked example has no loss */
        }
        memcpy(g + (size_t)b * P, shoal_gpt_grads(m), P * sizeof(float));
        CHECK(shoal_dp_l2_norm(g + (size_t)b * P, P, &norms[b]) == SHOAL_OK);
    }
}

static void test_norms_and_clipping(void) {
    shoal_gpt *m = load_tiny();
    CHECK(shoal_gpt_set_threads(m, 2) == SHOAL_OK);
    int V = shoal_gpt_cfg(m)->vocab_size;
    size_t P = shoal_gpt_num_params(m);
    int32_t tok[B * T], tgt[B * T];
    uint8_t mask[B * T];
    make_batch(V, tok, tgt, mask);
    float *g = malloc((size_t)B * P * sizeof(float));
    float *ref = calloc(P, sizeof(float));
    double ref_norms[B];
    brute(m, tok, tgt, mask, g, ref_norms);
    CHECK(ref_norms[3] == 0.0);
    for (int b = 0; b < B; b++)
        CHECK(b == 3 || ref_norms[b] > 0.0);

    shoal_gpt_norm_mode modes[] = {SHOAL_GPT_NORM_AUTO, SHOAL_GPT_NORM_GHOST,
                                   SHOAL_GPT_NORM_MATERIALISE};
    for (int mi = 0; mi < 3; mi++) {
        double norms[B];
        float loss;
        CHECK(shoal_gpt_forward(m, tok, tgt, mask, B, T, &loss) == SHOAL_OK);
        CHECK(shoal_gpt_per_example_grad_norms_ex(m, modes[mi], norms) == SHOAL_OK);
        double worst = 0.0;
        for (int b = 0; b < B; b++) {
            double rel = fabs(norms[b] - ref_norms[b]) / (ref_norms[b] > 0 ? ref_norms[b] : 1.0);
            if (rel > worst) worst = rel;
            CHECK(rel <= 1e-5);
        }
        printf("  mode %d: worst relative norm error %.2e (norms %.4f %.4f %.4f %.4f %.4f)\n", mi,
               worst, norms[0], norms[1], norms[2], norms[3], norms[4]);

        /* clip at a norm between the examples' so that some are clipped and some are not */
        double Cn = (ref_norms[0] + ref_norms[1] + ref_norms[2]) / 3.0;
        float f[B];
        size_t n_clipped = 0;
        CHECK(shoal_dp_clip_factors(norms, B, Cn, f, &n_clipped) == SHOAL_OK);
        CHECK(n_clipped >= 1 && n_clipped < B);
        shoal_gpt_zero_grad(m);
        CHECK(shoal_gpt_dp_backward_weighted(m, f) == SHOAL_OK);
        memset(ref, 0, P * sizeof(float));
        for (int b = 0; b < B; b++)
            for (size_t i = 0; i < P; i++)
                ref[i] += f[b] * g[(size_t)b * P + i];
        double dn = 0.0, rn = 0.0;
        const float *got = shoal_gpt_grads(m);
        for (size_t i = 0; i < P; i++) {
            dn += ((double)got[i] - ref[i]) * ((double)got[i] - ref[i]);
            rn += (double)ref[i] * ref[i];
        }
        printf("  mode %d: clipped sum relative error %.2e (||sum|| %.4f, %zu of %d clipped)\n", mi,
               sqrt(dn / rn), sqrt(rn), n_clipped, B);
        CHECK(sqrt(dn / rn) <= 1e-5);
        /* each clipped example's contribution is within C */
        for (int b = 0; b < B; b++)
            CHECK(f[b] * norms[b] <= Cn * (1 + 1e-6));
    }
    free(ref);
    free(g);
    shoal_gpt_free(m);
}

static void test_misuse(void) {
    shoal_gpt *m = load_tiny();
    int V = shoal_gpt_cfg(m)->vocab_size;
    int32_t tok[B * T], tgt[B * T];
    uint8_t mask[B * T];
    make_batch(V, tok, tgt, mask);
    double norms[B];
    float f[B] = {1, 1, 1, 1, 1};
    CHECK(shoal_gpt_per_example_grad_norms(m, norms) == SHOAL_ERR_INVALID_ARG); /* no forward */
    CHECK(shoal_gpt_dp_backward_weighted(m, f) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_gpt_forward(m, tok, NULL, NULL, B, T, NULL) == SHOAL_OK); /* no targets */
    CHECK(shoal_gpt_per_example_grad_norms(m, norms) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_gpt_forward(m, tok, tgt, mask, B, T, NULL) == SHOAL_OK);
    CHECK(shoal_gpt_per_example_grad_norms(m, NULL) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_gpt_per_example_grad_norms_ex(m, (shoal_gpt_norm_mode)7, norms) ==
          SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_gpt_per_example_grad_norms(m, norms) == SHOAL_OK);
    CHECK(shoal_gpt_per_example_grad_norms(m, norms) == SHOAL_ERR_INVALID_ARG); /* consumed */
    CHECK(shoal_gpt_backward(m) == SHOAL_ERR_INVALID_ARG);
    float bad[B] = {1, NAN, 1, 1, 1};
    CHECK(shoal_gpt_dp_backward_weighted(m, bad) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_gpt_dp_backward_weighted(m, f) == SHOAL_OK);
    CHECK(shoal_gpt_dp_backward_weighted(m, f) == SHOAL_ERR_INVALID_ARG); /* once */
    /* a new forward invalidates a pending weighted backward */
    CHECK(shoal_gpt_forward(m, tok, tgt, mask, B, T, NULL) == SHOAL_OK);
    CHECK(shoal_gpt_per_example_grad_norms(m, norms) == SHOAL_OK);
    CHECK(shoal_gpt_forward(m, tok, NULL, NULL, B, T, NULL) == SHOAL_OK);
    CHECK(shoal_gpt_dp_backward_weighted(m, f) == SHOAL_ERR_INVALID_ARG);
    shoal_gpt_free(m);
}

int main(void) {
    const char *src = getenv("SHOAL_SOURCE_DIR");
    snprintf(tiny_dir, sizeof tiny_dir, "%s/tests/data/model/gpt2_tiny", src ? src : ".");
    TEST_RUN(test_norms_and_clipping);
    TEST_RUN(test_misuse);
    return TEST_EXIT();
}
