/* gpt_dp.c: per-example gradient norms (ghost norms) and ghost clipping for the GPT.
 *
 * The backward walk below is the op sequence of gpt.c's shoal_gpt_backward, run twice: the
 * norms pass with every parameter-gradient pointer NULL (ops skip them, kernels/ops.h) and a
 * per-example reduction after each op whose inputs it needs; the weighted pass with the
 * gradient block and no reductions. Per-example losses are means over each example's own
 * counted tokens, so the dlogits rows of example b are scaled by 1/count_b instead of the
 * batch's 1/count (kernels' crossentropy_backward with scale 1, then one scale op per
 * example). Reductions accumulate in double; Gram matrices come from the context's GEMM.
 * Why and what is valid when: see gpt_dp.h. Tested by tests/dp/test_gpt_dp.c.
 */
#define SHOAL_LOG_SUBSYS "model"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "worker/model/gpt_dp.h"
#include "worker/model/gpt_internal.h"

#define OP(op, ...) SHOAL_CHECK(SHOAL_OP(&m->ctx, op, __VA_ARGS__))

typedef struct {
    shoal_gpt_norm_mode mode;
    double *nsq; /* (B) running squared norms */
    float *A, *G; /* (T,T) Gram matrices */
    float *W;     /* materialised per-example weight gradient, grown on demand */
    size_t W_cap;
} norm_ctx;

/* Squared per-example norms of a linear layer's weight (and bias) gradient. */
static shoal_status linear_norms(shoal_gpt *m, norm_ctx *nc, const float *inp, const float *dout,
                                 int B, int T, int IC, int OC, int has_bias) {
    int ghost = nc->mode == SHOAL_GPT_NORM_GHOST ||
                (nc->mode == SHOAL_GPT_NORM_AUTO &&
                 (double)T * (double)(IC + OC) <= (double)IC * (double)OC);
    if (!ghost && (size_t)IC * (size_t)OC > nc->W_cap) {
        free(nc->W);
        nc->W_cap = (size_t)IC * (size_t)OC;
        nc->W = malloc(nc->W_cap * sizeof(float));
        SHOAL_REQUIRE(nc->W != NULL, SHOAL_ERR_NOMEM,
                      "per-example norms: out of memory for a %d x %d gradient", IC, OC);
    }
    for (int b = 0; b < B; b++) {
        const float *a = inp + (size_t)b * T * IC, *g = dout + (size_t)b * T * OC;
        double s = 0.0;
        if (ghost) { /* A = a a^T, G = g g^T: matmul with the (OC=T, IC) "weight" a itself */
            OP(matmul_forward, nc->A, a, a, NULL, T, IC, T, SHOAL_W_OUT_IN);
            OP(matmul_forward, nc->G, g, g, NULL, T, OC, T, SHOAL_W_OUT_IN);
            size_t TT = (size_t)T * T;
            for (size_t i = 0; i < TT; i++) s += (double)nc->A[i] * (double)nc->G[i];
        } else {
            OP(zero, nc->W, (size_t)IC * OC * sizeof(float));
            OP(matmul_backward, NULL, nc->W, NULL, g, a, NULL, T, IC, OC, SHOAL_W_IN_OUT);
            OP(norm_sq, nc->W, (size_t)IC * OC, &s);
        }
        if (has_bias) {
            for (int o = 0; o < OC; o++) {
                double v = 0.0;
                for (int t = 0; t < T; t++) v += g[(size_t)t * OC + o];
                s += v * v;
            }
        }
        nc->nsq[b] += s;
    }
    return SHOAL_OK;
}

/* Squared per-example norms of a layernorm's weight and bias gradients. */
static void layernorm_norms(norm_ctx *nc, const float *dout, const float *inp, const float *mean,
                            const float *rstd, int B, int T, int C) {
    double *dw = calloc((size_t)2 * C, sizeof(double)), *db = dw + C;
    SHOAL_ASSERT(dw != NULL); /* 2C doubles: C <= 2^14 by limits.h */
    for (int b = 0; b < B; b++) {
        memset(dw, 0, (size_t)2 * C * sizeof(double));
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t;
            const float *x = inp + r * C, *d = dout + r * C;
            for (int c = 0; c < C; c++) {
                float xhat = (x[c] - mean[r]) * rstd[r];
                dw[c] += (double)d[c] * xhat;
                db[c] += d[c];
            }
        }
        double s = 0.0;
        for (int c = 0; c < 2 * C; c++) s += dw[c] * dw[c];
        nc->nsq[b] += s;
    }
    free(dw);
}

static double dot(const float *x, const float *y, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += (double)x[i] * y[i];
    return s;
}

/* wpe, the embedding part of wte and its cross term with the lm_head part. dx (B,T,C) is the
 * gradient of the encoder output, dlogits (B,T,V) the head's output gradient, lnf its input. */
static void embedding_norms(norm_ctx *nc, const float *dx, const int32_t *tokens,
                            const float *dlogits, const float *lnf, int B, int T, int C, int V) {
    for (int b = 0; b < B; b++) {
        const float *d = dx + (size_t)b * T * C, *h = lnf + (size_t)b * T * C;
        const float *dl = dlogits + (size_t)b * T * V;
        const int32_t *tok = tokens + (size_t)b * T;
        double s = 0.0;
        for (int t = 0; t < T; t++) {
            double dd = dot(d + (size_t)t * C, d + (size_t)t * C, C);
            s += 2.0 * dd; /* wpe row t, and the t == s term of the wte rows */
            for (int u = 0; u < t; u++)
                if (tok[u] == tok[t]) s += 2.0 * dot(d + (size_t)t * C, d + (size_t)u * C, C);
            double cross = 0.0; /* <E, H> restricted to row tok[t] and dx_t */
            for (int u = 0; u < T; u++) {
                float w = dl[(size_t)u * V + tok[t]];
                if (w != 0.0f) cross += (double)w * dot(h + (size_t)u * C, d + (size_t)t * C, C);
            }
            s += 2.0 * cross;
        }
        nc->nsq[b] += s;
    }
}

/* The backward walk from dlogits (in a->logits) to the encoder. nc != NULL: norms pass (no
 * parameter gradients); nc == NULL: parameter gradients accumulate into m->grads. */
static shoal_status walk(shoal_gpt *m, norm_ctx *nc) {
    const shoal_gpt_config *c = &m->cfg;
    int B = m->cur_B, T = m->cur_T, N = B * T, C = c->n_embd, NH = c->n_head;
    int V = c->vocab_size, L = c->n_layer;
    size_t NC = (size_t)N * C;
    gpt_acts *a = &m->acts;
    int grads = nc == NULL;
#define GP(p) (grads ? (p) : NULL)

    OP(zero, a->dbtc, NC * sizeof(float));
    OP(matmul_backward, a->dbtc, GP(m->g.wte), NULL, a->logits, a->lnf, m->w.wte, N, C, V,
       SHOAL_W_OUT_IN);
    const float *last = a->res3 + (size_t)(L - 1) * NC;
    if (nc) {
        SHOAL_CHECK(linear_norms(m, nc, a->lnf, a->logits, B, T, C, V, 0));
        layernorm_norms(nc, a->dbtc, last, a->lnf_mean, a->lnf_rstd, B, T, C);
    }
    OP(zero, a->dres, NC * sizeof(float));
    OP(layernorm_backward, a->dres, GP(m->g.lnf_w), GP(m->g.lnf_b), a->dbtc, last, m->w.lnf_w,
       a->lnf_mean, a->lnf_rstd, N, C);

    for (int l = L - 1; l >= 0; l--) {
        const gpt_layer *w = &m->w.h[l];
        gpt_layer *g = &m->g.h[l];
        const float *in = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * NC;
        float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC;
        float *att = a->att + (size_t)l * B * NH * T * T;
        float *res2 = a->res2 + l * NC, *ln2 = a->ln2 + l * NC, *fch = a->fch + l * 4 * NC;
        float *m1 = a->ln1_mean + (size_t)l * N, *r1 = a->ln1_rstd + (size_t)l * N;
        float *m2 = a->ln2_mean + (size_t)l * N, *r2 = a->ln2_rstd + (size_t)l * N;

        OP(gelu_forward, a->fchg, fch, 4 * NC);
        OP(zero, a->d4a, 4 * NC * sizeof(float));
        OP(matmul_backward, a->d4a, GP(g->fcp_w), GP(g->fcp_b), a->dres, a->fchg, w->fcp_w, N,
           4 * C, C, SHOAL_W_IN_OUT);
        if (nc) SHOAL_CHECK(linear_norms(m, nc, a->fchg, a->dres, B, T, 4 * C, C, 1));
        OP(zero, a->d4b, 4 * NC * sizeof(float));
        OP(gelu_backward, a->d4b, a->d4a, fch, 4 * NC);
        OP(zero, a->dbtc, NC * sizeof(float));
        OP(matmul_backward, a->dbtc, GP(g->fc_w), GP(g->fc_b), a->d4b, ln2, w->fc_w, N, C, 4 * C,
           SHOAL_W_IN_OUT);
        if (nc) {
            SHOAL_CHECK(linear_norms(m, nc, ln2, a->d4b, B, T, C, 4 * C, 1));
            layernorm_norms(nc, a->dbtc, res2, m2, r2, B, T, C);
        }
        OP(layernorm_backward, a->dres, GP(g->ln2_w), GP(g->ln2_b), a->dbtc, res2, w->ln2_w, m2,
           r2, N, C);

        OP(zero, a->dbtc, NC * sizeof(float));
        OP(matmul_backward, a->dbtc, GP(g->attp_w), GP(g->attp_b), a->dres, atty, w->attp_w, N,
           C, C, SHOAL_W_IN_OUT);
        if (nc) SHOAL_CHECK(linear_norms(m, nc, atty, a->dres, B, T, C, C, 1));
        OP(zero, a->dqkv, 3 * NC * sizeof(float));
        OP(attention_backward, a->dqkv, a->dbtc, qkv, att, B, T, C, NH);
        OP(zero, a->dbtc, NC * sizeof(float));
        OP(matmul_backward, a->dbtc, GP(g->qkv_w), GP(g->qkv_b), a->dqkv, ln1, w->qkv_w, N, C,
           3 * C, SHOAL_W_IN_OUT);
        if (nc) {
            SHOAL_CHECK(linear_norms(m, nc, ln1, a->dqkv, B, T, C, 3 * C, 1));
            layernorm_norms(nc, a->dbtc, in, m1, r1, B, T, C);
        }
        OP(layernorm_backward, a->dres, GP(g->ln1_w), GP(g->ln1_b), a->dbtc, in, w->ln1_w, m1, r1,
           N, C);
    }
    if (nc) {
        embedding_norms(nc, a->dres, a->tokens, a->logits, a->lnf, B, T, C, V);
    } else {
        OP(encoder_backward, m->g.wte, m->g.wpe, a->dres, a->tokens, B, T, C);
    }
#undef GP
    return SHOAL_OK;
}

shoal_status shoal_gpt_per_example_grad_norms_ex(shoal_gpt *m, shoal_gpt_norm_mode mode,
                                                 double *norms) {
    shoal_status st = SHOAL_OK;
    SHOAL_REQUIRE(m && norms, SHOAL_ERR_INVALID_ARG, "per-example norms: model or norms NULL");
    SHOAL_REQUIRE(m->ctx.backend == SHOAL_BACKEND_CPU, SHOAL_ERR_UNSUPPORTED,
                  "per-example norms: only CPU contexts are supported (backend %s)",
                  m->ctx.k->name);
    SHOAL_REQUIRE(mode >= SHOAL_GPT_NORM_AUTO && mode <= SHOAL_GPT_NORM_MATERIALISE,
                  SHOAL_ERR_INVALID_ARG, "per-example norms: unknown mode %d", (int)mode);
    SHOAL_REQUIRE(m->have_targets, SHOAL_ERR_INVALID_ARG,
                  "per-example norms need a forward with targets first (once per forward)");
    m->have_targets = 0;
    int B = m->cur_B, T = m->cur_T, V = m->cfg.vocab_size;
    gpt_acts *a = &m->acts;
    norm_ctx nc = {mode, NULL, NULL, NULL, NULL, 0};
    nc.nsq = calloc((size_t)B, sizeof(double));
    nc.A = malloc((size_t)2 * T * T * sizeof(float));
    SHOAL_REQUIRE_GOTO(nc.nsq && nc.A, SHOAL_ERR_NOMEM, "per-example norms: out of memory");
    nc.G = nc.A + (size_t)T * T;

    /* dlogits with example b's rows scaled by 1/count_b: the gradient of L_b */
    SHOAL_CHECK_GOTO(SHOAL_OP(&m->ctx, crossentropy_backward, a->logits, a->logits, a->lse,
                              a->targets, a->mask, 1.0f, B * T, V));
    for (int b = 0; b < B; b++) {
        int count = 0;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            count += a->targets[i] >= 0 && a->mask[i];
        }
        /* count 0: the rows are already zero */
        if (count > 1)
            SHOAL_CHECK_GOTO(SHOAL_OP(&m->ctx, scale, a->logits + (size_t)b * T * V,
                                      (size_t)T * V, (float)(1.0 / count)));
    }
    SHOAL_CHECK_GOTO(walk(m, &nc));
    for (int b = 0; b < B; b++) norms[b] = sqrt(nc.nsq[b] > 0.0 ? nc.nsq[b] : 0.0);
    m->dp_ready = 1;
cleanup:
    free(nc.W);
    free(nc.A);
    free(nc.nsq);
    return st;
}

shoal_status shoal_gpt_per_example_grad_norms(shoal_gpt *m, double *norms) {
    return shoal_gpt_per_example_grad_norms_ex(m, SHOAL_GPT_NORM_AUTO, norms);
}

shoal_status shoal_gpt_dp_backward_weighted(shoal_gpt *m, const float *factors) {
    SHOAL_REQUIRE(m && factors, SHOAL_ERR_INVALID_ARG, "weighted backward: model or factors NULL");
    SHOAL_REQUIRE(m->dp_ready, SHOAL_ERR_INVALID_ARG,
                  "weighted backward needs shoal_gpt_per_example_grad_norms on the current "
                  "forward first (and runs once per forward)");
    int B = m->cur_B, T = m->cur_T, V = m->cfg.vocab_size;
    for (int b = 0; b < B; b++)
        SHOAL_REQUIRE(isfinite(factors[b]), SHOAL_ERR_INVALID_ARG,
                      "weighted backward: factor %d is not finite", b);
    m->dp_ready = 0;
    for (int b = 0; b < B; b++)
        if (factors[b] != 1.0f)
            OP(scale, m->acts.logits + (size_t)b * T * V, (size_t)T * V, factors[b]);
    return walk(m, NULL);
}
