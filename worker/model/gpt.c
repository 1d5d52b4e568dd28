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
 * Every buffer is backend memory from the context (shoal_ctx_alloc); host-side steps (init,
 * token upload, losses, logits) copy, so one code path runs on the CPU and on CUDA. Ops go
 * through gpt_ops.c, which picks the fp32 table or the bf16 CUDA entry point per call.
 * Tested by tests/model/test_gpt.c, tests/model/test_gpt_ref.c (PyTorch fixtures),
 * tests/model/test_gpt_guarded.c (no host access to backend memory: bit-equal to the plain CPU
 * model) and tests/model/test_gpt_cuda.c (label gpu).
 */
#define SHOAL_LOG_SUBSYS "model"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "worker/model/gpt_internal.h"
#ifdef SHOAL_MODEL_CUDA
#include "kernels/cuda/ops_cuda.h"
#endif

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

/* ---------------------------------------------------------------- lifetime */

const char *shoal_precision_name(shoal_precision p) {
    return p == SHOAL_PRECISION_FP32 ? "fp32" : p == SHOAL_PRECISION_BF16 ? "bf16" : "invalid";
}

shoal_status shoal_precision_parse(const char *name, shoal_precision *out) {
    SHOAL_REQUIRE(name && out, SHOAL_ERR_INVALID_ARG, "precision: NULL argument");
    if (strcmp(name, "fp32") == 0) {
        *out = SHOAL_PRECISION_FP32;
    } else if (strcmp(name, "bf16") == 0) {
        *out = SHOAL_PRECISION_BF16;
    } else {
        SHOAL_LOG_ERROR("precision \"%s\" is not fp32 or bf16", name);
        return SHOAL_ERR_INVALID_ARG;
    }
    return SHOAL_OK;
}

int shoal_gpt_cuda_device_count(void) {
#ifdef SHOAL_MODEL_CUDA
    return shoal_cuda_device_count();
#else
    return 0;
#endif
}

int shoal_gpt_cuda_built(void) {
#ifdef SHOAL_MODEL_CUDA
    return 1;
#else
    return 0;
#endif
}

/* Make the context a device spec asks for, or say why this build/machine cannot. */
static shoal_status ctx_for_device(const shoal_gpt_device *dev, shoal_ctx *ctx) {
    memset(ctx, 0, sizeof *ctx);
    if (dev->backend == SHOAL_BACKEND_CPU) {
        SHOAL_REQUIRE(dev->precision == SHOAL_PRECISION_FP32, SHOAL_ERR_UNSUPPORTED,
                      "precision %s needs a CUDA device; the CPU backend runs fp32 only",
                      shoal_precision_name(dev->precision));
        return shoal_ctx_init_cpu(ctx, dev->n_threads);
    }
    SHOAL_REQUIRE(dev->backend == SHOAL_BACKEND_CUDA, SHOAL_ERR_INVALID_ARG,
                  "model device: unknown backend %d", (int)dev->backend);
    SHOAL_REQUIRE(dev->precision == SHOAL_PRECISION_FP32 || dev->precision == SHOAL_PRECISION_BF16,
                  SHOAL_ERR_INVALID_ARG, "model device: unknown precision %d",
                  (int)dev->precision);
#ifdef SHOAL_MODEL_CUDA
    return shoal_ctx_init_cuda(ctx, dev->device);
#else
    SHOAL_LOG_ERROR("this build has no CUDA backend (configure with -DSHOAL_CUDA=ON where the "
                    "CUDA toolkit is installed)");
    return SHOAL_ERR_UNSUPPORTED;
#endif
}

/* The model on *ctx (taken over: released with the model, also on error). */
static shoal_status gpt_new(const shoal_gpt_config *cfg, shoal_ctx *ctx, shoal_precision prec,
                            shoal_gpt **out) {
    shoal_status st = SHOAL_OK;
    shoal_gpt *m = NULL;
    float *h = NULL;
    *out = NULL;
    SHOAL_CHECK_GOTO(shoal_gpt_config_check(cfg, "model config"));
    if (prec == SHOAL_PRECISION_BF16) {
        int hd = cfg->n_embd / cfg->n_head;
        SHOAL_REQUIRE_GOTO(ctx->backend == SHOAL_BACKEND_CUDA, SHOAL_ERR_UNSUPPORTED,
                           "bf16 precision needs a CUDA device; use fp32 on the CPU");
        SHOAL_REQUIRE_GOTO(hd == 64 || hd == 128, SHOAL_ERR_UNSUPPORTED,
                           "bf16: head dimension n_embd/n_head = %d/%d = %d; the bf16 flash "
                           "attention supports 64 and 128 (use --precision fp32)",
                           cfg->n_embd, cfg->n_head, hd);
    }
    m = calloc(1, sizeof *m);
    SHOAL_REQUIRE_GOTO(m != NULL, SHOAL_ERR_NOMEM, "out of memory allocating the model");
    m->cfg = *cfg;
    m->ctx = *ctx;
    memset(ctx, 0, sizeof *ctx); /* owned by m from here */
    m->prec = prec;
    m->act_es = prec == SHOAL_PRECISION_BF16 ? 2 : sizeof(float);
    int cap = 4 + 12 * cfg->n_layer;
    m->table = calloc((size_t)cap, sizeof *m->table);
    m->w.h = calloc((size_t)cfg->n_layer, sizeof(gpt_layer));
    m->g.h = calloc((size_t)cfg->n_layer, sizeof(gpt_layer));
    SHOAL_REQUIRE_GOTO(m->table && m->w.h && m->g.h, SHOAL_ERR_NOMEM,
                       "out of memory allocating the parameter table");
    m->n_params = build_table(cfg, m->table, &m->n_tensors);
    SHOAL_ASSERT(m->n_params == shoal_gpt_config_num_params(cfg));
    size_t bytes = m->n_params * sizeof(float);
    SHOAL_CHECK_GOTO(shoal_ctx_alloc(&m->ctx, (void **)&m->params, bytes, "the parameters"));
    SHOAL_CHECK_GOTO(shoal_ctx_alloc(&m->ctx, (void **)&m->grads, bytes, "the gradients"));
    if (prec == SHOAL_PRECISION_BF16) {
        SHOAL_CHECK_GOTO(shoal_ctx_alloc(&m->ctx, (void **)&m->params_lp,
                                         m->n_params * sizeof(uint16_t), "the bf16 weights"));
    }
    point_weights(m, m->params, &m->w);
    point_weights(m, m->grads, &m->g);
    /* layernorms start as identity; the rest is zero (alloc zeroes) */
    SHOAL_CHECK_GOTO(gpt_params_host_begin(m, 0, &h));
    if (!m->ctx.k->host_visible) memset(h, 0, bytes);
    gpt_weights hw = {.h = calloc((size_t)cfg->n_layer, sizeof(gpt_layer))};
    SHOAL_REQUIRE_GOTO(hw.h != NULL, SHOAL_ERR_NOMEM, "out of memory initialising the model");
    point_weights(m, h, &hw);
    for (int l = 0; l < cfg->n_layer; l++) {
        for (int c = 0; c < cfg->n_embd; c++) hw.h[l].ln1_w[c] = hw.h[l].ln2_w[c] = 1.0f;
    }
    for (int c = 0; c < cfg->n_embd; c++) hw.lnf_w[c] = 1.0f;
    free(hw.h);
    st = gpt_params_host_end(m, h, 1);
    h = NULL;
    SHOAL_CHECK_GOTO(st);
    *out = m;
    return SHOAL_OK;
cleanup:
    if (h) (void)gpt_params_host_end(m, h, 0);
    if (m) {
        shoal_gpt_free(m);
    } else {
        shoal_ctx_free(ctx);
    }
    return st;
}

shoal_status shoal_gpt_create(const shoal_gpt_config *cfg, shoal_gpt **out) {
    SHOAL_REQUIRE(out != NULL, SHOAL_ERR_INVALID_ARG, "shoal_gpt_create: out is NULL");
    *out = NULL;
    SHOAL_CHECK(shoal_gpt_config_check(cfg, "model config"));
    shoal_ctx ctx;
    SHOAL_CHECK(shoal_ctx_init_cpu(&ctx, 0));
    return gpt_new(cfg, &ctx, SHOAL_PRECISION_FP32, out);
}

shoal_status shoal_gpt_create_on(const shoal_gpt_config *cfg, const shoal_gpt_device *dev,
                                 shoal_gpt **out) {
    SHOAL_REQUIRE(out && dev, SHOAL_ERR_INVALID_ARG, "shoal_gpt_create_on: NULL argument");
    *out = NULL;
    SHOAL_CHECK(shoal_gpt_config_check(cfg, "model config"));
    shoal_ctx ctx;
    SHOAL_CHECK(ctx_for_device(dev, &ctx));
    return gpt_new(cfg, &ctx, dev->precision, out);
}

shoal_status shoal_gpt_create_with_ctx(const shoal_gpt_config *cfg, shoal_ctx *ctx,
                                       shoal_gpt **out) {
    if (!out || !ctx || !ctx->k) {
        shoal_ctx_free(ctx); /* owned also on error */
        SHOAL_LOG_ERROR("shoal_gpt_create_with_ctx: NULL argument");
        return SHOAL_ERR_INVALID_ARG;
    }
    return gpt_new(cfg, ctx, SHOAL_PRECISION_FP32, out);
}

shoal_status shoal_gpt_to_device(shoal_gpt *m, const shoal_gpt_device *dev) {
    SHOAL_REQUIRE(m && dev, SHOAL_ERR_INVALID_ARG, "shoal_gpt_to_device: NULL argument");
    shoal_status st = SHOAL_OK;
    shoal_gpt *n = NULL;
    float *h = malloc(m->n_params * sizeof(float));
    SHOAL_REQUIRE(h != NULL, SHOAL_ERR_NOMEM, "out of memory staging %zu parameters",
                  m->n_params);
    SHOAL_CHECK_GOTO(shoal_gpt_params_to_host(m, h));
    shoal_ctx ctx;
    SHOAL_CHECK_GOTO(ctx_for_device(dev, &ctx));
    SHOAL_CHECK_GOTO(gpt_new(&m->cfg, &ctx, dev->precision, &n));
    SHOAL_CHECK_GOTO(shoal_gpt_params_from_host(n, h));
    /* n takes m's identity; the old buffers leave with the swapped struct */
    n->hf_config = m->hf_config;
    m->hf_config = NULL;
    n->bw_hook = m->bw_hook;
    n->bw_hook_arg = m->bw_hook_arg;
    shoal_gpt tmp = *m;
    *m = *n;
    *n = tmp;
cleanup:
    shoal_gpt_free(n);
    free(h);
    return st;
}

shoal_precision shoal_gpt_precision(const shoal_gpt *m) { return m->prec; }

void shoal_gpt_free(shoal_gpt *m) {
    if (!m) return;
    shoal_ctx_mem_free(&m->ctx, m->acts.block);
    shoal_ctx_mem_free(&m->ctx, m->kv.block);
    shoal_ctx_mem_free(&m->ctx, m->params);
    shoal_ctx_mem_free(&m->ctx, m->grads);
    shoal_ctx_mem_free(&m->ctx, m->params_lp);
    free(m->kv.host_logits);
    free(m->host_losses);
    free(m->host_logits);
    free(m->dp_block);
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
    if (m->ctx.k != shoal_kernels_cpu()) {
        /* another table owns the buffers: keep it; a CPU one (tests) takes the count */
        if (m->ctx.backend == SHOAL_BACKEND_CPU) m->ctx.n_threads = fresh.n_threads;
        shoal_ctx_free(&fresh);
        return SHOAL_OK;
    }
    shoal_ctx_free(&m->ctx);
    m->ctx = fresh;
    return SHOAL_OK;
}

shoal_ctx *shoal_gpt_ctx(shoal_gpt *m) { return &m->ctx; }
const shoal_gpt_config *shoal_gpt_cfg(const shoal_gpt *m) { return &m->cfg; }
size_t shoal_gpt_num_params(const shoal_gpt *m) { return m->n_params; }
float *shoal_gpt_params(shoal_gpt *m) {
    m->lp_stale = 1; /* the caller may write through it */
    return m->params;
}
const float *shoal_gpt_params_const(const shoal_gpt *m) { return m->params; }
float *shoal_gpt_grads(shoal_gpt *m) { return m->grads; }
int shoal_gpt_num_tensors(const shoal_gpt *m) { return m->n_tensors; }

const float *shoal_gpt_token_losses(const shoal_gpt *m) {
    return m->ctx.k->host_visible ? m->acts.losses : m->host_losses;
}

const float *shoal_gpt_logits(const shoal_gpt *m) {
    if (m->ctx.k->host_visible || !m->acts.block) return m->acts.logits;
    /* logits are read back on demand: most forwards (training) never need them */
    shoal_gpt *mm = (shoal_gpt *)m;
    size_t n = (size_t)m->cur_B * m->cur_T * m->cfg.vocab_size;
    if (mm->host_logits_cap < n) {
        free(mm->host_logits);
        mm->host_logits_cap = 0;
        mm->host_logits = malloc(n * sizeof(float));
        if (!mm->host_logits) {
            SHOAL_LOG_ERROR("out of memory reading back %zu logits", n);
            return NULL;
        }
        mm->host_logits_cap = n;
    }
    shoal_status st;
    if (m->prec == SHOAL_PRECISION_BF16) {
        uint16_t *tmp = malloc(n * sizeof(uint16_t));
        st = tmp ? shoal_ctx_d2h(&mm->ctx, tmp, m->acts.logits, n * sizeof(uint16_t))
                 : SHOAL_ERR_NOMEM;
        if (st == SHOAL_OK) shoal_convert_to_f32(mm->host_logits, tmp, SHOAL_DTYPE_BF16, n);
        free(tmp);
    } else {
        st = shoal_ctx_d2h(&mm->ctx, mm->host_logits, m->acts.logits, n * sizeof(float));
    }
    if (st != SHOAL_OK) {
        SHOAL_LOG_ERROR("reading back the logits failed: %s", shoal_status_str(st));
        return NULL;
    }
    return mm->host_logits;
}

const shoal_gpt_tensor *shoal_gpt_tensor_at(const shoal_gpt *m, int i) {
    return (m && i >= 0 && i < m->n_tensors) ? &m->table[i] : NULL;
}

const shoal_gpt_tensor *shoal_gpt_tensor_find(const shoal_gpt *m, const char *name) {
    if (!m || !name) return NULL;
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->table[i].name, name) == 0) return &m->table[i];
    return NULL;
}

/* ---------------------------------------------------------------- host access */

shoal_status gpt_params_host_begin(const shoal_gpt *m, int fetch, float **h) {
    *h = NULL;
    if (m->ctx.k->host_visible) {
        *h = m->params;
        return SHOAL_OK;
    }
    float *buf = malloc(m->n_params * sizeof(float));
    SHOAL_REQUIRE(buf != NULL, SHOAL_ERR_NOMEM, "out of memory staging %zu parameters (%.1f MB)",
                  m->n_params, 4.0 * (double)m->n_params / 1e6);
    if (fetch) {
        shoal_status st = shoal_ctx_d2h((shoal_ctx *)&m->ctx, buf, m->params,
                                        m->n_params * sizeof(float));
        if (st != SHOAL_OK) {
            free(buf);
            return st;
        }
    }
    *h = buf;
    return SHOAL_OK;
}

shoal_status gpt_params_host_end(shoal_gpt *m, float *h, int push) {
    shoal_status st = SHOAL_OK;
    if (push) m->lp_stale = 1;
    if (h == m->params) return SHOAL_OK;
    if (push) st = shoal_ctx_h2d(&m->ctx, m->params, h, m->n_params * sizeof(float));
    free(h);
    return st;
}

shoal_status shoal_gpt_params_to_host(const shoal_gpt *m, float *dst) {
    SHOAL_REQUIRE(m && dst, SHOAL_ERR_INVALID_ARG, "shoal_gpt_params_to_host: NULL argument");
    return shoal_ctx_d2h((shoal_ctx *)&m->ctx, dst, m->params, m->n_params * sizeof(float));
}

shoal_status shoal_gpt_params_from_host(shoal_gpt *m, const float *src) {
    SHOAL_REQUIRE(m && src, SHOAL_ERR_INVALID_ARG, "shoal_gpt_params_from_host: NULL argument");
    m->lp_stale = 1;
    return shoal_ctx_h2d(&m->ctx, m->params, src, m->n_params * sizeof(float));
}

shoal_status shoal_gpt_grads_to_host(const shoal_gpt *m, float *dst) {
    SHOAL_REQUIRE(m && dst, SHOAL_ERR_INVALID_ARG, "shoal_gpt_grads_to_host: NULL argument");
    return shoal_ctx_d2h((shoal_ctx *)&m->ctx, dst, m->grads, m->n_params * sizeof(float));
}

shoal_status shoal_gpt_adamw_update(shoal_gpt *m, size_t off, size_t n, float *ms, float *vs,
                                    float lr, float beta1, float beta2, float eps,
                                    float weight_decay, int step, float grad_scale) {
    SHOAL_REQUIRE(m && ms && vs, SHOAL_ERR_INVALID_ARG, "shoal_gpt_adamw_update: NULL argument");
    SHOAL_REQUIRE(off <= m->n_params && n <= m->n_params - off, SHOAL_ERR_INVALID_ARG,
                  "adamw: range [%zu, %zu + %zu) is outside the %zu parameters", off, off, n,
                  m->n_params);
    if (n == 0) return SHOAL_OK;
    return gpt_op_adamw(m, off, n, ms, vs, lr, beta1, beta2, eps, weight_decay, step, grad_scale);
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
    float *h = NULL;
    SHOAL_CHECK(gpt_params_host_begin(m, 0, &h));
    for (int i = 0; i < m->n_tensors; i++) {
        const shoal_gpt_tensor *t = &m->table[i];
        float *p = h + t->offset;
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
    return gpt_params_host_end(m, h, 1);
}


/* ---------------------------------------------------------------- activations */

/* Floats of one layer's `att`: the T x T probabilities of the CPU ops, the (NH, T) row
 * log-sum-exp of the CUDA ones (ops.h backend note). */
static size_t att_per_layer(const shoal_gpt *m, int B, int T) {
    size_t bh = (size_t)B * (size_t)m->cfg.n_head * (size_t)T;
    return m->ctx.backend == SHOAL_BACKEND_CUDA ? bh : bh * (size_t)T;
}

static shoal_status acts_alloc(shoal_gpt *m, int B, int T) {
    gpt_acts *a = &m->acts;
    if (a->block && B * T <= a->B * a->T && T <= a->T) return SHOAL_OK;
    shoal_ctx_mem_free(&m->ctx, a->block);
    free(m->host_losses);
    m->host_losses = NULL;
    memset(a, 0, sizeof *a);
    size_t L = (size_t)m->cfg.n_layer, C = (size_t)m->cfg.n_embd;
    size_t V = (size_t)m->cfg.vocab_size, BT = (size_t)B * (size_t)T;
    size_t es = m->act_es, f4 = sizeof(float);
    /* bf16 keeps the GELU output of every layer (there is no separate bf16 GELU forward to
     * recompute it with: it is the c_fc GEMM's epilogue) */
    size_t fchg_n = m->prec == SHOAL_PRECISION_BF16 ? L * BT * 4 * C : BT * 4 * C;
    /* (B, T) are bounded by the caller's checks (T <= n_positions, B*T <= 2^24) and the config
     * by limits.h, so the sizes below fit comfortably in 64 bits. Activations take the model's
     * activation dtype (es bytes), statistics, losses and the attention state fp32. */
    struct { float **p; size_t n, es; } plan[] = {
        {&a->encoded, BT * C, es},      {&a->ln1, L * BT * C, es},      {&a->ln1_mean, L * BT, f4},
        {&a->ln1_rstd, L * BT, f4},     {&a->qkv, L * BT * 3 * C, es},  {&a->atty, L * BT * C, es},
        {&a->att, L * att_per_layer(m, B, T), f4},                      {&a->res2, L * BT * C, es},
        {&a->ln2, L * BT * C, es},      {&a->ln2_mean, L * BT, f4},     {&a->ln2_rstd, L * BT, f4},
        {&a->fch, L * BT * 4 * C, es},  {&a->res3, L * BT * C, es},     {&a->lnf, BT * C, es},
        {&a->lnf_mean, BT, f4},         {&a->lnf_rstd, BT, f4},         {&a->logits, BT * V, es},
        {&a->lse, BT, f4},              {&a->losses, BT, f4},           {&a->proj, BT * C, es},
        {&a->fchg, fchg_n, es},         {&a->dres, BT * C, es},         {&a->dbtc, BT * C, es},
        {&a->dqkv, BT * 3 * C, es},     {&a->d4a, BT * 4 * C, es},      {&a->d4b, BT * 4 * C, es},
    };
    /* 64 bytes on the CPU; 256 on CUDA (cudaMalloc's, and the bf16 kernels' 16-byte loads) */
    size_t align = m->ctx.k->host_visible ? 64 : 256;
    size_t nplan = sizeof plan / sizeof plan[0];
    size_t total = 0;
    for (size_t i = 0; i < nplan; i++) total += (plan[i].n * plan[i].es + align - 1) & ~(align - 1);
    total += 2 * BT * sizeof(int32_t) + BT;
    SHOAL_CHECK(shoal_ctx_alloc(&m->ctx, (void **)&a->block, total, "the activations"));
    if (!m->ctx.k->host_visible) {
        m->host_losses = malloc(BT * sizeof(float));
        if (!m->host_losses) {
            shoal_ctx_mem_free(&m->ctx, a->block);
            a->block = NULL;
            SHOAL_LOG_ERROR("out of memory for the host copy of %zu losses", BT);
            return SHOAL_ERR_NOMEM;
        }
    }
    char *p = (char *)a->block;
    for (size_t i = 0; i < nplan; i++) {
        *plan[i].p = (float *)p;
        p += (plan[i].n * plan[i].es + align - 1) & ~(align - 1);
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
#define DO(call) SHOAL_CHECK(call)

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
    int N = B * T, C = c->n_embd, V = c->vocab_size, L = c->n_layer;
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
    SHOAL_CHECK(gpt_sync_lp(m));
    gpt_acts *a = &m->acts;
    m->have_targets = 0;
    m->dp_ready = 0;
    m->cur_B = B;
    m->cur_T = T;
    DO(shoal_ctx_h2d(&m->ctx, a->tokens, tokens, (size_t)N * sizeof(int32_t)));

    size_t NC = (size_t)N * C, atl = att_per_layer(m, B, T);
    DO(gpt_op_encoder_fwd(m, a->encoded, a->tokens, B, T));
    for (int l = 0; l < L; l++) {
        const gpt_layer *w = &m->w.h[l];
        const void *in = l == 0 ? a->encoded : ACT(m, a->res3, (size_t)(l - 1) * NC);
        void *ln1 = ACT(m, a->ln1, l * NC), *qkv = ACT(m, a->qkv, l * 3 * NC);
        void *atty = ACT(m, a->atty, l * NC), *res2 = ACT(m, a->res2, l * NC);
        void *ln2 = ACT(m, a->ln2, l * NC), *fch = ACT(m, a->fch, l * 4 * NC);
        void *res3 = ACT(m, a->res3, l * NC);
        void *fchg = m->prec == SHOAL_PRECISION_BF16 ? ACT(m, a->fchg, l * 4 * NC) : a->fchg;
        float *att = a->att + (size_t)l * atl;
        DO(gpt_op_ln_fwd(m, ln1, a->ln1_mean + (size_t)l * N, a->ln1_rstd + (size_t)l * N, in,
                         w->ln1_w, w->ln1_b, N));
        DO(gpt_op_mm_fwd(m, qkv, ln1, w->qkv_w, w->qkv_b, N, C, 3 * C, SHOAL_W_IN_OUT));
        DO(gpt_op_attn_fwd(m, atty, att, qkv, B, T));
        DO(gpt_op_mm_fwd(m, a->proj, atty, w->attp_w, w->attp_b, N, C, C, SHOAL_W_IN_OUT));
        DO(gpt_op_residual_fwd(m, res2, in, a->proj, NC));
        DO(gpt_op_ln_fwd(m, ln2, a->ln2_mean + (size_t)l * N, a->ln2_rstd + (size_t)l * N, res2,
                         w->ln2_w, w->ln2_b, N));
        DO(gpt_op_mm_gelu_fwd(m, fchg, fch, ln2, w->fc_w, w->fc_b, N, C, 4 * C));
        DO(gpt_op_mm_fwd(m, a->proj, fchg, w->fcp_w, w->fcp_b, N, 4 * C, C, SHOAL_W_IN_OUT));
        DO(gpt_op_residual_fwd(m, res3, res2, a->proj, NC));
    }
    DO(gpt_op_ln_fwd(m, a->lnf, a->lnf_mean, a->lnf_rstd, ACT(m, a->res3, (size_t)(L - 1) * NC),
                     m->w.lnf_w, m->w.lnf_b, N));
    DO(gpt_op_mm_fwd(m, a->logits, a->lnf, m->w.wte, NULL, N, C, V, SHOAL_W_OUT_IN));
    if (!targets) {
        if (mean_loss) *mean_loss = 0.0f;
        return SHOAL_OK;
    }
    DO(shoal_ctx_h2d(&m->ctx, a->targets, targets, (size_t)N * sizeof(int32_t)));
    if (mask) {
        DO(shoal_ctx_h2d(&m->ctx, a->mask, mask, (size_t)N));
    } else if (m->ctx.k->host_visible) {
        memset(a->mask, 1, (size_t)N);
    } else {
        uint8_t *ones = malloc((size_t)N);
        SHOAL_REQUIRE(ones != NULL, SHOAL_ERR_NOMEM, "out of memory for a mask of %d tokens", N);
        memset(ones, 1, (size_t)N);
        shoal_status st = shoal_ctx_h2d(&m->ctx, a->mask, ones, (size_t)N);
        free(ones);
        SHOAL_CHECK(st);
    }
    DO(gpt_op_ce_fwd(m, a->losses, a->lse, a->logits, a->targets, N));
    const float *losses = a->losses;
    if (!m->ctx.k->host_visible) {
        DO(shoal_ctx_d2h(&m->ctx, m->host_losses, a->losses, (size_t)N * sizeof(float)));
        losses = m->host_losses;
    }
    double sum = 0.0;
    for (int i = 0; i < N; i++)
        if (targets[i] >= 0 && (!mask || mask[i])) sum += losses[i];
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
    int B = m->cur_B, T = m->cur_T, N = B * T, C = c->n_embd;
    int V = c->vocab_size, L = c->n_layer;
    size_t NC = (size_t)N * C, es = m->act_es, atl = att_per_layer(m, B, T);
    gpt_acts *a = &m->acts;
    int lp = m->prec == SHOAL_PRECISION_BF16;

    /* loss -> logits (in place) -> ln_f -> residual stream */
    DO(gpt_op_ce_bwd(m, a->logits, a->logits, a->lse, a->targets, a->mask, m->count_inv, N));
    OP(zero, a->dbtc, NC * es);
    DO(gpt_op_mm_bwd(m, a->dbtc, m->g.wte, NULL, a->logits, a->lnf, m->w.wte, N, C, V,
                     SHOAL_W_OUT_IN));
    OP(zero, a->dres, NC * es);
    DO(gpt_op_ln_bwd(m, a->dres, m->g.lnf_w, m->g.lnf_b, a->dbtc,
                     ACT(m, a->res3, (size_t)(L - 1) * NC), m->w.lnf_w, a->lnf_mean, a->lnf_rstd,
                     N));
    HOOK((size_t)(m->w.lnf_w - m->params), 2 * (size_t)C);

    for (int l = L - 1; l >= 0; l--) {
        const gpt_layer *w = &m->w.h[l];
        gpt_layer *g = &m->g.h[l];
        const void *in = l == 0 ? a->encoded : ACT(m, a->res3, (size_t)(l - 1) * NC);
        void *ln1 = ACT(m, a->ln1, l * NC), *qkv = ACT(m, a->qkv, l * 3 * NC);
        void *atty = ACT(m, a->atty, l * NC), *res2 = ACT(m, a->res2, l * NC);
        void *ln2 = ACT(m, a->ln2, l * NC), *fch = ACT(m, a->fch, l * 4 * NC);
        const float *att = a->att + (size_t)l * atl;
        /* res3 = res2 + mlp(ln2(res2)): dres carries d(res3) and, after the layernorm
         * backward adds into it, d(res2). fp32 recomputes the GELU output, bf16 kept it. */
        void *fchg = a->fchg;
        if (lp) {
            fchg = ACT(m, a->fchg, l * 4 * NC);
        } else {
            OP(gelu_forward, a->fchg, fch, 4 * NC);
        }
        OP(zero, a->d4a, 4 * NC * es);
        DO(gpt_op_mm_bwd(m, a->d4a, g->fcp_w, g->fcp_b, a->dres, fchg, w->fcp_w, N, 4 * C, C,
                         SHOAL_W_IN_OUT));
        OP(zero, a->d4b, 4 * NC * es);
        DO(gpt_op_gelu_bwd(m, a->d4b, a->d4a, fch, 4 * NC));
        OP(zero, a->dbtc, NC * es);
        DO(gpt_op_mm_bwd(m, a->dbtc, g->fc_w, g->fc_b, a->d4b, ln2, w->fc_w, N, C, 4 * C,
                         SHOAL_W_IN_OUT));
        DO(gpt_op_ln_bwd(m, a->dres, g->ln2_w, g->ln2_b, a->dbtc, res2, w->ln2_w,
                         a->ln2_mean + (size_t)l * N, a->ln2_rstd + (size_t)l * N, N));
        /* res2 = in + attn(ln1(in)) */
        OP(zero, a->dbtc, NC * es);
        DO(gpt_op_mm_bwd(m, a->dbtc, g->attp_w, g->attp_b, a->dres, atty, w->attp_w, N, C, C,
                         SHOAL_W_IN_OUT));
        OP(zero, a->dqkv, 3 * NC * es);
        DO(gpt_op_attn_bwd(m, a->dqkv, a->dbtc, qkv, atty, att, B, T));
        OP(zero, a->dbtc, NC * es);
        DO(gpt_op_mm_bwd(m, a->dbtc, g->qkv_w, g->qkv_b, a->dqkv, ln1, w->qkv_w, N, C, 3 * C,
                         SHOAL_W_IN_OUT));
        DO(gpt_op_ln_bwd(m, a->dres, g->ln1_w, g->ln1_b, a->dbtc, in, w->ln1_w,
                         a->ln1_mean + (size_t)l * N, a->ln1_rstd + (size_t)l * N, N));
        HOOK((size_t)(w->ln1_w - m->params), 12 * (size_t)C * C + 13 * (size_t)C);
    }
    DO(gpt_op_encoder_bwd(m, a->dres, a->tokens, B, T));
    HOOK(0, ((size_t)V + (size_t)c->n_positions) * (size_t)C);
    return SHOAL_OK;
}
