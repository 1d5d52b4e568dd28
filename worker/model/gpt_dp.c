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
#ifdef _OPENMP
#include <omp.h>
#endif
#include "worker/model/gpt_dp.h"
#include "worker/model/gpt_internal.h"

#define OP(op, ...) SHOAL_CHECK(SHOAL_OP(&m->ctx, op, __VA_ARGS__))

/* Maximum threads the per-example reductions use (contexts are per thread). */
enum { MAX_NT = 256 };

typedef struct {
    shoal_gpt_norm_mode mode;
    int nt;          /* threads over examples */
    double *nsq;     /* (B) running squared norms */
    shoal_ctx *tctx; /* (nt) one-thread contexts for per-example GEMMs */
    float *gram;     /* (nt, 2, T, T) Gram matrices */
    float *W;        /* (nt, W_cap) materialised per-example weight gradients */
    size_t W_cap;
    double *lnbuf; /* (nt, 2C) layernorm per-example gradients */
} norm_ctx;

/* The stored output gradients of the norms pass, (N, width) each, in dp_block. */
typedef struct {
    float *lnf, *enc;                         /* (N,C) */
    float *fcp, *fc, *ln2, *attp, *qkv, *ln1; /* per layer: (N,C) (N,4C) (N,C) (N,C) (N,3C) (N,C) */
} dp_store;

static size_t store_floats(const shoal_gpt_config *c, size_t N) {
    return N * (size_t)c->n_embd * (2 + 11 * (size_t)c->n_layer);
}

/* Pointers of layer l (l = -1: the global ones) into the block. */
static dp_store store_at(shoal_gpt *m, int l) {
    size_t NC = (size_t)m->cur_B * m->cur_T * m->cfg.n_embd;
    dp_store s = {0};
    s.lnf = m->dp_block;
    s.enc = s.lnf + NC;
    if (l >= 0) {
        s.fcp = s.enc + NC + (size_t)l * 11 * NC;
        s.fc = s.fcp + NC;
        s.ln2 = s.fc + 4 * NC;
        s.attp = s.ln2 + NC;
        s.qkv = s.attp + NC;
        s.ln1 = s.qkv + 3 * NC;
    }
    return s;
}

/* Squared per-example norms of a linear layer's weight (and bias) gradient, examples spread
 * over threads, each with its own one-thread context and scratch. */
static shoal_status linear_norms(norm_ctx *nc, const float *inp, const float *dout, int B, int T,
                                 int IC, int OC, int has_bias) {
    int ghost = nc->mode == SHOAL_GPT_NORM_GHOST ||
                (nc->mode == SHOAL_GPT_NORM_AUTO &&
                 (double)T * (double)(IC + OC) <= (double)IC * (double)OC);
    size_t need = (size_t)IC * (size_t)OC;
    if (!ghost && need > nc->W_cap) {
        free(nc->W);
        nc->W_cap = 0;
        nc->W = malloc((size_t)nc->nt * need * sizeof(float));
        SHOAL_REQUIRE(nc->W != NULL, SHOAL_ERR_NOMEM,
                      "per-example norms: out of memory for %d gradients of %d x %d", nc->nt, IC,
                      OC);
        nc->W_cap = need;
    }
    shoal_status sts[MAX_NT];
    for (int i = 0; i < nc->nt; i++)
        sts[i] = SHOAL_OK;
#pragma omp parallel for num_threads(nc->nt) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        int th = 0;
#ifdef _OPENMP
        th = omp_get_thread_num();
#endif
        shoal_ctx *ctx = &nc->tctx[th];
        const float *a = inp + (size_t)b * T * IC, *g = dout + (size_t)b * T * OC;
        double s = 0.0;
        shoal_status st;
        if (ghost) { /* A = a a^T, G = g g^T: matmul with the (OC=T, IC) "weight" a itself */
            float *A = nc->gram + (size_t)th * 2 * T * T, *G = A + (size_t)T * T;
            st = SHOAL_OP(ctx, matmul_forward, A, a, a, NULL, T, IC, T, SHOAL_W_OUT_IN);
            if (st == SHOAL_OK)
                st = SHOAL_OP(ctx, matmul_forward, G, g, g, NULL, T, OC, T, SHOAL_W_OUT_IN);
            size_t TT = (size_t)T * T;
            for (size_t i = 0; i < TT; i++)
                s += (double)A[i] * (double)G[i];
        } else {
            float *W = nc->W + (size_t)th * nc->W_cap;
            memset(W, 0, need * sizeof(float));
            st = SHOAL_OP(ctx, matmul_backward, NULL, W, NULL, g, a, NULL, T, IC, OC,
                          SHOAL_W_IN_OUT);
            for (size_t i = 0; i < need; i++)
                s += (double)W[i] * (double)W[i];
        }
        if (st != SHOAL_OK) sts[th] = st;
        if (has_bias) {
            for (int o = 0; o < OC; o++) {
                double v = 0.0;
                for (int t = 0; t < T; t++)
                    v += g[(size_t)t * OC + o];
                s += v * v;
            }
        }
        nc->nsq[b] += s;
    }
    for (int i = 0; i < nc->nt; i++)
        SHOAL_CHECK(sts[i]);
    return SHOAL_OK;
}

/* Squared per-example norms of a layernorm's weight and bias gradients. */
static void layernorm_norms(norm_ctx *nc, const float *dout, const float *inp, const float *mean,
                            const float *rstd, int B, int T, int C) {
#pragma omp parallel for num_threads(nc->nt) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        int th = 0;
#ifdef _OPENMP
        th = omp_get_thread_num();
#endif
        double *dw = nc->lnbuf + (size_t)th * 2 * C, *db = dw + C;
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
        for (int c = 0; c < 2 * C; c++)
            s += dw[c] * dw[c];
        nc->nsq[b] += s;
    }
}

static double dot(const float *x, const float *y, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += (double)x[i] * y[i];
    return s;
}

/* wpe, the embedding part of wte and its cross term with the lm_head part. dx (B,T,C) is the
 * gradient of the encoder output, dlogits (B,T,V) the head's output gradient, lnf its input. */
static void embedding_norms(norm_ctx *nc, const float *dx, const int32_t *tokens,
                            const float *dlogits, const float *lnf, int B, int T, int C, int V) {
#pragma omp parallel for num_threads(nc->nt) schedule(dynamic, 1)
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

/* The norms pass: the backward walk from dlogits (in a->logits) to the encoder with every
 * parameter gradient skipped, a per-example reduction after each op, and each op's output
 * gradient left in (or copied to) the store for the weighted pass. */
static shoal_status norms_walk(shoal_gpt *m, norm_ctx *nc) {
    const shoal_gpt_config *c = &m->cfg;
    int B = m->cur_B, T = m->cur_T, N = B * T, C = c->n_embd, NH = c->n_head;
    int V = c->vocab_size, L = c->n_layer;
    size_t NC = (size_t)N * C;
    gpt_acts *a = &m->acts;
    dp_store g0 = store_at(m, -1);

    OP(zero, g0.lnf, NC * sizeof(float));
    OP(matmul_backward, g0.lnf, NULL, NULL, a->logits, a->lnf, m->w.wte, N, C, V, SHOAL_W_OUT_IN);
    const float *last = a->res3 + (size_t)(L - 1) * NC;
    SHOAL_CHECK(linear_norms(nc, a->lnf, a->logits, B, T, C, V, 0));
    layernorm_norms(nc, g0.lnf, last, a->lnf_mean, a->lnf_rstd, B, T, C);
    OP(zero, a->dres, NC * sizeof(float));
    OP(layernorm_backward, a->dres, NULL, NULL, g0.lnf, last, m->w.lnf_w, a->lnf_mean, a->lnf_rstd,
       N, C);

    for (int l = L - 1; l >= 0; l--) {
        const gpt_layer *w = &m->w.h[l];
        dp_store s = store_at(m, l);
        const float *in = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * NC;
        float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC;
        float *att = a->att + (size_t)l * B * NH * T * T;
        float *res2 = a->res2 + l * NC, *ln2 = a->ln2 + l * NC, *fch = a->fch + l * 4 * NC;
        float *m1 = a->ln1_mean + (size_t)l * N, *r1 = a->ln1_rstd + (size_t)l * N;
        float *m2 = a->ln2_mean + (size_t)l * N, *r2 = a->ln2_rstd + (size_t)l * N;

        memcpy(s.fcp, a->dres, NC * sizeof(float));
        OP(gelu_forward, a->fchg, fch, 4 * NC);
        OP(zero, a->d4a, 4 * NC * sizeof(float));
        OP(matmul_backward, a->d4a, NULL, NULL, s.fcp, a->fchg, w->fcp_w, N, 4 * C, C,
           SHOAL_W_IN_OUT);
        SHOAL_CHECK(linear_norms(nc, a->fchg, s.fcp, B, T, 4 * C, C, 1));
        OP(zero, s.fc, 4 * NC * sizeof(float));
        OP(gelu_backward, s.fc, a->d4a, fch, 4 * NC);
        OP(zero, s.ln2, NC * sizeof(float));
        OP(matmul_backward, s.ln2, NULL, NULL, s.fc, ln2, w->fc_w, N, C, 4 * C, SHOAL_W_IN_OUT);
        SHOAL_CHECK(linear_norms(nc, ln2, s.fc, B, T, C, 4 * C, 1));
        layernorm_norms(nc, s.ln2, res2, m2, r2, B, T, C);
        OP(layernorm_backward, a->dres, NULL, NULL, s.ln2, res2, w->ln2_w, m2, r2, N, C);

        memcpy(s.attp, a->dres, NC * sizeof(float));
        OP(zero, a->dbtc, NC * sizeof(float));
        OP(matmul_backward, a->dbtc, NULL, NULL, s.attp, atty, w->attp_w, N, C, C, SHOAL_W_IN_OUT);
        SHOAL_CHECK(linear_norms(nc, atty, s.attp, B, T, C, C, 1));
        OP(zero, s.qkv, 3 * NC * sizeof(float));
        OP(attention_backward, s.qkv, a->dbtc, qkv, att, B, T, C, NH);
        OP(zero, s.ln1, NC * sizeof(float));
        OP(matmul_backward, s.ln1, NULL, NULL, s.qkv, ln1, w->qkv_w, N, C, 3 * C, SHOAL_W_IN_OUT);
        SHOAL_CHECK(linear_norms(nc, ln1, s.qkv, B, T, C, 3 * C, 1));
        layernorm_norms(nc, s.ln1, in, m1, r1, B, T, C);
        OP(layernorm_backward, a->dres, NULL, NULL, s.ln1, in, w->ln1_w, m1, r1, N, C);
    }
    memcpy(g0.enc, a->dres, NC * sizeof(float));
    embedding_norms(nc, g0.enc, a->tokens, a->logits, a->lnf, B, T, C, V);
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
    int B = m->cur_B, T = m->cur_T, V = m->cfg.vocab_size, C = m->cfg.n_embd;
    size_t need = store_floats(&m->cfg, (size_t)B * T);
    if (need > m->dp_floats) {
        free(m->dp_block);
        m->dp_floats = 0;
        m->dp_block = malloc(need * sizeof(float));
        SHOAL_REQUIRE(m->dp_block != NULL, SHOAL_ERR_NOMEM,
                      "per-example norms: out of memory storing output gradients (%.1f MB)",
                      4.0 * (double)need / 1e6);
        m->dp_floats = need;
    }
    m->have_targets = 0;
    gpt_acts *a = &m->acts;
    norm_ctx nc = {0};
    nc.mode = mode;
    nc.nt = m->ctx.n_threads < 1 ? 1 : (m->ctx.n_threads > MAX_NT ? MAX_NT : m->ctx.n_threads);
    if (nc.nt > B) nc.nt = B;
    int n_ctx = 0;
    nc.nsq = calloc((size_t)B, sizeof(double));
    nc.tctx = calloc((size_t)nc.nt, sizeof(shoal_ctx));
    nc.gram = malloc((size_t)nc.nt * 2 * T * T * sizeof(float));
    nc.lnbuf = malloc((size_t)nc.nt * 2 * C * sizeof(double));
    SHOAL_REQUIRE_GOTO(nc.nsq && nc.tctx && nc.gram && nc.lnbuf, SHOAL_ERR_NOMEM,
                       "per-example norms: out of memory");
    for (; n_ctx < nc.nt; n_ctx++)
        SHOAL_CHECK_GOTO(shoal_ctx_init_cpu(&nc.tctx[n_ctx], 1));

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
            SHOAL_CHECK_GOTO(SHOAL_OP(&m->ctx, scale, a->logits + (size_t)b * T * V, (size_t)T * V,
                                      (float)(1.0 / count)));
    }
    SHOAL_CHECK_GOTO(norms_walk(m, &nc));
    for (int b = 0; b < B; b++)
        norms[b] = sqrt(nc.nsq[b] > 0.0 ? nc.nsq[b] : 0.0);
    m->dp_ready = 1;
cleanup:
    for (int i = 0; i < n_ctx; i++)
        shoal_ctx_free(&nc.tctx[i]);
    free(nc.lnbuf);
    free(nc.W);
    free(nc.gram);
    free(nc.tctx);
    free(nc.nsq);
    return st;
}

shoal_status shoal_gpt_per_example_grad_norms(shoal_gpt *m, double *norms) {
    return shoal_gpt_per_example_grad_norms_ex(m, SHOAL_GPT_NORM_AUTO, norms);
}

/* rows (N, width): row r *= f[r / T] */
static void scale_rows(float *x, const float *f, int N, int T, int width, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < N; r++) {
        float s = f[r / T];
        if (s == 1.0f) continue;
        float *row = x + (size_t)r * width;
        for (int i = 0; i < width; i++)
            row[i] *= s;
    }
}

shoal_status shoal_gpt_dp_backward_weighted(shoal_gpt *m, const float *factors) {
    SHOAL_REQUIRE(m && factors, SHOAL_ERR_INVALID_ARG, "weighted backward: model or factors NULL");
    SHOAL_REQUIRE(m->dp_ready, SHOAL_ERR_INVALID_ARG,
                  "weighted backward needs shoal_gpt_per_example_grad_norms on the current "
                  "forward first (and runs once per forward)");
    const shoal_gpt_config *c = &m->cfg;
    int B = m->cur_B, T = m->cur_T, N = B * T, C = c->n_embd, V = c->vocab_size;
    int L = c->n_layer, nt = m->ctx.n_threads;
    for (int b = 0; b < B; b++)
        SHOAL_REQUIRE(isfinite(factors[b]), SHOAL_ERR_INVALID_ARG,
                      "weighted backward: factor %d is not finite", b);
    m->dp_ready = 0;
    size_t NC = (size_t)N * C;
    gpt_acts *a = &m->acts;
    /* Every weight gradient is linear in the example's output gradient; scale the stored ones
     * (all of them follow each other in the block, (N, width) each) and, for the lm_head,
     * lnf (C wide) rather than dlogits (V wide): the activations are dead after this pass. */
    dp_store g0 = store_at(m, -1);
    scale_rows(g0.lnf, factors, N, T, C, nt);
    scale_rows(g0.enc, factors, N, T, C, nt);
    for (int l = 0; l < L; l++) {
        dp_store s = store_at(m, l);
        scale_rows(s.fcp, factors, N, T, C, nt);
        scale_rows(s.fc, factors, N, T, 4 * C, nt);
        scale_rows(s.ln2, factors, N, T, C, nt);
        scale_rows(s.attp, factors, N, T, C, nt);
        scale_rows(s.qkv, factors, N, T, 3 * C, nt);
        scale_rows(s.ln1, factors, N, T, C, nt);
    }
    scale_rows(a->lnf, factors, N, T, C, nt);
    OP(matmul_backward, NULL, m->g.wte, NULL, a->logits, a->lnf, m->w.wte, N, C, V, SHOAL_W_OUT_IN);
    const float *last = a->res3 + (size_t)(L - 1) * NC;
    OP(layernorm_backward, NULL, m->g.lnf_w, m->g.lnf_b, g0.lnf, last, m->w.lnf_w, a->lnf_mean,
       a->lnf_rstd, N, C);
    for (int l = 0; l < L; l++) {
        const gpt_layer *w = &m->w.h[l];
        gpt_layer *g = &m->g.h[l];
        dp_store s = store_at(m, l);
        const float *in = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * NC;
        float *ln1 = a->ln1 + l * NC, *atty = a->atty + l * NC;
        float *res2 = a->res2 + l * NC, *ln2 = a->ln2 + l * NC, *fch = a->fch + l * 4 * NC;
        float *m1 = a->ln1_mean + (size_t)l * N, *r1 = a->ln1_rstd + (size_t)l * N;
        float *m2 = a->ln2_mean + (size_t)l * N, *r2 = a->ln2_rstd + (size_t)l * N;
        OP(gelu_forward, a->fchg, fch, 4 * NC);
        OP(matmul_backward, NULL, g->fcp_w, g->fcp_b, s.fcp, a->fchg, w->fcp_w, N, 4 * C, C,
           SHOAL_W_IN_OUT);
        OP(matmul_backward, NULL, g->fc_w, g->fc_b, s.fc, ln2, w->fc_w, N, C, 4 * C,
           SHOAL_W_IN_OUT);
        OP(layernorm_backward, NULL, g->ln2_w, g->ln2_b, s.ln2, res2, w->ln2_w, m2, r2, N, C);
        OP(matmul_backward, NULL, g->attp_w, g->attp_b, s.attp, atty, w->attp_w, N, C, C,
           SHOAL_W_IN_OUT);
        OP(matmul_backward, NULL, g->qkv_w, g->qkv_b, s.qkv, ln1, w->qkv_w, N, C, 3 * C,
           SHOAL_W_IN_OUT);
        OP(layernorm_backward, NULL, g->ln1_w, g->ln1_b, s.ln1, in, w->ln1_w, m1, r1, N, C);
    }
    OP(encoder_backward, m->g.wte, m->g.wpe, g0.enc, a->tokens, B, T, C);
    return SHOAL_OK;
}
