/* test_backward_hook.c: shoal_gpt_set_backward_hook, which the trainer uses to start gradient
 * all-reduce buckets during backward. Checks on a real 2-layer model (CPU) that the hook reports
 * exactly the documented ranges in the documented order (ln_f, layer L-1 .. 0, wte+wpe), that
 * they are disjoint and cover every parameter, that each range is final when reported (a copy
 * taken inside the hook equals the gradient after backward, also when accumulating over two
 * backward calls), that the hook does not change the gradients, that an error from the hook
 * stops backward and is returned, and that removing the hook stops the calls. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "worker/model/gpt.h"

#define MAX_CALLS 16

typedef struct {
    shoal_gpt *m;
    float *snap; /* grads copied inside the hook, at the reported offsets */
    size_t off[MAX_CALLS], n[MAX_CALLS];
    int calls;
    int fail_at; /* call index that returns an error; -1: none */
} hook_log;

static shoal_status record(void *arg, size_t offset, size_t n) {
    hook_log *h = arg;
    if (h->calls == h->fail_at) return SHOAL_ERR_IO;
    if (h->calls < MAX_CALLS) {
        h->off[h->calls] = offset;
        h->n[h->calls] = n;
    }
    h->calls++;
    size_t np = shoal_gpt_num_params(h->m);
    if (offset <= np && n <= np - offset)
        memcpy(h->snap + offset, shoal_gpt_grads(h->m) + offset, n * sizeof(float));
    return SHOAL_OK;
}

static shoal_gpt *model(void) {
    shoal_gpt_config c = {2, 2, 16, 257, 64, 1e-5f};
    shoal_gpt *m = NULL;
    if (shoal_gpt_create(&c, &m) != SHOAL_OK) return NULL;
    if (shoal_gpt_init_random(m, 7) != SHOAL_OK) {
        shoal_gpt_free(m);
        return NULL;
    }
    return m;
}

/* One forward + backward on a fixed batch (seed picks the tokens). */
static shoal_status step(shoal_gpt *m, unsigned seed) {
    enum { B = 2, T = 8 };
    int32_t tok[B * T], tgt[B * T];
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int32_t)((i * 37u + seed * 101u) % 257u);
        tgt[i] = (int32_t)((i * 53u + seed * 7u + 1u) % 257u);
    }
    float loss = 0;
    SHOAL_CHECK(shoal_gpt_forward(m, tok, tgt, NULL, B, T, &loss));
    return shoal_gpt_backward(m);
}

static void test_ranges_order_and_finality(void) {
    shoal_gpt *m = model();
    CHECK(m != NULL);
    if (!m) return;
    size_t np = shoal_gpt_num_params(m);
    hook_log h = {.m = m, .snap = calloc(np, sizeof(float)), .fail_at = -1};
    float *ref = malloc(np * sizeof(float));
    CHECK(h.snap && ref);
    if (!h.snap || !ref) goto out;
    /* reference: the same two backward calls without the hook */
    shoal_gpt_zero_grad(m);
    CHECK_EQ_INT(step(m, 1), SHOAL_OK);
    CHECK_EQ_INT(step(m, 2), SHOAL_OK);
    memcpy(ref, shoal_gpt_grads(m), np * sizeof(float));

    shoal_gpt_zero_grad(m);
    CHECK_EQ_INT(step(m, 1), SHOAL_OK); /* accumulate first, as the trainer does */
    shoal_gpt_set_backward_hook(m, record, &h);
    CHECK_EQ_INT(step(m, 2), SHOAL_OK);
    CHECK_EQ_INT(h.calls, 4);
    const shoal_gpt_tensor *lnf = shoal_gpt_tensor_find(m, "transformer.ln_f.weight");
    const shoal_gpt_tensor *l0 = shoal_gpt_tensor_find(m, "transformer.h.0.ln_1.weight");
    const shoal_gpt_tensor *l1 = shoal_gpt_tensor_find(m, "transformer.h.1.ln_1.weight");
    const shoal_gpt_tensor *wpe = shoal_gpt_tensor_find(m, "transformer.wpe.weight");
    CHECK(lnf && l0 && l1 && wpe);
    if (lnf && l0 && l1 && wpe && h.calls == 4) {
        size_t layer = 12 * 16 * 16 + 13 * 16;
        CHECK(h.off[0] == lnf->offset && h.n[0] == 2 * 16);
        CHECK(h.off[1] == l1->offset && h.n[1] == layer);
        CHECK(h.off[2] == l0->offset && h.n[2] == layer);
        CHECK(h.off[3] == 0 && h.n[3] == wpe->offset + wpe->numel);
        /* disjoint and covering: sorted they tile [0, np) */
        CHECK(h.n[3] == l0->offset && l0->offset + layer == l1->offset &&
              l1->offset + layer == lnf->offset && lnf->offset + 2 * 16 == np);
    }
    /* each range was final when reported, and the hook changed nothing */
    CHECK(memcmp(h.snap, shoal_gpt_grads(m), np * sizeof(float)) == 0);
    CHECK(memcmp(ref, shoal_gpt_grads(m), np * sizeof(float)) == 0);

    /* an error from the hook stops backward and is returned */
    h.calls = 0;
    h.fail_at = 1;
    CHECK_EQ_INT(step(m, 3), SHOAL_ERR_IO);
    CHECK_EQ_INT(h.calls, 1);
    /* removed: no more calls */
    shoal_gpt_set_backward_hook(m, NULL, NULL);
    h.calls = 0;
    h.fail_at = -1;
    CHECK_EQ_INT(step(m, 3), SHOAL_OK);
    CHECK_EQ_INT(h.calls, 0);
    shoal_gpt_set_backward_hook(NULL, record, &h); /* NULL model: no-op */
out:
    free(ref);
    free(h.snap);
    shoal_gpt_free(m);
}

int main(void) {
    TEST_RUN(test_ranges_order_and_finality);
    return TEST_EXIT();
}
