/* gpt_dp.c: per-example gradient norms (ghost norms) and ghost clipping for the GPT.
 *
 * The norms pass is the op sequence of gpt.c's shoal_gpt_backward with every parameter-gradient
 * pointer NULL (ops skip them, kernels/ops.h) and a per-example reduction after each op whose
 * inputs it needs; it stores the output gradients (and, when they fit, the per-example linear
 * weight gradients it materialised) in dp_block; the weighted pass forms the clipped sum from
 * them without a second walk. m->dp_ready records the plan (1: stored output gradients only,
 * 2: kept linear gradients too) for the weighted pass. Per-example losses are means over each
 * example's own counted tokens, so the dlogits rows of example b are scaled by 1/count_b instead of
 * the batch's 1/count (kernels' crossentropy_backward with scale 1, then one scale op per example).
 * Reductions accumulate in double; Gram matrices come from the context's GEMM. Why and what is
 * valid when: see gpt_dp.h. Tested by tests/dp/test_gpt_dp.c.
 */
#define SHOAL_LOG_SUBSYS "model"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
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
    int keep;        /* per-example linear weight gradients are kept (see keep_floats) */
    int nt;          /* threads over examples */
    double *nsq;     /* (B) running squared norms */
    shoal_ctx *tctx; /* (nt) one-thread contexts for per-example GEMMs */
    float *gram;     /* (nt, 2, T, T) Gram matrices */
    float *W;        /* (nt, W_cap) materialised per-example weight gradients */
    size_t W_cap;
    double *lnbuf;   /* (nt, lnstride) layernorm and bias per-example gradients */
    size_t lnstride; /* 4C: the widest biased layer, and 2C for a layernorm */
} norm_ctx;

/* The stored output gradients of the norms pass, (N, width) each, in dp_block. */
typedef struct {
    float *lnf, *enc;                         /* (N,C) */
    float *fcp, *fc, *ln2, *attp, *qkv, *ln1; /* per layer: (N,C) (N,4C) (N,C) (N,C) (N,3C) (N,C) */
    float *fcg; /* per layer (N,4C): GELU output, kept from the norms pass so that the weighted
                   pass does not recompute it (the model keeps one layer's only) */
} dp_store;

static size_t store_floats(const shoal_gpt_config *c, size_t N) {
    return N * (size_t)c->n_embd * (2 + 15 * (size_t)c->n_layer);
}

/* Floats of the kept per-example gradients of every linear layer (weights and biases) and of
 * the lm_head, for B examples: per layer c_attn C·3C + 3C, attn c_proj C·C + C, c_fc C·4C +
 * 4C, mlp c_proj 4C·C + C; the head V·C (wte's layout). Kept when it fits in
 * SHOAL_MAX_DP_KEEP_FLOATS (AUTO mode): the weighted pass then sums factors[b] times them
 * instead of running one GEMM per layer on scaled output gradients — the norms pass
 * materialised each a^T g anyway, and a weighted sum of B stored gradients costs B·IC·OC
 * additions against the GEMM's N·IC·OC multiply-adds. Models too large for it (GPT-2 at B = 8
 * needs 680 M floats) use ghost norms or throw-away materialisation per layer, and the GEMMs. */
static size_t keep_floats(const shoal_gpt_config *c, size_t B) {
    size_t C = (size_t)c->n_embd;
    return B * ((size_t)c->n_layer * (12 * C * C + 9 * C) + (size_t)c->vocab_size * C);
}

static int keep_plan(const shoal_gpt_config *c, int B, shoal_gpt_norm_mode mode) {
    return mode == SHOAL_GPT_NORM_AUTO && keep_floats(c, (size_t)B) <= SHOAL_MAX_DP_KEEP_FLOATS;
}

/* The kept gradients of one linear layer, (B, IC·OC) weights then (B, OC) biases. */
typedef struct {
    float *w, *b;
} kept_linear;

typedef struct {
    kept_linear qkv, attp, fc, fcp; /* per layer */
} kept_layer;

/* Kept gradients of layer l (l = -1: the lm_head, whose bias pointer is NULL). */
static kept_layer kept_at(shoal_gpt *m, int l, float **head) {
    const shoal_gpt_config *c = &m->cfg;
    size_t B = (size_t)m->cur_B, C = (size_t)c->n_embd;
    float *p = m->dp_block + store_floats(c, B * (size_t)m->cur_T);
    *head = p;
    kept_layer k;
    memset(&k, 0, sizeof k);
    if (l < 0) return k;
    p += B * (size_t)c->vocab_size * C + (size_t)l * B * (12 * C * C + 9 * C);
    k.qkv.w = p;
    k.qkv.b = p += B * 3 * C * C;
    k.attp.w = p += B * 3 * C;
    k.attp.b = p += B * C * C;
    k.fc.w = p += B * C;
    k.fc.b = p += B * 4 * C * C;
    k.fcp.w = p += B * 4 * C;
    k.fcp.b = p += B * 4 * C * C;
    return k;
}

/* Σ x[i]² in double: four running sums so that the loop is not one long dependency chain. */
static double sumsq(const float *x, size_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)x[i] * x[i];
        s1 += (double)x[i + 1] * x[i + 1];
        s2 += (double)x[i + 2] * x[i + 2];
        s3 += (double)x[i + 3] * x[i + 3];
    }
    for (; i < n; i++)
        s0 += (double)x[i] * x[i];
    return (s0 + s1) + (s2 + s3);
}

/* Pointers of layer l (l = -1: the global ones) into the block. */
static dp_store store_at(shoal_gpt *m, int l) {
    size_t NC = (size_t)m->cur_B * m->cur_T * m->cfg.n_embd;
    dp_store s = {0};
    s.lnf = m->dp_block;
    s.enc = s.lnf + NC;
    if (l >= 0) {
        s.fcp = s.enc + NC + (size_t)l * 15 * NC;
        s.fc = s.fcp + NC;
        s.ln2 = s.fc + 4 * NC;
        s.attp = s.ln2 + NC;
        s.qkv = s.attp + NC;
        s.ln1 = s.qkv + 3 * NC;
        s.fcg = s.ln1 + NC;
    }
    return s;
}

/* Squared per-example norms of a linear layer's weight (and bias) gradient, examples spread
 * over threads, each with its own one-thread context and scratch. With keep (not NULL) the
 * per-example weight gradient is materialised in keep->w + b·IC·OC (in `layout`) and its bias
 * gradient in keep->b + b·OC (when has_bias), for the weighted pass to sum. */
static shoal_status linear_norms(norm_ctx *nc, const float *inp, const float *dout, int B, int T,
                                 int IC, int OC, int has_bias, const kept_linear *keep,
                                 shoal_wlayout layout) {
    int ghost = !keep && (nc->mode == SHOAL_GPT_NORM_GHOST ||
                          (nc->mode == SHOAL_GPT_NORM_AUTO &&
                           (double)T * (double)(IC + OC) <= (double)IC * (double)OC));
    size_t need = (size_t)IC * (size_t)OC;
    if (!ghost && !keep && need > nc->W_cap) {
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
            float *W = keep ? keep->w + (size_t)b * need : nc->W + (size_t)th * nc->W_cap;
            memset(W, 0, need * sizeof(float));
            st = SHOAL_OP(ctx, matmul_backward, NULL, W, NULL, g, a, NULL, T, IC, OC, layout);
            s += sumsq(W, need);
        }
        if (st != SHOAL_OK) sts[th] = st;
        if (has_bias) { /* Σ_t g_t, row by row (contiguous), in double */
            double *v = nc->lnbuf + (size_t)th * nc->lnstride; /* OC <= 4C */
            memset(v, 0, (size_t)OC * sizeof(double));
            for (int t = 0; t < T; t++) {
                const float *row = g + (size_t)t * OC;
                for (int o = 0; o < OC; o++)
                    v[o] += row[o];
            }
            float *kb = keep ? keep->b + (size_t)b * OC : NULL;
            for (int o = 0; o < OC; o++) {
                if (kb) {
                    kb[o] = (float)v[o];
                    s += (double)kb[o] * kb[o];
                } else {
                    s += v[o] * v[o];
                }
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
        double *dw = nc->lnbuf + (size_t)th * nc->lnstride, *db = dw + C;
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

/* wpe, the embedding part of wte and its cross term with the lm_head part. dx (B,T,C) is the
 * gradient of the encoder output, dlogits (B,T,V) the head's output gradient, lnf its input.
 * Per example, with D = dx_b, H = lnf_b (T,C) and the Gram matrices DD = D D^T and
 * HD = H D^T (T,T, from the context's GEMM):
 *   ||wpe grad||² = Σ_t DD[t][t];  ||E||² = Σ_{t,u: tok_t = tok_u} DD[t][u];
 *   <E, H> = Σ_t Σ_u dlogits[u][tok_t]·HD[u][t]. */
static shoal_status embedding_norms(norm_ctx *nc, const float *dx, const int32_t *tokens,
                                    const float *dlogits, const float *lnf, int B, int T, int C,
                                    int V) {
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
        const float *d = dx + (size_t)b * T * C, *h = lnf + (size_t)b * T * C;
        const float *dl = dlogits + (size_t)b * T * V;
        const int32_t *tok = tokens + (size_t)b * T;
        float *DD = nc->gram + (size_t)th * 2 * T * T, *HD = DD + (size_t)T * T;
        shoal_status st = SHOAL_OP(ctx, matmul_forward, DD, d, d, NULL, T, C, T, SHOAL_W_OUT_IN);
        if (st == SHOAL_OK)
            st = SHOAL_OP(ctx, matmul_forward, HD, h, d, NULL, T, C, T, SHOAL_W_OUT_IN);
        if (st != SHOAL_OK) {
            sts[th] = st;
            continue;
        }
        double s = 0.0, cross = 0.0;
        for (int t = 0; t < T; t++) {
            const float *ddt = DD + (size_t)t * T;
            s += 2.0 * ddt[t]; /* wpe row t, and the t == u term of the wte rows */
            for (int u = 0; u < t; u++)
                if (tok[u] == tok[t]) s += 2.0 * ddt[u];
            int v = tok[t];
            for (int u = 0; u < T; u++)
                cross += (double)dl[(size_t)u * V + v] * HD[(size_t)u * T + t];
        }
        nc->nsq[b] += s + 2.0 * cross;
    }
    for (int i = 0; i < nc->nt; i++)
        SHOAL_CHECK(sts[i]);
    return SHOAL_OK;
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
    float *khead = NULL;
    kept_at(m, -1, &khead);
    kept_linear kh = {khead, NULL};

    OP(zero, g0.lnf, NC * sizeof(float));
    OP(matmul_backward, g0.lnf, NULL, NULL, a->logits, a->lnf, m->w.wte, N, C, V, SHOAL_W_OUT_IN);
    const float *last = a->res3 + (size_t)(L - 1) * NC;
    SHOAL_CHECK(
        linear_norms(nc, a->lnf, a->logits, B, T, C, V, 0, nc->keep ? &kh : NULL, SHOAL_W_OUT_IN));
    layernorm_norms(nc, g0.lnf, last, a->lnf_mean, a->lnf_rstd, B, T, C);
    OP(zero, a->dres, NC * sizeof(float));
    OP(layernorm_backward, a->dres, NULL, NULL, g0.lnf, last, m->w.lnf_w, a->lnf_mean, a->lnf_rstd,
       N, C);

    for (int l = L - 1; l >= 0; l--) {
        const gpt_layer *w = &m->w.h[l];
        dp_store s = store_at(m, l);
        kept_layer k = kept_at(m, l, &khead);
        const float *in = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * NC;
        float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC;
        float *att = a->att + (size_t)l * B * NH * T * T;
        float *res2 = a->res2 + l * NC, *ln2 = a->ln2 + l * NC, *fch = a->fch + l * 4 * NC;
        float *m1 = a->ln1_mean + (size_t)l * N, *r1 = a->ln1_rstd + (size_t)l * N;
        float *m2 = a->ln2_mean + (size_t)l * N, *r2 = a->ln2_rstd + (size_t)l * N;

        /* The GELU output: the forward left the last layer's in a->fchg. Kept layers need it
         * only here (a->fchg serves as scratch); the others keep it for the weighted pass. */
        float *fcg = nc->keep ? a->fchg : s.fcg;
        if (l != L - 1)
            OP(gelu_forward, fcg, fch, 4 * NC);
        else if (fcg != a->fchg)
            memcpy(fcg, a->fchg, 4 * NC * sizeof(float));
        memcpy(s.fcp, a->dres, NC * sizeof(float));
        OP(zero, a->d4a, 4 * NC * sizeof(float));
        OP(matmul_backward, a->d4a, NULL, NULL, s.fcp, fcg, w->fcp_w, N, 4 * C, C, SHOAL_W_IN_OUT);
        SHOAL_CHECK(linear_norms(nc, fcg, s.fcp, B, T, 4 * C, C, 1, nc->keep ? &k.fcp : NULL,
                                 SHOAL_W_IN_OUT));
        OP(zero, s.fc, 4 * NC * sizeof(float));
        OP(gelu_backward, s.fc, a->d4a, fch, 4 * NC);
        OP(zero, s.ln2, NC * sizeof(float));
        OP(matmul_backward, s.ln2, NULL, NULL, s.fc, ln2, w->fc_w, N, C, 4 * C, SHOAL_W_IN_OUT);
        SHOAL_CHECK(linear_norms(nc, ln2, s.fc, B, T, C, 4 * C, 1, nc->keep ? &k.fc : NULL,
                                 SHOAL_W_IN_OUT));
        layernorm_norms(nc, s.ln2, res2, m2, r2, B, T, C);
        OP(layernorm_backward, a->dres, NULL, NULL, s.ln2, res2, w->ln2_w, m2, r2, N, C);

        memcpy(s.attp, a->dres, NC * sizeof(float));
        OP(zero, a->dbtc, NC * sizeof(float));
        OP(matmul_backward, a->dbtc, NULL, NULL, s.attp, atty, w->attp_w, N, C, C, SHOAL_W_IN_OUT);
        SHOAL_CHECK(linear_norms(nc, atty, s.attp, B, T, C, C, 1, nc->keep ? &k.attp : NULL,
                                 SHOAL_W_IN_OUT));
        OP(zero, s.qkv, 3 * NC * sizeof(float));
        OP(attention_backward, s.qkv, a->dbtc, qkv, att, B, T, C, NH);
        OP(zero, s.ln1, NC * sizeof(float));
        OP(matmul_backward, s.ln1, NULL, NULL, s.qkv, ln1, w->qkv_w, N, C, 3 * C, SHOAL_W_IN_OUT);
        SHOAL_CHECK(linear_norms(nc, ln1, s.qkv, B, T, C, 3 * C, 1, nc->keep ? &k.qkv : NULL,
                                 SHOAL_W_IN_OUT));
        layernorm_norms(nc, s.ln1, in, m1, r1, B, T, C);
        OP(layernorm_backward, a->dres, NULL, NULL, s.ln1, in, w->ln1_w, m1, r1, N, C);
    }
    memcpy(g0.enc, a->dres, NC * sizeof(float));
    return embedding_norms(nc, g0.enc, a->tokens, a->logits, a->lnf, B, T, C, V);
}

shoal_status shoal_gpt_per_example_grad_norms_ex(shoal_gpt *m, shoal_gpt_norm_mode mode,
                                                 double *norms) {
    shoal_status st = SHOAL_OK;
    SHOAL_REQUIRE(m && norms, SHOAL_ERR_INVALID_ARG, "per-example norms: model or norms NULL");
    SHOAL_REQUIRE(m->ctx.backend == SHOAL_BACKEND_CPU && m->ctx.k->host_visible,
                  SHOAL_ERR_UNSUPPORTED,
                  "per-example norms: only CPU contexts with host-visible memory are supported "
                  "(backend %s)",
                  m->ctx.k->name);
    SHOAL_REQUIRE(mode >= SHOAL_GPT_NORM_AUTO && mode <= SHOAL_GPT_NORM_MATERIALISE,
                  SHOAL_ERR_INVALID_ARG, "per-example norms: unknown mode %d", (int)mode);
    SHOAL_REQUIRE(m->have_targets, SHOAL_ERR_INVALID_ARG,
                  "per-example norms need a forward with targets first (once per forward)");
    int B = m->cur_B, T = m->cur_T, V = m->cfg.vocab_size, C = m->cfg.n_embd;
    int keep = keep_plan(&m->cfg, B, mode);
    size_t need =
        store_floats(&m->cfg, (size_t)B * T) + (keep ? keep_floats(&m->cfg, (size_t)B) : 0);
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
    nc.keep = keep;
    nc.lnstride = 4 * (size_t)C;
    nc.nt = m->ctx.n_threads < 1 ? 1 : (m->ctx.n_threads > MAX_NT ? MAX_NT : m->ctx.n_threads);
    if (nc.nt > B) nc.nt = B;
    int n_ctx = 0;
    nc.nsq = calloc((size_t)B, sizeof(double));
    nc.tctx = calloc((size_t)nc.nt, sizeof(shoal_ctx));
    nc.gram = malloc((size_t)nc.nt * 2 * T * T * sizeof(float));
    nc.lnbuf = malloc((size_t)nc.nt * nc.lnstride * sizeof(double));
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
    m->dp_ready = 1 + keep; /* the weighted pass reads the plan back */
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

/* Tensors (B·T, width[j]) x[j], j < n: the T rows of example b *= f[b], in one parallel
 * region over the examples. */
static void scale_rows(float *const *x, const int *width, int n, const float *f, int B, int T,
                       int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int b = 0; b < B; b++) {
        float s = f[b];
        if (s == 1.0f) continue;
        for (int j = 0; j < n; j++) {
            size_t len = (size_t)T * width[j];
            float *p = x[j] + (size_t)b * len;
            for (size_t i = 0; i < len; i++)
                p[i] *= s;
        }
    }
}

/* g[i] += Σ_b f[b]·kept[b·n + i] for a list of (g, kept, n), all in one parallel region (a
 * region per small tensor costs more than its additions): the chunks of every entry are
 * numbered one after the other and spread over the threads; b runs in order within each
 * element. */
typedef struct {
    float *g;
    const float *kept;
    size_t n;
} kept_sum;

enum { SUM_CHUNK = 4096 };

static void add_weighted(const kept_sum *js, int nj, const float *f, int B, int nt) {
    long total = 0;
    for (int j = 0; j < nj; j++)
        total += (long)((js[j].n + SUM_CHUNK - 1) / SUM_CHUNK);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long ci = 0; ci < total; ci++) {
        long c = ci;
        int j = 0;
        for (;; j++) { /* the entry holding chunk ci: a short scan over <= 8L+1 entries */
            long nch = (long)((js[j].n + SUM_CHUNK - 1) / SUM_CHUNK);
            if (c < nch) break;
            c -= nch;
        }
        size_t lo = (size_t)c * SUM_CHUNK, hi = lo + SUM_CHUNK < js[j].n ? lo + SUM_CHUNK : js[j].n;
        float *g = js[j].g;
        for (int b = 0; b < B; b++) {
            const float *k = js[j].kept + (size_t)b * js[j].n;
            float fb = f[b];
            for (size_t i = lo; i < hi; i++)
                g[i] += fb * k[i];
        }
    }
}

static void push_linear(kept_sum *js, int *nj, float *gw, float *gb, const kept_linear *k,
                        size_t IC, size_t OC) {
    js[(*nj)++] = (kept_sum){gw, k->w, IC * OC};
    js[(*nj)++] = (kept_sum){gb, k->b, OC};
}

shoal_status shoal_gpt_dp_backward_weighted(shoal_gpt *m, const float *factors) {
    SHOAL_REQUIRE(m && factors, SHOAL_ERR_INVALID_ARG, "weighted backward: model or factors NULL");
    SHOAL_REQUIRE(m->dp_ready, SHOAL_ERR_INVALID_ARG,
                  "weighted backward needs shoal_gpt_per_example_grad_norms on the current "
                  "forward first (and runs once per forward)");
    const shoal_gpt_config *c = &m->cfg;
    int B = m->cur_B, T = m->cur_T, N = B * T, C = c->n_embd, V = c->vocab_size;
    int L = c->n_layer, nt = m->ctx.n_threads < 1 ? 1 : m->ctx.n_threads;
    for (int b = 0; b < B; b++)
        SHOAL_REQUIRE(isfinite(factors[b]), SHOAL_ERR_INVALID_ARG,
                      "weighted backward: factor %d is not finite", b);
    int keep = m->dp_ready == 2;
    m->dp_ready = 0;
    size_t NC = (size_t)N * C, Cz = (size_t)C;
    gpt_acts *a = &m->acts;
    /* Every weight gradient is linear in the example's output gradient; scale the stored ones
     * (all of them follow each other in the block, (N, width) each) and, for the lm_head,
     * lnf (C wide) rather than dlogits (V wide): the activations are dead after this pass.
     * Kept layers instead sum factors[b] times the per-example gradients the norms pass left. */
    dp_store g0 = store_at(m, -1);
    float **xs = malloc((size_t)(3 + 6 * L) * sizeof *xs);
    int *ws = malloc((size_t)(3 + 6 * L) * sizeof *ws), nx = 0;
    if (!xs || !ws) {
        free(xs);
        free(ws);
        SHOAL_LOG_ERROR("weighted backward: out of memory");
        return SHOAL_ERR_NOMEM;
    }
#define SCALE(p, w) (xs[nx] = (p), ws[nx++] = (w))
    SCALE(g0.lnf, C);
    SCALE(g0.enc, C);
    if (!keep) SCALE(a->lnf, C);
    for (int l = 0; l < L; l++) {
        dp_store s = store_at(m, l);
        SCALE(s.ln2, C);
        SCALE(s.ln1, C);
        if (keep) continue;
        SCALE(s.fcp, C);
        SCALE(s.fc, 4 * C);
        SCALE(s.attp, C);
        SCALE(s.qkv, 3 * C);
    }
#undef SCALE
    scale_rows(xs, ws, nx, factors, B, T, nt);
    free(xs);
    free(ws);
    float *khead = NULL;
    kept_at(m, -1, &khead);
    if (keep) {
        kept_sum *js = malloc((size_t)(1 + 8 * L) * sizeof *js);
        SHOAL_REQUIRE(js != NULL, SHOAL_ERR_NOMEM, "weighted backward: out of memory");
        int nj = 0;
        js[nj++] = (kept_sum){m->g.wte, khead, (size_t)V * Cz};
        for (int l = 0; l < L; l++) {
            gpt_layer *g = &m->g.h[l];
            kept_layer k = kept_at(m, l, &khead);
            push_linear(js, &nj, g->fcp_w, g->fcp_b, &k.fcp, 4 * Cz, Cz);
            push_linear(js, &nj, g->fc_w, g->fc_b, &k.fc, Cz, 4 * Cz);
            push_linear(js, &nj, g->attp_w, g->attp_b, &k.attp, Cz, Cz);
            push_linear(js, &nj, g->qkv_w, g->qkv_b, &k.qkv, Cz, 3 * Cz);
        }
        add_weighted(js, nj, factors, B, nt);
        free(js);
    } else {
        OP(matmul_backward, NULL, m->g.wte, NULL, a->logits, a->lnf, m->w.wte, N, C, V,
           SHOAL_W_OUT_IN);
    }
    const float *last = a->res3 + (size_t)(L - 1) * NC;
    OP(layernorm_backward, NULL, m->g.lnf_w, m->g.lnf_b, g0.lnf, last, m->w.lnf_w, a->lnf_mean,
       a->lnf_rstd, N, C);
    for (int l = 0; l < L; l++) {
        const gpt_layer *w = &m->w.h[l];
        gpt_layer *g = &m->g.h[l];
        dp_store s = store_at(m, l);
        const float *in = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * NC;
        float *ln1 = a->ln1 + l * NC, *atty = a->atty + l * NC;
        float *res2 = a->res2 + l * NC, *ln2 = a->ln2 + l * NC;
        float *m1 = a->ln1_mean + (size_t)l * N, *r1 = a->ln1_rstd + (size_t)l * N;
        float *m2 = a->ln2_mean + (size_t)l * N, *r2 = a->ln2_rstd + (size_t)l * N;
        if (!keep) {
            OP(matmul_backward, NULL, g->fcp_w, g->fcp_b, s.fcp, s.fcg, w->fcp_w, N, 4 * C, C,
               SHOAL_W_IN_OUT);
            OP(matmul_backward, NULL, g->fc_w, g->fc_b, s.fc, ln2, w->fc_w, N, C, 4 * C,
               SHOAL_W_IN_OUT);
            OP(matmul_backward, NULL, g->attp_w, g->attp_b, s.attp, atty, w->attp_w, N, C, C,
               SHOAL_W_IN_OUT);
            OP(matmul_backward, NULL, g->qkv_w, g->qkv_b, s.qkv, ln1, w->qkv_w, N, C, 3 * C,
               SHOAL_W_IN_OUT);
        }
        OP(layernorm_backward, NULL, g->ln2_w, g->ln2_b, s.ln2, res2, w->ln2_w, m2, r2, N, C);
        OP(layernorm_backward, NULL, g->ln1_w, g->ln1_b, s.ln1, in, w->ln1_w, m1, r1, N, C);
    }
    OP(encoder_backward, m->g.wte, m->g.wpe, g0.enc, a->tokens, B, T, C);
    return SHOAL_OK;
}
