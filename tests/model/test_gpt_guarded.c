/* test_gpt_guarded.c: the model never touches backend memory from the host.
 *
 * The tiny fixture GPT (tests/data/model/gpt2_tiny) runs on the guarded CPU context
 * (guarded_ctx.h: every buffer PROT_NONE outside ops and copies, host_visible 0, so the model
 * takes the same copy paths as on CUDA) and on the plain CPU context, and everything is
 * compared bit for bit: parameters after load and after init_random, logits, per-token and
 * mean losses, every gradient (and their accumulation), 3 clipped AdamW steps through
 * shoal_gpt_adamw_update, the saved model.safetensors bytes (F32 and BF16) and a reload,
 * KV-cache prefill/decode logits, greedy and seeded generation, to_device onto a guarded
 * context. A control checks that the guard works: a direct read of shoal_gpt_params() of the
 * guarded model kills a forked child with SIGSEGV.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/safetensors.h"
#include "guarded_ctx.h"
#include "test.h"
#include "worker/model/gpt.h"

static char model_dir[4096];
enum { B = 2, T = 24 };
static int32_t tokens[B * T], targets[B * T];
static uint8_t mask[B * T];

static shoal_gpt *guarded_model(const shoal_gpt_config *cfg) {
    shoal_ctx g;
    shoal_gpt *m = NULL;
    CHECK_EQ_INT(test_guarded_ctx_init(&g, 1), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_create_with_ctx(cfg, &g, &m), SHOAL_OK);
    return m;
}

static int same_params(const shoal_gpt *a, const shoal_gpt *b) {
    size_t n = shoal_gpt_num_params(a);
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    int eq = x && y && shoal_gpt_params_to_host(a, x) == SHOAL_OK &&
             shoal_gpt_params_to_host(b, y) == SHOAL_OK && memcmp(x, y, n * sizeof(float)) == 0;
    free(x);
    free(y);
    return eq;
}

static int same_grads(const shoal_gpt *a, const shoal_gpt *b) {
    size_t n = shoal_gpt_num_params(a);
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    int eq = x && y && shoal_gpt_grads_to_host(a, x) == SHOAL_OK &&
             shoal_gpt_grads_to_host(b, y) == SHOAL_OK && memcmp(x, y, n * sizeof(float)) == 0;
    free(x);
    free(y);
    return eq;
}

static int same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int eq = shoal_file_read(a, 1 << 26, &x, &nx) == SHOAL_OK &&
             shoal_file_read(b, 1 << 26, &y, &ny) == SHOAL_OK && nx == ny &&
             memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return eq;
}

/* Load the fixture on the plain CPU (reference) and the guarded context. */
static void load_pair(shoal_gpt **ref, shoal_gpt **gm) {
    *gm = NULL;
    CHECK_EQ_INT(shoal_gpt_load_dir(model_dir, ref), SHOAL_OK);
    if (!*ref) return;
    CHECK_EQ_INT(shoal_gpt_set_threads(*ref, 1), SHOAL_OK);
    *gm = guarded_model(shoal_gpt_cfg(*ref));
    if (!*gm) return;
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors", model_dir);
    CHECK_EQ_INT(shoal_gpt_load_safetensors(*gm, p), SHOAL_OK);
    CHECK(same_params(*ref, *gm));
}

static void test_train_path(void) {
    shoal_gpt *ref = NULL, *gm = NULL;
    load_pair(&ref, &gm);
    if (!gm) goto done;
    long calls0 = test_guarded_calls();
    float la = 0, lb = 0;
    CHECK_EQ_INT(shoal_gpt_forward(ref, tokens, targets, mask, B, T, &la), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_forward(gm, tokens, targets, mask, B, T, &lb), SHOAL_OK);
    CHECK(test_guarded_calls() > calls0 + 20); /* the ops did run through the guarded table */
    CHECK(memcmp(&la, &lb, sizeof la) == 0);
    printf("loss plain %.9g guarded %.9g\n", la, lb);
    int V = shoal_gpt_cfg(ref)->vocab_size;
    const float *lg = shoal_gpt_logits(gm);
    CHECK(lg != NULL);
    if (lg) CHECK(memcmp(shoal_gpt_logits(ref), lg, (size_t)B * T * V * sizeof(float)) == 0);
    CHECK(memcmp(shoal_gpt_token_losses(ref), shoal_gpt_token_losses(gm), B * T * sizeof(float)) ==
          0);
    /* gradients, twice (accumulation) */
    for (int k = 0; k < 2; k++) {
        if (k) {
            CHECK_EQ_INT(shoal_gpt_forward(ref, tokens, targets, NULL, B, T, &la), SHOAL_OK);
            CHECK_EQ_INT(shoal_gpt_forward(gm, tokens, targets, NULL, B, T, &lb), SHOAL_OK);
            CHECK(memcmp(&la, &lb, sizeof la) == 0);
        } else {
            shoal_gpt_zero_grad(ref);
            shoal_gpt_zero_grad(gm);
        }
        CHECK_EQ_INT(shoal_gpt_backward(ref), SHOAL_OK);
        CHECK_EQ_INT(shoal_gpt_backward(gm), SHOAL_OK);
        CHECK(same_grads(ref, gm));
    }
    /* 3 AdamW steps with clipping, moments in each model's backend memory */
    size_t np = shoal_gpt_num_params(ref);
    shoal_ctx *cr = shoal_gpt_ctx(ref), *cg = shoal_gpt_ctx(gm);
    float *mr = NULL, *vr = NULL, *mg = NULL, *vg = NULL;
    CHECK_EQ_INT(shoal_ctx_alloc(cr, (void **)&mr, np * 4, "m"), SHOAL_OK);
    CHECK_EQ_INT(shoal_ctx_alloc(cr, (void **)&vr, np * 4, "v"), SHOAL_OK);
    CHECK_EQ_INT(shoal_ctx_alloc(cg, (void **)&mg, np * 4, "m"), SHOAL_OK);
    CHECK_EQ_INT(shoal_ctx_alloc(cg, (void **)&vg, np * 4, "v"), SHOAL_OK);
    for (int step = 1; mr && vr && mg && vg && step <= 3; step++) {
        shoal_gpt *ms[2] = {ref, gm};
        float *mm[2] = {mr, mg}, *vv[2] = {vr, vg};
        for (int i = 0; i < 2; i++) {
            shoal_gpt *m = ms[i];
            float l = 0;
            CHECK_EQ_INT(shoal_gpt_forward(m, tokens, targets, mask, B, T, &l), SHOAL_OK);
            shoal_gpt_zero_grad(m);
            CHECK_EQ_INT(shoal_gpt_backward(m), SHOAL_OK);
            CHECK_EQ_INT(shoal_grad_clip(shoal_gpt_ctx(m), shoal_gpt_grads(m), np, 0.5f, NULL),
                         SHOAL_OK);
            for (int t = 0; t < shoal_gpt_num_tensors(m); t++) {
                const shoal_gpt_tensor *tt = shoal_gpt_tensor_at(m, t);
                CHECK_EQ_INT(shoal_gpt_adamw_update(m, tt->offset, tt->numel,
                                                    mm[i] + tt->offset, vv[i] + tt->offset, 1e-2f,
                                                    0.9f, 0.95f, 1e-8f, tt->decay ? 0.1f : 0.0f,
                                                    step, 1.0f),
                             SHOAL_OK);
            }
        }
        CHECK(same_params(ref, gm));
    }
    CHECK_EQ_INT(shoal_gpt_adamw_update(gm, np, 1, mg, vg, 1e-2f, 0.9f, 0.95f, 1e-8f, 0, 1, 1),
                 SHOAL_ERR_INVALID_ARG);
    shoal_ctx_mem_free(cr, mr);
    shoal_ctx_mem_free(cr, vr);
    shoal_ctx_mem_free(cg, mg);
    shoal_ctx_mem_free(cg, vg);

    /* save (F32 and BF16) from both: identical bytes; the guarded save reloads */
    const shoal_dtype dts[2] = {SHOAL_DTYPE_F32, SHOAL_DTYPE_BF16};
    for (int i = 0; i < 2; i++) {
        char da[600], db[600], fa[700], fb[700];
        snprintf(da, sizeof da, "%s/plain%d", test_tmpdir(), i);
        snprintf(db, sizeof db, "%s/guarded%d", test_tmpdir(), i);
        CHECK_EQ_INT(shoal_gpt_save_dir(ref, da, dts[i]), SHOAL_OK);
        CHECK_EQ_INT(shoal_gpt_save_dir(gm, db, dts[i]), SHOAL_OK);
        snprintf(fa, sizeof fa, "%s/model.safetensors", da);
        snprintf(fb, sizeof fb, "%s/model.safetensors", db);
        CHECK(same_file(fa, fb));
        if (i == 0) {
            shoal_gpt *g2 = guarded_model(shoal_gpt_cfg(ref));
            if (g2) {
                CHECK_EQ_INT(shoal_gpt_load_safetensors(g2, fb), SHOAL_OK);
                CHECK(same_params(ref, g2));
            }
            shoal_gpt_free(g2);
        }
    }
    /* init_random goes through the copies too */
    CHECK_EQ_INT(shoal_gpt_init_random(ref, 7), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_init_random(gm, 7), SHOAL_OK);
    CHECK(same_params(ref, gm));
done:
    shoal_gpt_free(gm);
    shoal_gpt_free(ref);
}

static void test_decode_path(void) {
    shoal_gpt *ref = NULL, *gm = NULL;
    load_pair(&ref, &gm);
    if (!gm) goto done;
    int V = shoal_gpt_cfg(ref)->vocab_size;
    const int32_t prompt[5] = {3, 17, 250, 9, 42};
    const float *la = NULL, *lb = NULL;
    CHECK_EQ_INT(shoal_gpt_decode_reset(ref, 16), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_decode_reset(gm, 16), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_decode_prefill(ref, prompt, 5, &la), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_decode_prefill(gm, prompt, 5, &lb), SHOAL_OK);
    if (la && lb) CHECK(memcmp(la, lb, (size_t)V * sizeof(float)) == 0);
    CHECK_EQ_INT(shoal_gpt_decode_step(ref, 77, 5, &la), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_decode_step(gm, 77, 5, &lb), SHOAL_OK);
    if (la && lb) CHECK(memcmp(la, lb, (size_t)V * sizeof(float)) == 0);
    int32_t oa[12], ob[12];
    int na = 0, nb = 0;
    CHECK_EQ_INT(shoal_gpt_generate(ref, prompt, 5, 12, NULL, -1, oa, &na), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_generate(gm, prompt, 5, 12, NULL, -1, ob, &nb), SHOAL_OK);
    CHECK_EQ_INT(na, nb);
    CHECK(memcmp(oa, ob, (size_t)na * sizeof(int32_t)) == 0);
    shoal_sampling s = {0.9f, 40, 0.95f, 1234};
    CHECK_EQ_INT(shoal_gpt_generate(ref, prompt, 5, 12, &s, -1, oa, &na), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_generate(gm, prompt, 5, 12, &s, -1, ob, &nb), SHOAL_OK);
    CHECK_EQ_INT(na, nb);
    CHECK(memcmp(oa, ob, (size_t)na * sizeof(int32_t)) == 0);
done:
    shoal_gpt_free(gm);
    shoal_gpt_free(ref);
}

/* to_device keeps the parameters and frees the old buffers; unsupported targets say why. */
static void test_to_device(void) {
    shoal_gpt *ref = NULL, *gm = NULL;
    load_pair(&ref, &gm);
    if (!gm) goto done;
    int live = test_guarded_live();
    shoal_gpt_device cpu = {SHOAL_BACKEND_CPU, 0, SHOAL_PRECISION_FP32, 1};
    CHECK_EQ_INT(shoal_gpt_to_device(gm, &cpu), SHOAL_OK); /* guarded -> plain CPU */
    CHECK(test_guarded_live() < live);                    /* the guarded buffers are gone */
    CHECK(shoal_gpt_ctx(gm)->k == shoal_kernels_cpu());
    CHECK(same_params(ref, gm));
    float la = 0, lb = 0;
    CHECK_EQ_INT(shoal_gpt_forward(ref, tokens, targets, mask, B, T, &la), SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_forward(gm, tokens, targets, mask, B, T, &lb), SHOAL_OK);
    CHECK(memcmp(&la, &lb, sizeof la) == 0);
    shoal_gpt_device bad = {SHOAL_BACKEND_CPU, 0, SHOAL_PRECISION_BF16, 1};
    CHECK_EQ_INT(shoal_gpt_to_device(gm, &bad), SHOAL_ERR_UNSUPPORTED);
    CHECK(same_params(ref, gm)); /* unchanged on error */
    shoal_gpt_device cuda = {SHOAL_BACKEND_CUDA, 0, SHOAL_PRECISION_FP32, 0};
    shoal_status st = shoal_gpt_to_device(gm, &cuda);
    /* no device here (CI): refused, the model untouched; with one it would move */
    if (st != SHOAL_OK) CHECK(st == SHOAL_ERR_UNSUPPORTED || st == SHOAL_ERR_INVALID_ARG);
    CHECK(same_params(ref, gm));
    shoal_gpt *m16 = NULL;
    shoal_gpt_config c = *shoal_gpt_cfg(ref);
    CHECK_EQ_INT(shoal_gpt_create_on(&c, &bad, &m16), SHOAL_ERR_UNSUPPORTED);
    CHECK(m16 == NULL);
done:
    shoal_gpt_free(gm);
    shoal_gpt_free(ref);
}

/* The guard is real: reading a parameter of the guarded model from the host faults. */
static void test_guard_faults(void) {
    shoal_gpt *ref = NULL, *gm = NULL;
    load_pair(&ref, &gm);
    if (!gm) goto done;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        volatile float x = shoal_gpt_params(gm)[0];
        (void)x;
        _exit(0); /* the read went through: no guard */
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    /* SIGSEGV; under ASan, which catches it, an abort or a non-zero exit. Only a clean exit 0
     * (the read went through) fails. */
    CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
    if (WIFSIGNALED(status)) printf("direct read: child killed by signal %d\n", WTERMSIG(status));
done:
    shoal_gpt_free(gm);
    shoal_gpt_free(ref);
}

int main(void) {
    const char *src = getenv("SHOAL_SOURCE_DIR");
    if (!src) src = ".";
    snprintf(model_dir, sizeof model_dir, "%s/tests/data/model/gpt2_tiny", src);
    uint64_t r = 99;
    for (int i = 0; i < B * T; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int32_t)((r >> 33) % 301);
        targets[i] = i % 11 == 5 ? -1 : (int32_t)((r >> 45) % 301);
        mask[i] = (uint8_t)(i % 7 != 0);
    }
    TEST_RUN(test_train_path);
    TEST_RUN(test_decode_path);
    TEST_RUN(test_to_device);
    TEST_RUN(test_guard_faults);
    CHECK_EQ_INT(test_guarded_live(), 0); /* every guarded buffer freed */
    return TEST_EXIT();
}
