/* test_trainer.c: the training loop (worker/train/trainer.h) on a tiny GPT (2 layers, 2 heads,
 * 32 channels, byte vocabulary 257) and a small routing dataset prepared here with a test-only
 * byte encoder. Checked: the loss falls (train and validation); a run stopped at step 6 and
 * resumed into a model initialised differently ends bit-identical to an uninterrupted run;
 * grad_accum=2 at B equals accum 1 at 2B (equal token counts); checkpoints from another
 * model, geometry or a damaged file are refused and leave the model untouched; the final HF
 * directory carries provenance. */
#include <stdint.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/json.h"
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

/* 400 examples: "m: <w1> <w2>\nr:" -> " <route>", the route a function of w1. text=1 makes
 * {"text"} documents instead (all trained on). */
static const char *make_dataset(const char *name, int text) {
    static const char *words[4][5] = {{"bill", "charge", "invoice", "paid", "card"},
                                      {"ship", "parcel", "late", "track", "box"},
                                      {"login", "crash", "error", "app", "bug"},
                                      {"refund", "money", "back", "return", "repay"}};
    static const char *routes[4] = {"pay", "post", "tech", "cash"};
    static const char *tail[6] = {"now", "pls", "today", "help", "again", "ok"};
    char jsonl[512];
    snprintf(jsonl, sizeof jsonl, "%s/%s.jsonl", test_tmpdir(), name);
    size_t cap = 400 * 96, len = 0;
    char *s = malloc(cap);
    uint64_t r = 12345;
    for (int i = 0; i < 400; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        int c = (int)((r >> 33) % 4), w = (int)((r >> 40) % 5), t = (int)((r >> 50) % 6);
        if (text)
            len += (size_t)snprintf(s + len, cap - len, "{\"text\":\"m: %s %s r: %s\"}\n",
                                    words[c][w], tail[t], routes[c]);
        else
            len += (size_t)snprintf(s + len, cap - len,
                                    "{\"prompt\":\"m: %s %s\\nr:\",\"completion\":\" %s\"}\n",
                                    words[c][w], tail[t], routes[c]);
    }
    CHECK_EQ_INT(shoal_file_write_atomic(jsonl, s, len), SHOAL_OK);
    free(s);
    const char *out = tmp(name);
    shoal_text_encoder enc = {NULL, 257, 256, byte_encode};
    CHECK_EQ_INT(shoal_data_prepare(&(shoal_prepare_config){jsonl, out, 0.1, 3, 0}, &enc, NULL),
                 SHOAL_OK);
    return out;
}

static shoal_gpt *tiny_model(int n_embd, uint64_t seed) {
    shoal_gpt_config c = {2, 2, n_embd, 257, 64, 1e-5f};
    shoal_gpt *m = NULL;
    CHECK_EQ_INT(shoal_gpt_create(&c, &m), SHOAL_OK);
    if (!m) return NULL;
    CHECK_EQ_INT(shoal_gpt_set_threads(m, 1), SHOAL_OK); /* bit-exact comparisons */
    CHECK_EQ_INT(shoal_gpt_init_random(m, seed), SHOAL_OK);
    return m;
}

static void base_config(shoal_trainer_config *c, const char *data, const char *out) {
    shoal_trainer_config_default(c);
    c->data_dir = data;
    c->out_dir = out;
    c->B = 8;
    c->T = 32;
    c->lr = 3e-3;
    c->warmup_steps = 5;
    c->eval_batches = 0;
    c->save_model = 0;
}

static const char *routing;

static void test_loss_falls(void) {
    shoal_gpt *m = tiny_model(32, 1);
    if (!m) return;
    shoal_trainer_config c;
    base_config(&c, routing, tmp("run-falls"));
    c.steps = 120;
    c.eval_every = 60;
    c.save_model = 1;
    c.progress = stderr; /* the bar as a user sees it (plain lines when not a TTY) */
    shoal_trainer_result r;
    CHECK_EQ_INT(shoal_trainer_run(m, &c, &r), SHOAL_OK);
    fprintf(stderr, "  train loss %.3f -> %.3f, val loss %.3f -> %.3f, %.0f tok/s\n", r.first_loss,
            r.last_loss, r.first_val_loss, r.val_loss, r.tokens_per_s);
    CHECK_EQ_INT(r.start_step, 0);
    CHECK_EQ_INT(r.end_step, 120);
    CHECK(r.first_loss > 4.5f);               /* about ln(257) = 5.55 at init */
    CHECK(r.last_loss < 0.5f * r.first_loss); /* it learned */
    CHECK(r.val_loss < 0.4f * r.first_loss);
    CHECK(r.val_loss <= r.first_val_loss);
    /* the HF directory and its provenance */
    char p[1024];
    snprintf(p, sizeof p, "%s/model.safetensors", c.out_dir);
    CHECK(shoal_path_exists(p));
    snprintf(p, sizeof p, "%s/checkpoints/step-00000120/trainer.safetensors", c.out_dir);
    CHECK(shoal_path_exists(p));
    snprintf(p, sizeof p, "%s/checkpoints/step-00000120/DONE", c.out_dir);
    CHECK(shoal_path_exists(p));
    char found[1024];
    CHECK_EQ_INT(shoal_trainer_find_checkpoint(c.out_dir, found, sizeof found), SHOAL_OK);
    CHECK(strstr(found, "step-00000120") != NULL);
    snprintf(p, sizeof p, "%s/shoal.json", c.out_dir);
    json_t *prov = NULL;
    CHECK_EQ_INT(shoal_json_load_file(p, &prov), SHOAL_OK);
    if (prov) {
        CHECK(json_object_get(prov, "data_sha256") != NULL ||
              json_object_get(json_object_get(prov, "provenance"), "data_sha256") != NULL);
        json_decref(prov);
    }
    shoal_gpt_free(m);
}

static void test_exact_resume(void) {
    shoal_trainer_config c;
    shoal_trainer_result r;
    shoal_gpt *a = tiny_model(32, 5), *b = tiny_model(32, 5), *b2 = tiny_model(32, 99);
    if (!a || !b || !b2) goto done;
    base_config(&c, routing, tmp("run-a"));
    c.steps = 12;
    c.eval_every = 4;
    CHECK_EQ_INT(shoal_trainer_run(a, &c, &r), SHOAL_OK);

    base_config(&c, routing, tmp("run-b"));
    c.steps = 12;
    c.eval_every = 4;
    c.stop_after = 6;
    CHECK_EQ_INT(shoal_trainer_run(b, &c, &r), SHOAL_OK);
    CHECK_EQ_INT(r.end_step, 6);
    size_t n = shoal_gpt_num_params(a);
    CHECK(memcmp(shoal_gpt_params(a), shoal_gpt_params(b), n * sizeof(float)) != 0);
    c.stop_after = 0;
    c.resume = 1;
    CHECK_EQ_INT(shoal_trainer_run(b2, &c, &r), SHOAL_OK); /* another init: overwritten */
    CHECK_EQ_INT(r.start_step, 6);
    CHECK_EQ_INT(r.end_step, 12);
    CHECK(memcmp(shoal_gpt_params(a), shoal_gpt_params(b2), n * sizeof(float)) == 0);

    /* resuming a finished run does nothing more */
    CHECK_EQ_INT(shoal_trainer_run(b2, &c, &r), SHOAL_OK);
    CHECK_EQ_INT(r.start_step, 12);
    CHECK(memcmp(shoal_gpt_params(a), shoal_gpt_params(b2), n * sizeof(float)) == 0);

    /* refused: other geometry, other model, damaged file; the model is left as it was */
    float *before = malloc(n * sizeof(float));
    memcpy(before, shoal_gpt_params(b), n * sizeof(float));
    c.T = 16;
    CHECK_EQ_INT(shoal_trainer_run(b, &c, &r), SHOAL_ERR_INVALID_ARG);
    c.T = 32;
    c.seed = 2;
    CHECK_EQ_INT(shoal_trainer_run(b, &c, &r), SHOAL_ERR_INVALID_ARG);
    c.seed = 1;
    CHECK(memcmp(before, shoal_gpt_params(b), n * sizeof(float)) == 0);
    shoal_gpt *other = tiny_model(48, 5);
    CHECK_EQ_INT(shoal_trainer_run(other, &c, &r), SHOAL_ERR_INVALID_ARG);
    shoal_gpt_free(other);
    char ck[1024];
    snprintf(ck, sizeof ck, "%s/checkpoints/step-00000012/trainer.safetensors", c.out_dir);
    char *buf = NULL;
    size_t len = 0;
    CHECK_EQ_INT(shoal_file_read(ck, 1u << 30, &buf, &len), SHOAL_OK);
    if (buf) {
        CHECK_EQ_INT(shoal_file_write_atomic(ck, buf, len - 7), SHOAL_OK);
        CHECK_EQ_INT(shoal_trainer_run(b, &c, &r), SHOAL_ERR_FORMAT);
        CHECK(memcmp(before, shoal_gpt_params(b), n * sizeof(float)) == 0);
        free(buf);
    }
    free(before);
    {   /* a directory without DONE (a rank died while writing) is never picked */
        char inc[1024], found[1024];
        snprintf(inc, sizeof inc, "%s/checkpoints/step-00000099", c.out_dir);
        CHECK_EQ_INT(shoal_mkdir_p(inc), SHOAL_OK);
        CHECK_EQ_INT(shoal_trainer_find_checkpoint(c.out_dir, found, sizeof found), SHOAL_OK);
        CHECK(strstr(found, "step-00000012") != NULL);
        CHECK_EQ_INT(shoal_trainer_find_checkpoint(tmp("none"), found, sizeof found),
                     SHOAL_ERR_NOT_FOUND);
        c.resume_from = inc; /* named explicitly: refused */
        CHECK_EQ_INT(shoal_trainer_run(b, &c, &r), SHOAL_ERR_NOT_FOUND);
        c.resume_from = NULL;
    }
done:
    shoal_gpt_free(a);
    shoal_gpt_free(b);
    shoal_gpt_free(b2);
}

/* With every token trained on, accumulating two micro-batches of B equals one batch of 2B. */
static void test_grad_accumulation(void) {
    const char *text = make_dataset("text", 1);
    shoal_gpt *a = tiny_model(32, 7), *b = tiny_model(32, 7);
    if (!a || !b) goto done;
    shoal_trainer_config c;
    base_config(&c, text, tmp("acc-a"));
    c.steps = 5;
    c.eval_every = 0;
    c.B = 8;
    c.grad_accum = 1;
    CHECK_EQ_INT(shoal_trainer_run(a, &c, NULL), SHOAL_OK);
    base_config(&c, text, tmp("acc-b"));
    c.steps = 5;
    c.eval_every = 0;
    c.B = 4;
    c.grad_accum = 2;
    CHECK_EQ_INT(shoal_trainer_run(b, &c, NULL), SHOAL_OK);
    size_t n = shoal_gpt_num_params(a);
    const float *pa = shoal_gpt_params(a), *pb = shoal_gpt_params(b);
    double worst = 0, moved = 0;
    shoal_gpt *init = tiny_model(32, 7);
    const float *p0 = init ? shoal_gpt_params(init) : pa;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)pa[i] - pb[i]);
        if (d > worst) worst = d;
        moved += fabs((double)pa[i] - p0[i]);
    }
    fprintf(stderr, "  max |accum - big batch| = %.3g, mean movement %.3g\n", worst, moved / n);
    CHECK(worst < 1e-5);
    CHECK(moved / n > 1e-4); /* the runs did move the parameters */
    shoal_gpt_free(init);
done:
    shoal_gpt_free(a);
    shoal_gpt_free(b);
}

static void test_bad_config(void) {
    shoal_gpt *m = tiny_model(32, 1);
    if (!m) return;
    shoal_trainer_config c;
    base_config(&c, routing, tmp("bad"));
    c.T = 65; /* n_positions 64 */
    CHECK_EQ_INT(shoal_trainer_run(m, &c, NULL), SHOAL_ERR_INVALID_ARG);
    base_config(&c, routing, tmp("bad"));
    c.warmup_steps = 1000;
    CHECK_EQ_INT(shoal_trainer_run(m, &c, NULL), SHOAL_ERR_INVALID_ARG);
    base_config(&c, tmp("no-such-data"), tmp("bad"));
    CHECK(shoal_trainer_run(m, &c, NULL) != SHOAL_OK);
    base_config(&c, routing, tmp("bad"));
    c.B = 4096; /* more than the data holds */
    CHECK_EQ_INT(shoal_trainer_run(m, &c, NULL), SHOAL_ERR_INVALID_ARG);
    CHECK(!shoal_path_exists(tmp("bad/checkpoints")));
    shoal_gpt_free(m);
}

int main(void) {
    routing = make_dataset("routing", 0);
    TEST_RUN(test_loss_falls);
    TEST_RUN(test_exact_resume);
    TEST_RUN(test_grad_accumulation);
    TEST_RUN(test_bad_config);
    return TEST_EXIT();
}
