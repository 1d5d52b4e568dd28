/* test_gpt_cuda.c (label gpu): the whole GPT on a CUDA context.
 *
 * fp32: the tiny fixture model (tests/data/model/gpt2_tiny) moved to the device by
 * shoal_gpt_to_device runs the PyTorch fixtures of test_gpt_ref.c with the same tolerances
 * (logits 1e-5 max-abs-rel, losses 1e-5 rel, every gradient 1e-4, 5 clipped AdamW steps'
 * losses 1e-5), and the same steps on the CPU give the same losses (1e-5) and parameters
 * within 1e-4 relative L2. Two identical
 * runs (fresh models) give bit-identical losses, gradients and parameters. bf16 (head dim 64,
 * random init): logits and loss within 2e-2 of the fp32 device model, every gradient tensor
 * pointing the same way (cosine > 0.95), 3 AdamW steps lower the loss and stay within 2e-2 of
 * fp32, two runs bit-identical; save/load from the fp32 masters round-trips; KV-cache decode
 * logits match the CPU's. Exit 77 without a device (failing when SHOAL_EXPECT_GPU=1).
 */
#include <math.h>
#include <string.h>

#include "ref_fixture.h"
#include "test.h"
#include "worker/model/gpt.h"

enum { B = REF_B, T = REF_T };

static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
}

static float *host_grads(const shoal_gpt *m) {
    float *g = malloc(shoal_gpt_num_params(m) * sizeof(float));
    if (g && shoal_gpt_grads_to_host(m, g) != SHOAL_OK) {
        free(g);
        return NULL;
    }
    return g;
}

static float *host_params(const shoal_gpt *m) {
    float *p = malloc(shoal_gpt_num_params(m) * sizeof(float));
    if (p && shoal_gpt_params_to_host(m, p) != SHOAL_OK) {
        free(p);
        return NULL;
    }
    return p;
}

static const shoal_gpt_device cuda32 = {SHOAL_BACKEND_CUDA, 0, SHOAL_PRECISION_FP32, 0};
static const shoal_gpt_device cuda16 = {SHOAL_BACKEND_CUDA, 0, SHOAL_PRECISION_BF16, 0};

/* n AdamW steps with clip 1.0 (the fixture's hyperparameters); losses[0..n] before each. */
static void adamw_steps(shoal_gpt *m, int n, float *losses) {
    size_t np = shoal_gpt_num_params(m);
    shoal_ctx *ctx = shoal_gpt_ctx(m);
    float *ms = NULL, *vs = NULL;
    CHECK_EQ_INT(shoal_ctx_alloc(ctx, (void **)&ms, np * 4, "m"), SHOAL_OK);
    CHECK_EQ_INT(shoal_ctx_alloc(ctx, (void **)&vs, np * 4, "v"), SHOAL_OK);
    for (int step = 0; ms && vs && step <= n; step++) {
        CHECK_EQ_INT(shoal_gpt_forward(m, ref_tokens, ref_targets, ref_mask, B, T, &losses[step]),
                     SHOAL_OK);
        if (step == n) break;
        shoal_gpt_zero_grad(m);
        CHECK_EQ_INT(shoal_gpt_backward(m), SHOAL_OK);
        CHECK_EQ_INT(shoal_grad_clip(ctx, shoal_gpt_grads(m), np, 1.0f, NULL), SHOAL_OK);
        for (int i = 0; i < shoal_gpt_num_tensors(m); i++) {
            const shoal_gpt_tensor *t = shoal_gpt_tensor_at(m, i);
            CHECK_EQ_INT(shoal_gpt_adamw_update(m, t->offset, t->numel, ms + t->offset,
                                                vs + t->offset, 1e-2f, 0.9f, 0.95f, 1e-8f,
                                                t->decay ? 0.1f : 0.0f, step + 1, 1.0f),
                         SHOAL_OK);
        }
    }
    shoal_ctx_mem_free(ctx, ms);
    shoal_ctx_mem_free(ctx, vs);
}

static shoal_gpt *fixture_on(const shoal_gpt_device *dev) {
    shoal_gpt *m = NULL;
    CHECK_EQ_INT(shoal_gpt_load_dir(ref_model_dir, &m), SHOAL_OK);
    if (m && dev) CHECK_EQ_INT(shoal_gpt_to_device(m, dev), SHOAL_OK);
    return m;
}

static void test_fp32_vs_pytorch(void) {
    shoal_gpt *m = fixture_on(&cuda32);
    if (!m) return;
    CHECK(shoal_gpt_ctx(m)->backend == SHOAL_BACKEND_CUDA);
    int V = shoal_gpt_cfg(m)->vocab_size;
    float loss = 0;
    CHECK_EQ_INT(shoal_gpt_forward(m, ref_tokens, ref_targets, ref_mask, B, T, &loss), SHOAL_OK);
    size_t n;
    float *rl = ref_f32("logits", &n), *rloss = ref_f32("loss", NULL);
    float *rtl = ref_f32("token_losses", NULL);
    const float *lg = shoal_gpt_logits(m);
    CHECK(lg != NULL);
    double e = lg ? maxabs_rel(lg, rl, (size_t)B * T * V) : 1;
    printf("cuda fp32: logits err %.3g, loss %.8f ref %.8f\n", e, loss, rloss[0]);
    CHECK(e <= 1e-5);
    CHECK(fabs(loss - rloss[0]) <= 1e-5 * fabs(rloss[0]));
    for (int i = 0; i < B * T; i++)
        CHECK(fabs(shoal_gpt_token_losses(m)[i] - rtl[i]) <= 1e-5 * fabs(rtl[i]) + 1e-6);
    shoal_gpt_zero_grad(m);
    CHECK_EQ_INT(shoal_gpt_backward(m), SHOAL_OK);
    float *g = host_grads(m);
    double worst = 0;
    for (int i = 0; g && i < shoal_gpt_num_tensors(m); i++) {
        const shoal_gpt_tensor *t = shoal_gpt_tensor_at(m, i);
        char name[128];
        snprintf(name, sizeof name, "grad.%s", t->name);
        float *rg = ref_f32(name, NULL);
        double ge = maxabs_rel(g + t->offset, rg, t->numel);
        worst = ge > worst ? ge : worst;
        if (!(ge <= 1e-4)) fprintf(stderr, "  %s: grad err %.3g\n", t->name, ge);
        CHECK(ge <= 1e-4);
        free(rg);
    }
    printf("cuda fp32: worst gradient err %.3g\n", worst);
    float *rad = ref_f32("adamw_losses", &n), l6[6];
    adamw_steps(m, 5, l6);
    for (int s = 0; s <= 5; s++) {
        printf("cuda fp32: adamw step %d loss %.8f ref %.8f\n", s, l6[s], rad[s]);
        CHECK(fabs(l6[s] - rad[s]) <= 1e-5 * fabs(rad[s]));
    }
    /* the same steps on the CPU: parameters agree */
    shoal_gpt *c = fixture_on(NULL);
    float c6[6];
    if (c) adamw_steps(c, 5, c6);
    for (int s = 0; c && s <= 5; s++)
        CHECK(fabs(l6[s] - c6[s]) <= 1e-5 * fabs(c6[s]));
    /* parameters by relative L2 distance: AdamW's m/sqrt(v) turns last-bit differences of a
     * near-zero gradient into +-lr, so an element-wise bound would test rounding luck */
    float *pc = c ? host_params(c) : NULL, *pg = host_params(m);
    if (pc && pg) {
        double dd = 0, pp = 0;
        for (size_t i = 0; i < shoal_gpt_num_params(m); i++) {
            dd += ((double)pg[i] - pc[i]) * ((double)pg[i] - pc[i]);
            pp += (double)pc[i] * pc[i];
        }
        double pe = sqrt(dd / pp);
        printf("cuda fp32 vs cpu after 5 AdamW steps: params rel L2 %.3g, max-abs-rel %.3g\n", pe,
               maxabs_rel(pg, pc, shoal_gpt_num_params(m)));
        CHECK(pe <= 1e-4);
    }
    free(pc);
    free(pg);
    shoal_gpt_free(c);
    free(rad);
    free(g);
    free(rtl);
    free(rloss);
    free(rl);
    shoal_gpt_free(m);
}

/* One forward/backward/3 AdamW steps; returns grads+params on the host (2*np floats). */
static float *run_once(shoal_gpt *m, float *loss) {
    size_t np = shoal_gpt_num_params(m);
    float l4[4];
    adamw_steps(m, 3, l4);
    *loss = l4[3];
    shoal_gpt_zero_grad(m);
    CHECK_EQ_INT(shoal_gpt_backward(m), SHOAL_OK);
    float *out = malloc(2 * np * sizeof(float));
    if (!out) return NULL;
    CHECK_EQ_INT(shoal_gpt_grads_to_host(m, out), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_params_to_host(m, out + np), SHOAL_OK);
    return out;
}

static void test_fp32_deterministic(void) {
    shoal_gpt *a = fixture_on(&cuda32), *b = fixture_on(&cuda32);
    float la = 0, lb = 0;
    float *ra = a ? run_once(a, &la) : NULL, *rb = b ? run_once(b, &lb) : NULL;
    if (ra && rb) {
        CHECK(memcmp(&la, &lb, sizeof la) == 0);
        CHECK(memcmp(ra, rb, 2 * shoal_gpt_num_params(a) * sizeof(float)) == 0);
    }
    free(ra);
    free(rb);
    shoal_gpt_free(a);
    shoal_gpt_free(b);
}

/* A model bf16 can run (head dim 64), the same random weights on each device. */
static shoal_gpt *hd64_on(const shoal_gpt_device *dev) {
    shoal_gpt_config c = {2, 2, 128, 301, 64, 1e-5f};
    shoal_gpt *m = NULL;
    CHECK_EQ_INT(shoal_gpt_create(&c, &m), SHOAL_OK);
    if (m) CHECK_EQ_INT(shoal_gpt_init_random(m, 42), SHOAL_OK);
    if (m && dev) CHECK_EQ_INT(shoal_gpt_to_device(m, dev), SHOAL_OK);
    return m;
}

static void test_bf16_vs_fp32(void) {
    shoal_gpt *f = hd64_on(&cuda32), *h = hd64_on(&cuda16);
    if (!f || !h) goto done;
    CHECK(shoal_gpt_precision(h) == SHOAL_PRECISION_BF16);
    int V = shoal_gpt_cfg(f)->vocab_size;
    size_t np = shoal_gpt_num_params(f), nl = (size_t)B * T * V;
    float lf = 0, lh = 0;
    CHECK_EQ_INT(shoal_gpt_forward(f, ref_tokens, ref_targets, ref_mask, B, T, &lf), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_forward(h, ref_tokens, ref_targets, ref_mask, B, T, &lh), SHOAL_OK);
    float *logf = malloc(nl * sizeof(float));
    const float *lgf = shoal_gpt_logits(f), *lgh = shoal_gpt_logits(h);
    CHECK(lgf && lgh && logf);
    if (lgf && logf) memcpy(logf, lgf, nl * sizeof(float));
    double e = lgh && logf ? maxabs_rel(lgh, logf, nl) : 1;
    printf("bf16 vs fp32: logits err %.3g, loss %.6f vs %.6f\n", e, lh, lf);
    CHECK(e <= 2e-2);
    CHECK(fabs(lh - lf) <= 2e-2 * fabs(lf));
    shoal_gpt_zero_grad(f);
    shoal_gpt_zero_grad(h);
    CHECK_EQ_INT(shoal_gpt_backward(f), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_backward(h), SHOAL_OK);
    float *gf = host_grads(f), *gh = host_grads(h);
    double worst = 1;
    for (int i = 0; gf && gh && i < shoal_gpt_num_tensors(f); i++) {
        const shoal_gpt_tensor *t = shoal_gpt_tensor_at(f, i);
        double cs = cosine(gh + t->offset, gf + t->offset, t->numel);
        worst = cs < worst ? cs : worst;
        if (!(cs > 0.95)) fprintf(stderr, "  %s: gradient cosine %.4f\n", t->name, cs);
        CHECK(cs > 0.95);
    }
    if (gf && gh)
        printf("bf16 vs fp32: whole-gradient cosine %.5f, worst tensor %.4f\n", cosine(gh, gf, np),
               worst);
    /* a few AdamW steps: bf16 learns and tracks fp32 */
    float sf[4], sh[4];
    adamw_steps(f, 3, sf);
    adamw_steps(h, 3, sh);
    printf("AdamW losses fp32 %.5f -> %.5f, bf16 %.5f -> %.5f\n", sf[0], sf[3], sh[0], sh[3]);
    CHECK(sh[3] < sh[0]);
    CHECK(fabs(sh[3] - sf[3]) <= 2e-2 * fabs(sf[3]));
    /* saved from the fp32 masters: the file loads back on the CPU to the same parameters */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/bf16-save", test_tmpdir());
    CHECK_EQ_INT(shoal_gpt_save_dir(h, dir, SHOAL_DTYPE_F32), SHOAL_OK);
    shoal_gpt *back = NULL;
    CHECK_EQ_INT(shoal_gpt_load_dir(dir, &back), SHOAL_OK);
    float *pb = back ? host_params(back) : NULL, *ph = host_params(h);
    if (pb && ph) CHECK(memcmp(pb, ph, np * sizeof(float)) == 0);
    free(pb);
    free(ph);
    shoal_gpt_free(back);
    free(gf);
    free(gh);
    free(logf);
done:
    shoal_gpt_free(f);
    shoal_gpt_free(h);
}

static void test_bf16_deterministic(void) {
    shoal_gpt *a = hd64_on(&cuda16), *b = hd64_on(&cuda16);
    float la = 0, lb = 0;
    float *ra = a ? run_once(a, &la) : NULL, *rb = b ? run_once(b, &lb) : NULL;
    if (ra && rb) {
        CHECK(memcmp(&la, &lb, sizeof la) == 0);
        CHECK(memcmp(ra, rb, 2 * shoal_gpt_num_params(a) * sizeof(float)) == 0);
    }
    free(ra);
    free(rb);
    shoal_gpt_free(a);
    shoal_gpt_free(b);
}

static void test_decode_on_device(void) {
    shoal_gpt *g = fixture_on(&cuda32), *c = fixture_on(NULL);
    if (!g || !c) goto done;
    int V = shoal_gpt_cfg(c)->vocab_size;
    const int32_t prompt[4] = {5, 66, 123, 7};
    const float *lg = NULL, *lc = NULL;
    CHECK_EQ_INT(shoal_gpt_decode_reset(g, 12), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_decode_reset(c, 12), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_decode_prefill(g, prompt, 4, &lg), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_decode_prefill(c, prompt, 4, &lc), SHOAL_OK);
    if (lg && lc) CHECK(maxabs_rel(lg, lc, (size_t)V) <= 1e-5);
    CHECK_EQ_INT(shoal_gpt_decode_step(g, 99, 4, &lg), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_decode_step(c, 99, 4, &lc), SHOAL_OK);
    if (lg && lc) CHECK(maxabs_rel(lg, lc, (size_t)V) <= 1e-5);
    int32_t out[8];
    int n = 0;
    CHECK_EQ_INT(shoal_gpt_generate(g, prompt, 4, 8, NULL, -1, out, &n), SHOAL_OK);
    CHECK_EQ_INT(n, 8);
done:
    shoal_gpt_free(g);
    shoal_gpt_free(c);
}

int main(void) {
    if (shoal_gpt_cuda_device_count() == 0) {
        const char *e = getenv("SHOAL_EXPECT_GPU");
        if (e && strcmp(e, "1") == 0) {
            printf("FAIL: no CUDA device but SHOAL_EXPECT_GPU=1\n");
            return 1;
        }
        TEST_SKIP("no CUDA device");
    }
    if (ref_fixture_open() != 0) return 2;
    TEST_RUN(test_fp32_vs_pytorch);
    TEST_RUN(test_fp32_deterministic);
    TEST_RUN(test_bf16_vs_fp32);
    TEST_RUN(test_bf16_deterministic);
    TEST_RUN(test_decode_on_device);
    ref_fixture_close();
    return TEST_EXIT();
}
