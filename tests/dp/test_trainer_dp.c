/* test_trainer_dp.c (integration): DP-SGD through the training loop (worker/train/trainer.h
 * with dp_clip > 0) on a tiny GPT and a small routing dataset prepared here with a test-only
 * byte encoder (as tests/train/test_trainer.c does). Checked: a DP run ends with finite losses
 * and shoal.json's "dp" object (σ, σ_eff, q, steps, δ, accountant version); its ε equals
 * `shoal privacy epsilon` (the CLI, run as a process) for the same (q, σ_eff, steps, δ); a run
 * stopped at step 3 and resumed ends with the same ε and accountant steps as one that never
 * stopped; a plan over the --dp-epsilon budget refuses to start and writes nothing; σ solved
 * for --dp-epsilon meets it; a checkpoint whose accountant state is missing is refused.
 */
#include <stdint.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/json.h"
#include "privacy/rdp.h"
#include "test.h"
#include "worker/model/gpt.h"
#include "worker/train/prepare.h"
#include "worker/train/trainer.h"

static shoal_status byte_encode(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n) {
    (void)ctx;
    *ids = malloc(len ? len * sizeof **ids : 1);
    if (!*ids) return SHOAL_ERR_NOMEM;
    for (size_t i = 0; i < len; i++)
        (*ids)[i] = (unsigned char)text[i];
    *n = len;
    return SHOAL_OK;
}

static char *tmp(const char *name) {
    static char buf[16][512];
    static int k;
    char *p = buf[k++ % 16];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    return p;
}

static const char *make_dataset(void) {
    static const char *routes[4] = {"pay", "post", "tech", "cash"};
    static const char *words[4] = {"invoice", "parcel", "crash", "refund"};
    char jsonl[512];
    snprintf(jsonl, sizeof jsonl, "%s/routing.jsonl", test_tmpdir());
    size_t cap = 300 * 96, len = 0;
    char *s = malloc(cap);
    uint64_t r = 777;
    for (int i = 0; i < 300; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        int c = (int)((r >> 33) % 4);
        len += (size_t)snprintf(s + len, cap - len,
                                "{\"prompt\":\"m: %s %d\\nr:\",\"completion\":\" %s\"}\n", words[c],
                                (int)((r >> 45) % 100), routes[c]);
    }
    CHECK_EQ_INT(shoal_file_write_atomic(jsonl, s, len), SHOAL_OK);
    free(s);
    const char *out = tmp("routing");
    shoal_text_encoder enc = {NULL, 257, 256, byte_encode};
    CHECK_EQ_INT(shoal_data_prepare(&(shoal_prepare_config){jsonl, out, 0.1, 3, 0}, &enc, NULL),
                 SHOAL_OK);
    return out;
}

static shoal_gpt *tiny_model(void) {
    shoal_gpt_config c = {2, 2, 32, 257, 64, 1e-5f};
    shoal_gpt *m = NULL;
    CHECK_EQ_INT(shoal_gpt_create(&c, &m), SHOAL_OK);
    if (!m) return NULL;
    CHECK_EQ_INT(shoal_gpt_set_threads(m, 2), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_init_random(m, 5), SHOAL_OK);
    return m;
}

static const char *data;

static void dp_config(shoal_trainer_config *c, const char *out) {
    shoal_trainer_config_default(c);
    c->data_dir = data;
    c->out_dir = out;
    c->B = 8;
    c->T = 32;
    c->steps = 6;
    c->lr = 1e-3;
    c->warmup_steps = 1;
    c->eval_batches = 2;
    c->eval_every = 0;
    c->ckpt_every = 3;
    c->dp_clip = 1.0;
    c->dp_noise = 1.1;
    c->dp_delta = 1e-4;
    c->dp_test_seed = 9;
}

/* The "dp" object of out/shoal.json (caller decrefs the root in *root). */
static json_t *read_dp(const char *out, json_t **root) {
    char path[600];
    snprintf(path, sizeof path, "%s/shoal.json", out);
    json_error_t e;
    *root = json_load_file(path, 0, &e);
    CHECK(*root != NULL);
    json_t *dp = *root ? json_object_get(*root, "dp") : NULL;
    CHECK(json_is_object(dp));
    return dp;
}

/* ε printed by `shoal privacy epsilon` for the same (q, σ_eff, steps, δ). */
static double cli_epsilon(double q, double sigma, long long steps, double delta) {
    const char *bin = getenv("SHOAL_BIN");
    if (!bin) return NAN;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s privacy epsilon --noise %.17g --sample-rate %.17g --steps %lld --delta %.17g", bin,
             sigma, q, steps, delta);
    FILE *p = popen(cmd, "r");
    if (!p) return NAN;
    double eps = NAN;
    char line[256];
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "epsilon: %lf", &eps) == 1) break;
    while (fgets(line, sizeof line, p)) {
    }
    pclose(p);
    return eps;
}

static double eps_a, q_a, sigma_eff_a;

static void test_dp_run(void) {
    shoal_gpt *m = tiny_model();
    if (!m) return;
    shoal_trainer_config c;
    const char *out = tmp("dp-a");
    dp_config(&c, out);
    c.progress = stderr;
    shoal_trainer_result r;
    CHECK_EQ_INT(shoal_trainer_run(m, &c, &r), SHOAL_OK);
    CHECK(isfinite(r.last_loss) && isfinite(r.first_loss));
    CHECK(r.dp_sigma == 1.1 && r.dp_q > 0 && r.dp_q < 1 && r.dp_epsilon > 0);
    json_t *root = NULL, *dp = read_dp(out, &root);
    double eps = json_real_value(json_object_get(dp, "epsilon"));
    double q = json_real_value(json_object_get(dp, "sample_rate"));
    double se = json_real_value(json_object_get(dp, "accounted_noise_multiplier"));
    CHECK(json_real_value(json_object_get(dp, "noise_multiplier")) == 1.1);
    CHECK(json_real_value(json_object_get(dp, "delta")) == 1e-4);
    CHECK(json_real_value(json_object_get(dp, "clip")) == 1.0);
    CHECK_EQ_INT(json_integer_value(json_object_get(dp, "steps")), 6);
    CHECK_STR(json_string_value(json_object_get(dp, "sampler")), "poisson");
    CHECK_STR(json_string_value(json_object_get(dp, "noise_mode")), "exact");
    json_t *acct = json_object_get(dp, "accountant");
    CHECK_EQ_INT(json_integer_value(json_object_get(acct, "version")), 1);
    CHECK(q == r.dp_q && se < 1.1 && se > 1.1 * (1 - 1e-4));
    double want = 0;
    CHECK(shoal_dp_epsilon(q, se, 6, 1e-4, &want, NULL) == SHOAL_OK);
    CHECK(eps == want && eps == r.dp_epsilon);
    double cli = cli_epsilon(q, se, 6, 1e-4);
    printf("  q %.6g sigma_eff %.9g: epsilon %.9g, shoal privacy epsilon %.6g\n", q, se, eps, cli);
    CHECK(fabs(cli - eps) <= 5e-6 * eps); /* the CLI prints 6 significant digits */
    eps_a = eps;
    q_a = q;
    sigma_eff_a = se;
    json_decref(root);
    shoal_gpt_free(m);
}

static void test_dp_resume(void) {
    shoal_gpt *m = tiny_model();
    if (!m) return;
    shoal_trainer_config c;
    const char *out = tmp("dp-b");
    dp_config(&c, out);
    c.stop_after = 3;
    shoal_trainer_result r;
    CHECK_EQ_INT(shoal_trainer_run(m, &c, &r), SHOAL_OK);
    CHECK_EQ_INT(r.end_step, 3);
    double eps3 = 0;
    CHECK(shoal_dp_epsilon(q_a, sigma_eff_a, 3, 1e-4, &eps3, NULL) == SHOAL_OK);
    CHECK(r.dp_epsilon == eps3);
    shoal_gpt_free(m);
    m = tiny_model();
    dp_config(&c, out);
    c.resume = 1;
    CHECK_EQ_INT(shoal_trainer_run(m, &c, &r), SHOAL_OK);
    CHECK_EQ_INT(r.start_step, 3);
    CHECK_EQ_INT(r.end_step, 6);
    json_t *root = NULL, *dp = read_dp(out, &root);
    CHECK_EQ_INT(json_integer_value(json_object_get(dp, "steps")), 6);
    printf("  resumed run: epsilon %.9g (uninterrupted %.9g, after 3 steps %.9g)\n",
           json_real_value(json_object_get(dp, "epsilon")), eps_a, eps3);
    CHECK(json_real_value(json_object_get(dp, "epsilon")) == eps_a);
    json_decref(root);
    shoal_gpt_free(m);

    /* a checkpoint without its accountant state is refused */
    char path[600];
    snprintf(path, sizeof path, "%s/checkpoints/step-00000006/dp_accountant.json", out);
    CHECK(unlink(path) == 0);
    m = tiny_model();
    dp_config(&c, out);
    c.resume = 1;
    c.steps = 9;
    CHECK(shoal_trainer_run(m, &c, &r) == SHOAL_ERR_FORMAT);
    shoal_gpt_free(m);
}

static void test_dp_budget(void) {
    shoal_gpt *m = tiny_model();
    if (!m) return;
    shoal_trainer_config c;
    const char *out = tmp("dp-budget");
    dp_config(&c, out);
    c.dp_epsilon = 0.05; /* far below what 6 steps at sigma 1.1 spend */
    shoal_trainer_result r;
    CHECK(shoal_trainer_run(m, &c, &r) == SHOAL_ERR_INVALID_ARG);
    CHECK(!shoal_path_exists(tmp("dp-budget/checkpoints")));
    /* sigma solved for the budget meets it */
    dp_config(&c, tmp("dp-solve"));
    c.dp_noise = 0;
    c.dp_epsilon = 4.0;
    CHECK_EQ_INT(shoal_trainer_run(m, &c, &r), SHOAL_OK);
    printf("  --dp-epsilon 4: sigma %.6f, final epsilon %.6f\n", r.dp_sigma, r.dp_epsilon);
    CHECK(r.dp_epsilon <= 4.0 && r.dp_epsilon > 3.99);
    /* DP flags without --dp-clip, or without delta, are refused */
    dp_config(&c, tmp("dp-bad"));
    c.dp_clip = 0;
    CHECK(shoal_trainer_run(m, &c, &r) == SHOAL_ERR_INVALID_ARG);
    dp_config(&c, tmp("dp-bad"));
    c.dp_delta = 0;
    CHECK(shoal_trainer_run(m, &c, &r) == SHOAL_ERR_INVALID_ARG);
    shoal_gpt_free(m);
}

int main(void) {
    data = make_dataset();
    TEST_RUN(test_dp_run);
    TEST_RUN(test_dp_resume);
    TEST_RUN(test_dp_budget);
    return TEST_EXIT();
}
