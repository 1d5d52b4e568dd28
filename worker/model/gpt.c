/* gpt.c: the GPT-2 model: parameter block and table, initialisation, forward and backward.
 *
 * Shaped after llm.c's train_gpt2.c with HF's tensor names and layouts: the parameter block is
 * laid out in the order of the table (wte, wpe, per layer ln_1, c_attn, c_proj, ln_2, c_fc,
 * mlp.c_proj, then ln_f), HF Conv1D weights (in, out), lm_head tied to wte. Activations are one
 * allocation sized for (B, T); the GELU output and the c_proj outputs live in scratch shared by
 * all layers (GELU is recomputed in backward), which keeps 124M-parameter training at T=256 under
 * the 3 GB target. Backward reuses the logits buffer for dlogits and a handful of (B,T,*) gradient
 * buffers for every layer: it walks the layers in reverse, accumulating the residual-stream
 * gradient in one buffer (ops accumulate, kernels/ops.h).
 * Tested by tests/model/test_gpt.c and tests/model/test_gpt_ref.c (PyTorch fixtures).
 */
#define SHOAL_LOG_SUBSYS "model"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "worker/model/gpt_internal.h"

/* ---------------------------------------------------------------- parameter table */

static void add_tensor(shoal_gpt_tensor *tab, int *n, size_t *off, const char *name, int ndim,
                       int64_t d0, int64_t d1, int decay) {
    shoal_gpt_tensor *t = &tab[*n];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim > 1 ? d1 : 0;
    t->numel = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1);
    t->offset = *off;
    t->decay = decay;
    *off += t->numel;
    (*n)++;
}

/* Fill tab (room for 4 + 12*L entries) and return the number of floats. */
static size_t build_table(const shoal_gpt_config *c, shoal_gpt_tensor *tab, int *n) {
    int64_t C = c->n_embd;
    size_t off = 0;
    char name[64];
    *n = 0;
    add_tensor(tab, n, &off, "transformer.wte.weight", 2, c->vocab_size, C, 1);
    add_tensor(tab, n, &off, "transformer.wpe.weight", 2, c->n_positions, C, 1);
    for (int l = 0; l < c->n_layer; l++) {
#define T1(suffix, d0) (snprintf(name, sizeof name, "transformer.h.%d.%s", l, suffix), add_tensor(tab, n, &off, name, 1, d0, 0, 0))
#define T2(suffix, d0, d1) (snprintf(name, sizeof name, "transformer.h.%d.%s", l, suffix), add_tensor(tab, n, &off, name, 2, d0, d1, 1))
        T1("ln_1.weight", C);
        T1("ln_1.bias", C);
        T2("attn.c_attn.weight", C, 3 * C);
        T1("attn.c_attn.bias", 3 * C);
        T2("attn.c_proj.weight", C, C);
        T1("attn.c_proj.bias", C);
        T1("ln_2.weight", C);
        T1("ln_2.bias", C);
        T2("mlp.c_fc.weight", C, 4 * C);
        T1("mlp.c_fc.bias", 4 * C);
        T2("mlp.c_proj.weight", 4 * C, C);
        T1("mlp.c_proj.bias", C);
#undef T1
#undef T2
    }
    add_tensor(tab, n, &off, "transformer.ln_f.weight", 1, C, 0, 0);
    add_tensor(tab, n, &off, "transformer.ln_f.bias", 1, C, 0, 0);
    return off;
}

size_t shoal_gpt_config_num_params(const shoal_gpt_config *c) {
    if (!c || c->n_layer < 1 || c->n_layer > SHOAL_MAX_GPT_LAYERS || c->n_embd < 1 ||
        c->n_embd > SHOAL_MAX_GPT_EMBD || c->vocab_size < 1 || c->vocab_size > SHOAL_MAX_GPT_VOCAB ||
        c->n_positions < 1 || c->n_positions > SHOAL_MAX_GPT_POSITIONS)
        return 0;
    size_t C = (size_t)c->n_embd;
    /* every factor is bounded by the limits above, so this cannot overflow 64 bits */
    return ((size_t)c->vocab_size + (size_t)c->n_positions) * C +
           (size_t)c->n_layer * (12 * C * C + 13 * C) + 2 * C;
}

shoal_status shoal_gpt_config_check(const shoal_gpt_config *c, const char *what) {
    SHOAL_REQUIRE(c != NULL, SHOAL_ERR_INVALID_ARG, "%s: config is NULL", what);
#define RANGE(field, lo, hi)                                                                       \
    SHOAL_REQUIRE(c->field >= (lo) && c->field <= (hi), SHOAL_ERR_INVALID_ARG,                     \
                  "%s: %s=%d is out of range [%d, %d]", what, #field, c->field, (int)(lo), (int)(hi))
    RANGE(n_layer, 1, SHOAL_MAX_GPT_LAYERS);
    RANGE(n_head, 1, SHOAL_MAX_GPT_HEADS);
    RANGE(n_embd, 1, SHOAL_MAX_GPT_EMBD);
    RANGE(vocab_size, 1, SHOAL_MAX_GPT_VOCAB);
    RANGE(n_positions, 1, SHOAL_MAX_GPT_POSITIONS);
#undef RANGE
    SHOAL_REQUIRE(c->n_embd % c->n_head == 0, SHOAL_ERR_INVALID_ARG,
                  "%s: n_embd=%d is not a multiple of n_head=%d", what, c->n_embd, c->n_head);
    SHOAL_REQUIRE(isfinite(c->ln_eps) && c->ln_eps > 0.0f && c->ln_eps < 1.0f,
                  SHOAL_ERR_INVALID_ARG, "%s: layer_norm_epsilon=%g must be in (0, 1)", what,
                  (double)c->ln_eps);
    size_t np = shoal_gpt_config_num_params(c);
    SHOAL_REQUIRE(np <= shoal_limit(SHOAL_LIMIT_MODEL_PARAMS), SHOAL_ERR_LIMIT,
                  "%s: the model would have %zu parameters, above the model_params limit %llu",
                  what, np, (unsigned long long)shoal_limit(SHOAL_LIMIT_MODEL_PARAMS));
    return SHOAL_OK;
}

static void point_weights(const shoal_gpt *m, float *base, gpt_weights *w) {
    const shoal_gpt_tensor *t = m->table;
    w->wte = base + t[0].offset;
    w->wpe = base + t[1].offset;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const shoal_gpt_tensor *lt = t + 2 + 12 * l;
        gpt_layer *h = &w->h[l];
        float **ptrs[12] = {&h->ln1_w, &h->ln1_b, &h->qkv_w, &h->qkv_b, &h->attp_w, &h->attp_b,
                            &h->ln2_w, &h->ln2_b, &h->fc_w,  &h->fc_b,  &h->fcp_w,  &h->fcp_b};
        for (int i = 0; i < 12; i++) *ptrs[i] = base + lt[i].offset;
    }
    w->lnf_w = base + t[2 + 12 * m->cfg.n_layer].offset;
    w->lnf_b = base + t[3 + 12 * m->cfg.n_layer].offset;
}

shoal_status shoal_gpt_create(const shoal_gpt_config *cfg, shoal_gpt **out) {
    shoal_status st = SHOAL_OK;
    SHOAL_REQUIRE(out != NULL, SHOAL_ERR_INVALID_ARG, "shoal_gpt_create: out is NULL");
    *out = NULL;
    SHOAL_CHECK(shoal_gpt_config_check(cfg, "model config"));
    shoal_gpt *m = calloc(1, sizeof *m);
    SHOAL_REQUIRE(m != NULL, SHOAL_ERR_NOMEM, "out of memory allocating the model");
    m->cfg = *cfg;
    SHOAL_CHECK_GOTO(shoal_ctx_init_cpu(&m->ctx, 0));
    int cap = 4 + 12 * cfg->n_layer;
    m->table = calloc((size_t)cap, sizeof *m->table);
    m->w.h = calloc((size_t)cfg->n_layer, sizeof(gpt_layer));
    m->g.h = calloc((size_t)cfg->n_layer, sizeof(gpt_layer));
    SHOAL_REQUIRE_GOTO(m->table && m->w.h && m->g.h, SHOAL_ERR_NOMEM,
                       "out of memory allocating the parameter table");
    m->n_params = build_table(cfg, m->table, &m->n_tensors);
    SHOAL_ASSERT(m->n_params == shoal_gpt_config_num_params(cfg));
    m->params = calloc(m->n_params, sizeof(float));
    m->grads = calloc(m->n_params, sizeof(float));
    SHOAL_REQUIRE_GOTO(m->params && m->grads, SHOAL_ERR_NOMEM,
                       "out of memory allocating %zu parameters and their gradients (%.1f MB)",
                       m->n_params, 8.0 * (double)m->n_params / 1e6);
    point_weights(m, m->params, &m->w);
    point_weights(m, m->grads, &m->g);
    for (int l = 0; l < cfg->n_layer; l++) { /* layernorms start as identity */
        for (int c = 0; c < cfg->n_embd; c++) m->w.h[l].ln1_w[c] = m->w.h[l].ln2_w[c] = 1.0f;
    }
    for (int c = 0; c < cfg->n_embd; c++) m->w.lnf_w[c] = 1.0f;
    *out = m;
    return SHOAL_OK;
cleanup:
    shoal_gpt_free(m);
    return st;
}

void shoal_gpt_free(shoal_gpt *m) {
    if (!m) return;
    free(m->acts.block);
    free(m->kv.block);
    free(m->dp_block);
    free(m->params);
    free(m->grads);
    free(m->table);
    free(m->w.h);
    free(m->g.h);
    if (m->hf_config) json_decref(m->hf_config);
    shoal_ctx_free(&m->ctx);
    free(m);
}

shoal_status shoal_gpt_set_threads(shoal_gpt *m, int n_threads) {
    SHOAL_REQUIRE(m != NULL, SHOAL_ERR_INVALID_ARG, "shoal_gpt_set_threads: model is NULL");
    shoal_ctx fresh; /* the model keeps its old context when the new one is refused */
    SHOAL_CHECK(shoal_ctx_init_cpu(&fresh, n_threads));
    shoal_ctx_free(&m->ctx);
    m->ctx = fresh;
    return SHOAL_OK;
}

shoal_ctx *shoal_gpt_ctx(shoal_gpt *m) { return &m->ctx; }
const shoal_gpt_config *shoal_gpt_cfg(const shoal_gpt *m) { return &m->cfg; }
size_t shoal_gpt_num_params(const shoal_gpt *m) { return m->n_params; }
float *shoal_gpt_params(shoal_gpt *m) { return m->params; }
const float *shoal_gpt_params_const(const shoal_gpt *m) { return m->params; }
float *shoal_gpt_grads(shoal_gpt *m) { return m->grads; }
int shoal_gpt_num_tensors(const shoal_gpt *m) { return m->n_tensors; }
const float *shoal_gpt_logits(const shoal_gpt *m) { return m->acts.logits; }
const float *shoal_gpt_token_losses(const shoal_gpt *m) { return m->acts.losses; }

const shoal_gpt_tensor *shoal_gpt_tensor_at(const shoal_gpt *m, int i) {
    return (m && i >= 0 && i < m->n_tensors) ? &m->table[i] : NULL;
}

const shoal_gpt_tensor *shoal_gpt_tensor_find(const shoal_gpt *m, const char *name) {
    if (!m || !name) return NULL;
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->table[i].name, name) == 0) return &m->table[i];
    return NULL;
}

/* ---------------------------------------------------------------- initialisation */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Standard normal by Box-Muller from two 53-bit uniforms in (0, 1]. */
static double randn(uint64_t *s) {
    double u1 = ((double)(splitmix64(s) >> 11) + 1.0) * 0x1.0p-53;
    double u2 = (double)(splitmix64(s) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

shoal_status shoal_gpt_init_random(shoal_gpt *m, uint64_t seed) {
    SHOAL_REQUIRE(m != NULL, SHOAL_ERR_INVALID_ARG, "shoal_gpt_init_random: model is NULL");
    double resid_std = 0.02 / sqrt(2.0 * m->cfg.n_layer);
    for (int i = 0; i < m->n_tensors; i++) {
        const shoal_gpt_tensor *t = &m->table[i];
        float *p = m->params + t->offset;
        /* per-tensor stream: a tensor's values do not depend on the tensors before it */
        uint64_t s = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(i + 1));
        const char *suffix = strrchr(t->name, '.');
        int is_bias = suffix && strcmp(suffix, ".bias") == 0;
        if (strstr(t->name, ".ln_")) {
            for (size_t j = 0; j < t->numel; j++) p[j] = is_bias ? 0.0f : 1.0f;
        } else if (is_bias) {
            memset(p, 0, t->numel * sizeof(float));
        } else {
            double std = strstr(t->name, "c_proj.weight") ? resid_std : 0.02;
            for (size_t j = 0; j < t->numel; j++) p[j] = (float)(std * randn(&s));
        }
    }
    return SHOAL_OK;
}

/* ---------------------------------------------------------------- activations */

static shoal_status acts_alloc(shoal_gpt *m, int B, int T) {
    gpt_acts *a = &m->acts;
    if (a->block && B * T <= a->B * a->T && T <= a->T) return SHOAL_OK;
    free(a->block);
    memset(a, 0, sizeof *a);
    size_t L = (size_t)m->cfg.n_layer, C = (size_t)m->cfg.n_embd, NH = (size_t)m->cfg.n_head;
    size_t V = (size_t)m->cfg.vocab_size, BT = (size_t)B * (size_t)T;
    /* (B, T) are bounded by the caller's checks (T <= n_positions, B*T <= 2^24) and the config
     * by limits.h, so the sizes below fit comfortably in 64 bits. */
    struct { float **p; size_t n; } plan[] = {
        {&a->encoded, BT * C},      {&a->ln1, L * BT * C},       {&a->ln1_mean, L * BT},
        {&a->ln1_rstd, L * BT},     {&a->qkv, L * BT * 3 * C},   {&a->atty, L * BT * C},
        {&a->att, L * (size_t)B * NH * (size_t)T * (size_t)T},   {&a->res2, L * BT * C},
        {&a->ln2, L * BT * C},      {&a->ln2_mean, L * BT},      {&a->ln2_rstd, L * BT},
        {&a->fch, L * BT * 4 * C},  {&a->res3, L * BT * C},      {&a->lnf, BT * C},
        {&a->lnf_mean, BT},         {&a->lnf_rstd, BT},          {&a->logits, BT * V},
        {&a->lse, BT},              {&a->losses, BT},            {&a->proj, BT * C},
        {&a->fchg, BT * 4 * C},     {&a->dres, BT * C},          {&a->dbtc, BT * C},
        {&a->dqkv, BT * 3 * C},     {&a->d4a, BT * 4 * C},       {&a->d4b, BT * 4 * C},
    };
    size_t nplan = sizeof plan / sizeof plan[0];
    size_t total = 0;
    for (size_t i = 0; i < nplan; i++) total += (plan[i].n + 15) & ~(size_t)15; /* 64B align */
    size_t int_floats = (2 * BT * sizeof(int32_t) + BT + sizeof(float) - 1) / sizeof(float);
    total += int_floats;
    a->block = malloc(total * sizeof(float));
    SHOAL_REQUIRE(a->block != NULL, SHOAL_ERR_NOMEM,
                  "out of memory allocating activations for B=%d T=%d (%.1f MB)", B, T,
                  4.0 * (double)total / 1e6);
    float *p = a->block;
    for (size_t i = 0; i < nplan; i++) {
        *plan[i].p = p;
        p += (plan[i].n + 15) & ~(size_t)15;
    }
    a->tokens = (int32_t *)p;
    a->targets = a->tokens + BT;
    a->mask = (uint8_t *)(a->targets + BT);
    a->B = B;
    a->T = T;
    return SHOAL_OK;
}

/* ---------------------------------------------------------------- forward */

#define OP(op, ...) SHOAL_CHECK(SHOAL_OP(&m->ctx, op, __VA_ARGS__))

shoal_status shoal_gpt_forward(shoal_gpt *m, const int32_t *tokens, const int32_t *targets,
                               const uint8_t *mask, int B, int T, float *mean_loss) {
    SHOAL_REQUIRE(m && tokens, SHOAL_ERR_INVALID_ARG, "shoal_gpt_forward: model or tokens NULL");
    const shoal_gpt_config *c = &m->cfg;
    SHOAL_REQUIRE(B >= 1 && T >= 1, SHOAL_ERR_INVALID_ARG, "forward: B=%d T=%d must be >= 1", B, T);
    SHOAL_REQUIRE(T <= c->n_positions, SHOAL_ERR_INVALID_ARG,
                  "forward: sequence length T=%d exceeds the model's n_positions=%d", T,
                  c->n_positions);
    /* ops index rows with int; buffers are far larger than memory long before this binds */
    SHOAL_REQUIRE((int64_t)B * T <= (1 << 24), SHOAL_ERR_LIMIT,
                  "forward: B*T=%lld tokens in one batch is above 2^24", (long long)B * T);
    int N = B * T, C = c->n_embd, NH = c->n_head, V = c->vocab_size, L = c->n_layer;
    for (int i = 0; i < N; i++) {
        SHOAL_REQUIRE(tokens[i] >= 0 && tokens[i] < V, SHOAL_ERR_INVALID_ARG,
                      "forward: token id %d at position %d is outside the vocabulary [0, %d)",
                      (int)tokens[i], i, V);
        SHOAL_REQUIRE(!targets || targets[i] < V, SHOAL_ERR_INVALID_ARG,
                      "forward: target id %d at position %d is outside the vocabulary [0, %d)",
                      (int)targets[i], i, V);
    }
    size_t counted = 0;
    if (targets) {
        for (int i = 0; i < N; i++) counted += (targets[i] >= 0 && (!mask || mask[i]));
        SHOAL_REQUIRE(counted > 0, SHOAL_ERR_INVALID_ARG,
                      "forward: the loss mask selects no token (all masked or ignored)");
    }
    SHOAL_CHECK(acts_alloc(m, B, T));
    gpt_acts *a = &m->acts;
    m->have_targets = 0;
    m->dp_ready = 0;
    m->cur_B = B;
    m->cur_T = T;
    memcpy(a->tokens, tokens, (size_t)N * sizeof(int32_t));

    size_t NC = (size_t)N * C;
    OP(encoder_forward, a->encoded, a->tokens, m->w.wte, m->w.wpe, B, T, C, 0);
    for (int l = 0; l < L; l++) {
        const gpt_layer *w = &m->w.h[l];
        const float *in = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * NC;
        float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC;
        float *att = a->att + (size_t)l * B * NH * T * T;
        float *res2 = a->res2 + l * NC, *ln2 = a->ln2 + l * NC, *fch = a->fch + l * 4 * NC;
        float *res3 = a->res3 + l * NC;
        OP(layernorm_forward, ln1, a->ln1_mean + (size_t)l * N, a->ln1_rstd + (size_t)l * N, in,
           w->ln1_w, w->ln1_b, N, C, c->ln_eps);
        OP(matmul_forward, qkv, ln1, w->qkv_w, w->qkv_b, N, C, 3 * C, SHOAL_W_IN_OUT);
        OP(attention_forward, atty, att, qkv, B, T, C, NH);
        OP(matmul_forward, a->proj, atty, w->attp_w, w->attp_b, N, C, C, SHOAL_W_IN_OUT);
        OP(residual_forward, res2, in, a->proj, NC);
        OP(layernorm_forward, ln2, a->ln2_mean + (size_t)l * N, a->ln2_rstd + (size_t)l * N, res2,
           w->ln2_w, w->ln2_b, N, C, c->ln_eps);
        OP(matmul_forward, fch, ln2, w->fc_w, w->fc_b, N, C, 4 * C, SHOAL_W_IN_OUT);
        OP(gelu_forward, a->fchg, fch, 4 * NC);
        OP(matmul_forward, a->proj, a->fchg, w->fcp_w, w->fcp_b, N, 4 * C, C, SHOAL_W_IN_OUT);
        OP(residual_forward, res3, res2, a->proj, NC);
    }
    OP(layernorm_forward, a->lnf, a->lnf_mean, a->lnf_rstd, a->res3 + (size_t)(L - 1) * NC,
       m->w.lnf_w, m->w.lnf_b, N, C, c->ln_eps);
    OP(matmul_forward, a->logits, a->lnf, m->w.wte, NULL, N, C, V, SHOAL_W_OUT_IN);
    if (!targets) {
        if (mean_loss) *mean_loss = 0.0f;
        return SHOAL_OK;
    }
    memcpy(a->targets, targets, (size_t)N * sizeof(int32_t));
    if (mask) {
        memcpy(a->mask, mask, (size_t)N);
    } else {
        memset(a->mask, 1, (size_t)N);
    }
    OP(crossentropy_forward, a->losses, a->lse, a->logits, a->targets, N, V);
    double sum = 0.0;
    for (int i = 0; i < N; i++)
        if (a->targets[i] >= 0 && a->mask[i]) sum += a->losses[i];
    m->count_inv = (float)(1.0 / (double)counted);
    if (mean_loss) *mean_loss = (float)(sum / (double)counted);
    m->have_targets = 1;
    return SHOAL_OK;
}

/* ---------------------------------------------------------------- backward */

void shoal_gpt_zero_grad(shoal_gpt *m) {
    if (m) (void)SHOAL_OP(&m->ctx, zero, m->grads, m->n_params * sizeof(float));
}

void shoal_gpt_set_backward_hook(shoal_gpt *m, shoal_gpt_backward_hook fn, void *arg) {
    if (!m) return;
    m->bw_hook = fn;
    m->bw_hook_arg = fn ? arg : NULL;
}

/* Tells the backward hook (if any) that grads [offset, offset+n) are final. */
#define HOOK(offset, n)                                                                            \
    do {                                                                                           \
        if (m->bw_hook) SHOAL_CHECK(m->bw_hook(m->bw_hook_arg, (offset), (n)));                    \
    } while (0)

shoal_status shoal_gpt_backward(shoal_gpt *m) {
    SHOAL_REQUIRE(m != NULL, SHOAL_ERR_INVALID_ARG, "shoal_gpt_backward: model is NULL");
    SHOAL_REQUIRE(m->have_targets, SHOAL_ERR_INVALID_ARG,
                  "backward needs a forward with targets first (and runs once per forward)");
    m->have_targets = 0;
    const shoal_gpt_config *c = &m->cfg;
    int B = m->cur_B, T = m->cur_T, N = B * T, C = c->n_embd, NH = c->n_head;
    int V = c->vocab_size, L = c->n_layer;
    size_t NC = (size_t)N * C;
    gpt_acts *a = &m->acts;

    /* loss -> logits (in place) -> ln_f -> residual stream */
    OP(crossentropy_backward, a->logits, a->logits, a->lse, a->targets, a->mask, m->count_inv, N, V);
    OP(zero, a->dbtc, NC * sizeof(float));
    OP(matmul_backward, a->dbtc, m->g.wte, NULL, a->logits, a->lnf, m->w.wte, N, C, V,
       SHOAL_W_OUT_IN);
    OP(zero, a->dres, NC * sizeof(float));
    OP(layernorm_backward, a->dres, m->g.lnf_w, m->g.lnf_b, a->dbtc,
       a->res3 + (size_t)(L - 1) * NC, m->w.lnf_w, a->lnf_mean, a->lnf_rstd, N, C);
    HOOK((size_t)(m->w.lnf_w - m->params), 2 * (size_t)C);

    for (int l = L - 1; l >= 0; l--) {
        const gpt_layer *w = &m->w.h[l];
        gpt_layer *g = &m->g.h[l];
        const float *in = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * NC;
        float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC;
        float *att = a->att + (size_t)l * B * NH * T * T;
        float *res2 = a->res2 + l * NC, *ln2 = a->ln2 + l * NC, *fch = a->fch + l * 4 * NC;
        /* res3 = res2 + mlp(ln2(res2)): dres carries d(res3) and, after the layernorm
         * backward adds into it, d(res2). */
        OP(gelu_forward, a->fchg, fch, 4 * NC);
        OP(zero, a->d4a, 4 * NC * sizeof(float));
        OP(matmul_backward, a->d4a, g->fcp_w, g->fcp_b, a->dres, a->fchg, w->fcp_w, N, 4 * C, C,
           SHOAL_W_IN_OUT);
        OP(zero, a->d4b, 4 * NC * sizeof(float));
        OP(gelu_backward, a->d4b, a->d4a, fch, 4 * NC);
        OP(zero, a->dbtc, NC * sizeof(float));
        OP(matmul_backward, a->dbtc, g->fc_w, g->fc_b, a->d4b, ln2, w->fc_w, N, C, 4 * C,
           SHOAL_W_IN_OUT);
        OP(layernorm_backward, a->dres, g->ln2_w, g->ln2_b, a->dbtc, res2, w->ln2_w,
           a->ln2_mean + (size_t)l * N, a->ln2_rstd + (size_t)l * N, N, C);
        /* res2 = in + attn(ln1(in)) */
        OP(zero, a->dbtc, NC * sizeof(float));
        OP(matmul_backward, a->dbtc, g->attp_w, g->attp_b, a->dres, atty, w->attp_w, N, C, C,
           SHOAL_W_IN_OUT);
        OP(zero, a->dqkv, 3 * NC * sizeof(float));
        OP(attention_backward, a->dqkv, a->dbtc, qkv, att, B, T, C, NH);
        OP(zero, a->dbtc, NC * sizeof(float));
        OP(matmul_backward, a->dbtc, g->qkv_w, g->qkv_b, a->dqkv, ln1, w->qkv_w, N, C, 3 * C,
           SHOAL_W_IN_OUT);
        OP(layernorm_backward, a->dres, g->ln1_w, g->ln1_b, a->dbtc, in, w->ln1_w,
           a->ln1_mean + (size_t)l * N, a->ln1_rstd + (size_t)l * N, N, C);
        HOOK((size_t)(w->ln1_w - m->params), 12 * (size_t)C * C + 13 * (size_t)C);
    }
    OP(encoder_backward, m->g.wte, m->g.wpe, a->dres, a->tokens, B, T, C);
    HOOK(0, ((size_t)V + (size_t)c->n_positions) * (size_t)C);
    return SHOAL_OK;
}
