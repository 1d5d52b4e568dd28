/* test_gpt_ref.c: the C GPT-2 against PyTorch (fixtures from tests/ref/gen_gpt2_ref.py).
 *
 * Loads tests/data/model/gpt2_tiny (HF directory) and gpt2_tiny_ref.safetensors (PyTorch,
 * float64 then stored as F32), then checks: logits within 1e-5 (max-abs-normalised), the masked
 * mean loss and per-token losses within 1e-5 relative, every parameter gradient within 1e-4
 * (max |c - ref| / max |ref|, per tensor), and the losses of 5 AdamW steps with grad-norm
 * clipping (same hyperparameters as the generator) within 1e-5 relative. Runs with 1 and 2
 * threads, and twice with gradient accumulation to check backward adds.
 */
#include <string.h>

#include "kernels/ops.h"
#include "ref_fixture.h"
#include "test.h"
#include "worker/model/gpt.h"

enum { B = REF_B, T = REF_T };

static void check_model(int threads) {
    shoal_gpt *m = NULL;
    CHECK(shoal_gpt_load_dir(ref_model_dir, &m) == SHOAL_OK);
    if (!m) return;
    CHECK(shoal_gpt_set_threads(m, threads) == SHOAL_OK);
    const shoal_gpt_config *c = shoal_gpt_cfg(m);
    CHECK_EQ_INT(c->vocab_size, 301);
    int V = c->vocab_size;
    float loss = 0.0f;
    CHECK(shoal_gpt_forward(m, ref_tokens, ref_targets, ref_mask, B, T, &loss) == SHOAL_OK);
    size_t n;
    float *rl = ref_f32("logits", &n);
    CHECK_EQ_INT(n, (size_t)B * T * V);
    double e = maxabs_rel(shoal_gpt_logits(m), rl, n);
    printf("threads %d: logits max-abs-rel err %.3g\n", threads, e);
    CHECK(e <= 1e-5);
    float *rloss = ref_f32("loss", NULL);
    printf("threads %d: loss %.8f ref %.8f\n", threads, loss, rloss[0]);
    CHECK(fabs(loss - rloss[0]) <= 1e-5 * fabs(rloss[0]));
    float *rtl = ref_f32("token_losses", &n);
    for (size_t i = 0; i < n; i++) CHECK(fabs(shoal_gpt_token_losses(m)[i] - rtl[i]) <= 1e-5 * fabs(rtl[i]) + 1e-6);

    /* gradients, and accumulation: a second forward/backward doubles them */
    shoal_gpt_zero_grad(m);
    CHECK(shoal_gpt_backward(m) == SHOAL_OK);
    CHECK(shoal_gpt_backward(m) == SHOAL_ERR_INVALID_ARG); /* once per forward */
    double worst = 0.0;
    for (int i = 0; i < shoal_gpt_num_tensors(m); i++) {
        const shoal_gpt_tensor *t = shoal_gpt_tensor_at(m, i);
        char name[128];
        snprintf(name, sizeof name, "grad.%s", t->name);
        float *rg = ref_f32(name, &n);
        CHECK_EQ_INT(n, t->numel);
        double ge = maxabs_rel(shoal_gpt_grads(m) + t->offset, rg, n);
        if (ge > worst) worst = ge;
        if (!(ge <= 1e-4)) fprintf(stderr, "  %s: grad err %.3g\n", t->name, ge);
        CHECK(ge <= 1e-4);
        free(rg);
    }
    printf("threads %d: worst gradient max-abs-rel err %.3g over %d tensors\n", threads, worst,
           shoal_gpt_num_tensors(m));
    size_t np = shoal_gpt_num_params(m);
    float *g1 = malloc(np * sizeof(float));
    memcpy(g1, shoal_gpt_grads(m), np * sizeof(float));
    CHECK(shoal_gpt_forward(m, ref_tokens, ref_targets, ref_mask, B, T, &loss) == SHOAL_OK);
    CHECK(shoal_gpt_backward(m) == SHOAL_OK);
    double acc_err = 0.0;
    for (size_t i = 0; i < np; i++) {
        double d = fabs(shoal_gpt_grads(m)[i] - 2.0 * g1[i]);
        acc_err = d > acc_err ? d : acc_err;
    }
    CHECK(acc_err <= 1e-6);

    /* 5 AdamW steps on the same batch: lr 1e-2, betas (0.9, 0.95), eps 1e-8, wd 0.1 on 2-D
     * tensors, clip at 1.0 */
    float *rad = ref_f32("adamw_losses", &n);
    CHECK_EQ_INT(n, 6);
    float *mom = calloc(np, sizeof(float)), *vel = calloc(np, sizeof(float));
    shoal_ctx *ctx = shoal_gpt_ctx(m);
    for (int step = 0; step <= 5; step++) {
        CHECK(shoal_gpt_forward(m, ref_tokens, ref_targets, ref_mask, B, T, &loss) == SHOAL_OK);
        printf("threads %d: adamw step %d loss %.8f ref %.8f\n", threads, step, loss, rad[step]);
        CHECK(fabs(loss - rad[step]) <= 1e-5 * fabs(rad[step]));
        if (step == 5) break;
        shoal_gpt_zero_grad(m);
        CHECK(shoal_gpt_backward(m) == SHOAL_OK);
        float norm = 0.0f;
        CHECK(shoal_grad_clip(ctx, shoal_gpt_grads(m), np, 1.0f, &norm) == SHOAL_OK);
        for (int i = 0; i < shoal_gpt_num_tensors(m); i++) {
            const shoal_gpt_tensor *t = shoal_gpt_tensor_at(m, i);
            CHECK(SHOAL_OP(ctx, adamw_update, shoal_gpt_params(m) + t->offset,
                           shoal_gpt_grads(m) + t->offset, mom + t->offset, vel + t->offset,
                           t->numel, 1e-2f, 0.9f, 0.95f, 1e-8f, t->decay ? 0.1f : 0.0f, step + 1,
                           1.0f) == SHOAL_OK);
        }
    }
    free(mom);
    free(vel);
    free(rad);
    free(g1);
    free(rtl);
    free(rloss);
    free(rl);
    shoal_gpt_free(m);
}

static void test_ref_1thread(void) { check_model(1); }
static void test_ref_2threads(void) { check_model(2); }

int main(void) {
    if (ref_fixture_open() != 0) return 2;
    TEST_RUN(test_ref_1thread);
    TEST_RUN(test_ref_2threads);
    ref_fixture_close();
    return TEST_EXIT();
}
