/* test_trainer_guarded.c: the trainer keeps to the device-memory discipline.
 *
 * A tiny GPT trains on a small prepared dataset on the plain CPU context and on the guarded
 * one (tests/model/guarded_ctx.h: backend buffers PROT_NONE outside ops and copies, so any host
 * access to parameters, gradients or AdamW moments by the trainer segfaults), with gradient
 * accumulation, clipping, validation and checkpoints. Checked bit for bit: the step losses,
 * the final parameters, the checkpoint file and the saved model; then a guarded run stopped at
 * step 4 and resumed from its checkpoint ends equal to the uninterrupted one. DP-SGD (which
 * reads activations on the host) is refused on the non-host model.
 */
#include <stdint.h>
#include <unistd.h>

#include "../model/guarded_ctx.h"
#include "common/fileio.h"
#include "test.h"
#include "worker/model/gpt.h"
#include "worker/train/prepare.h"
#include "worker/train/trainer.h"

static shoal_status byte_encode(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n) {
    (void)ctx;
    *ids = malloc(len ? len * sizeof **ids : 1);
    if (!*ids) return SHOAL_ERR_NOMEM;
    for (size_t i = 0; i < len; i++) (*ids)[i] = (unsigned char)text[i];
    *n = len;
    return SHOAL_OK;
}

static const char *make_dataset(void) {
    static char out[600];
    char jsonl[600];
    snprintf(jsonl, sizeof jsonl, "%s/routes.jsonl", test_tmpdir());
    snprintf(out, sizeof out, "%s/routes", test_tmpdir());
    static const char *routes[4] = {"pay", "post", "tech", "cash"};
    static const char *words[4] = {"invoice", "parcel", "crash", "refund"};
    size_t cap = 300 * 80, len = 0;
    char *s = malloc(cap);
    uint64_t r = 777;
    for (int i = 0; i < 300; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        int c = (int)((r >> 33) % 4);
        len += (size_t)snprintf(s + len, cap - len,
                                "{\"prompt\":\"m: %s %d\\nr:\",\"completion\":\" %s\"}\n", words[c],
                                (int)((r >> 40) % 100), routes[c]);
    }
    CHECK_EQ_INT(shoal_file_write_atomic(jsonl, s, len), SHOAL_OK);
    free(s);
    shoal_text_encoder enc = {NULL, 257, 256, byte_encode};
    CHECK_EQ_INT(shoal_data_prepare(&(shoal_prepare_config){jsonl, out, 0.1, 3, 0}, &enc, NULL),
                 SHOAL_OK);
    return out;
}

static const shoal_gpt_config tiny = {2, 2, 32, 257, 64, 1e-5f};

static shoal_gpt *model(int guarded) {
    shoal_gpt *m = NULL;
    if (guarded) {
        shoal_ctx g;
        CHECK_EQ_INT(test_guarded_ctx_init(&g, 1), SHOAL_OK);
        CHECK_EQ_INT(shoal_gpt_create_with_ctx(&tiny, &g, &m), SHOAL_OK);
    } else {
        CHECK_EQ_INT(shoal_gpt_create(&tiny, &m), SHOAL_OK);
        if (m) CHECK_EQ_INT(shoal_gpt_set_threads(m, 1), SHOAL_OK);
    }
    if (m) CHECK_EQ_INT(shoal_gpt_init_random(m, 3), SHOAL_OK);
    return m;
}

static void config(shoal_trainer_config *c, const char *data, const char *name) {
    static char out[8][600];
    static int k;
    char *o = out[k++ % 8];
    snprintf(o, 600, "%s/%s", test_tmpdir(), name);
    shoal_trainer_config_default(c);
    c->data_dir = data;
    c->out_dir = o;
    c->B = 4;
    c->T = 32;
    c->grad_accum = 2;
    c->steps = 8;
    c->lr = 3e-3;
    c->warmup_steps = 2;
    c->eval_every = 4;
    c->eval_batches = 2;
    c->ckpt_every = 4;
    c->save_model = 1;
}

static int same_params(const shoal_gpt *a, const shoal_gpt *b) {
    size_t n = shoal_gpt_num_params(a);
    float *x = malloc(n * 4), *y = malloc(n * 4);
    int eq = x && y && shoal_gpt_params_to_host(a, x) == SHOAL_OK &&
             shoal_gpt_params_to_host(b, y) == SHOAL_OK && memcmp(x, y, n * 4) == 0;
    free(x);
    free(y);
    return eq;
}

static int same_file(const char *dir_a, const char *dir_b, const char *rel) {
    char a[1400], b[1400];
    snprintf(a, sizeof a, "%s/%s", dir_a, rel);
    snprintf(b, sizeof b, "%s/%s", dir_b, rel);
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int eq = shoal_file_read(a, 1 << 26, &x, &nx) == SHOAL_OK &&
             shoal_file_read(b, 1 << 26, &y, &ny) == SHOAL_OK && nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return eq;
}

static const char *data;

static void test_guarded_equals_plain(void) {
    shoal_gpt *p = model(0), *g = model(1), *g2 = model(1);
    shoal_trainer_config cp, cg, cr;
    shoal_trainer_result rp, rg, rr;
    if (!p || !g || !g2) goto done;
    config(&cp, data, "plain");
    config(&cg, data, "guarded");
    long calls0 = test_guarded_calls();
    CHECK_EQ_INT(shoal_trainer_run(p, &cp, &rp), SHOAL_OK);
    CHECK_EQ_INT(shoal_trainer_run(g, &cg, &rg), SHOAL_OK);
    CHECK(test_guarded_calls() > calls0 + 1000);
    printf("plain loss %.6f -> %.6f val %.6f; guarded %.6f -> %.6f val %.6f\n", rp.first_loss,
           rp.last_loss, rp.val_loss, rg.first_loss, rg.last_loss, rg.val_loss);
    CHECK(memcmp(&rp.first_loss, &rg.first_loss, 4) == 0);
    CHECK(memcmp(&rp.last_loss, &rg.last_loss, 4) == 0);
    CHECK(memcmp(&rp.val_loss, &rg.val_loss, 4) == 0);
    CHECK(same_params(p, g));
    CHECK(same_file(cp.out_dir, cg.out_dir, "checkpoints/step-00000008/trainer.safetensors"));
    CHECK(same_file(cp.out_dir, cg.out_dir, "model.safetensors"));
    /* stop at 4, resume (guarded) from the checkpoint: the same end */
    config(&cr, data, "resumed");
    cr.stop_after = 4;
    CHECK_EQ_INT(shoal_trainer_run(g2, &cr, &rr), SHOAL_OK);
    CHECK_EQ_INT(rr.end_step, 4);
    CHECK_EQ_INT(shoal_gpt_init_random(g2, 11), SHOAL_OK); /* the checkpoint must restore it */
    cr.stop_after = 0;
    cr.resume = 1;
    CHECK_EQ_INT(shoal_trainer_run(g2, &cr, &rr), SHOAL_OK);
    CHECK_EQ_INT(rr.start_step, 4);
    CHECK_EQ_INT(rr.end_step, 8);
    CHECK(same_params(p, g2));
done:
    shoal_gpt_free(g2);
    shoal_gpt_free(g);
    shoal_gpt_free(p);
}

/* What needs host access to the model is refused on a non-host model, before anything runs. */
static void test_refusals(void) {
    shoal_gpt *g = model(1);
    shoal_trainer_config c;
    if (!g) return;
    config(&c, data, "dp");
    c.dp_clip = 1.0;
    c.dp_noise = 1.0;
    c.dp_delta = 1e-5;
    CHECK_EQ_INT(shoal_trainer_run(g, &c, NULL), SHOAL_ERR_UNSUPPORTED);
    char p[700];
    snprintf(p, sizeof p, "%s/checkpoints", c.out_dir);
    CHECK(!shoal_path_exists(p));
    shoal_gpt_free(g);
}

int main(void) {
    data = make_dataset();
    TEST_RUN(test_guarded_equals_plain);
    TEST_RUN(test_refusals);
    CHECK_EQ_INT(test_guarded_live(), 0);
    return TEST_EXIT();
}
