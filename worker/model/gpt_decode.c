/* gpt_decode.c: KV-cache decoding and sampling (greedy, temperature, top-k, top-p, seed).
 *
 * The prompt goes through one batched training-style forward whose keys and values are copied
 * into a (L, max_T, C) cache; each new token then runs through the same ops with N = 1 rows,
 * the attention_decode op appending its key and value to the cache. Sampling runs on the host over
 * the (V) logits with a splitmix64 stream seeded by the caller: the same seed, model and prompt
 * give the same tokens on every machine.
 * The cache and scratch are backend memory; the step's token goes up and its logits come back
 * by copy (nothing when the backend is host-visible), so decoding runs on a CUDA model too,
 * with the fp32 ops on the fp32 weights in either precision.
 * Tested by tests/model/test_gpt.c (decode logits == full forward logits, prefill == stepwise;
 * greedy generate ==
 * argmax of repeated full forwards; seeded sampling reproducible; top-k/top-p restrict support).
 */
#define SHOAL_LOG_SUBSYS "model"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "worker/model/gpt_internal.h"

shoal_status shoal_gpt_decode_reset(shoal_gpt *m, int max_T) {
    SHOAL_REQUIRE(m != NULL, SHOAL_ERR_INVALID_ARG, "decode_reset: model is NULL");
    SHOAL_REQUIRE(max_T >= 1 && max_T <= m->cfg.n_positions, SHOAL_ERR_INVALID_ARG,
                  "decode: context length %d must be in [1, n_positions=%d]", max_T,
                  m->cfg.n_positions);
    gpt_kv *kv = &m->kv;
    if (kv->block && kv->max_T >= max_T) return SHOAL_OK;
    shoal_ctx_mem_free(&m->ctx, kv->block);
    free(kv->host_logits);
    memset(kv, 0, sizeof *kv);
    size_t L = (size_t)m->cfg.n_layer, C = (size_t)m->cfg.n_embd, V = (size_t)m->cfg.vocab_size;
    size_t cache = L * (size_t)max_T * C;
    size_t total = 2 * cache + C * 4 + 3 * C + C * 4 + 4 * C + 4 * C + V + 1 /* token */;
    SHOAL_CHECK(shoal_ctx_alloc(&m->ctx, (void **)&kv->block, total * sizeof(float),
                                "the KV cache"));
    if (!m->ctx.k->host_visible) {
        kv->host_logits = malloc(V * sizeof(float));
        if (!kv->host_logits) {
            shoal_ctx_mem_free(&m->ctx, kv->block);
            kv->block = NULL;
            SHOAL_LOG_ERROR("out of memory for the host copy of %zu logits", V);
            return SHOAL_ERR_NOMEM;
        }
    }
    float *p = kv->block;
    kv->kc = p, p += cache;
    kv->vc = p, p += cache;
    kv->x = p, p += C;
    kv->ln = p, p += C;
    kv->a = p, p += C;
    kv->proj = p, p += C;
    kv->qkv = p, p += 3 * C;
    kv->fch = p, p += 4 * C;
    kv->fchg = p, p += 4 * C;
    kv->logits = p, p += V;
    kv->tok = (int32_t *)p;
    kv->max_T = max_T;
    return SHOAL_OK;
}

/* The host view of the (V) decode logits: the buffer itself on a host-visible backend, else
 * a copy. */
static shoal_status logits_out(shoal_gpt *m, const float **logits) {
    gpt_kv *kv = &m->kv;
    const float *h = kv->logits;
    if (!m->ctx.k->host_visible) {
        SHOAL_CHECK(shoal_ctx_d2h(&m->ctx, kv->host_logits, kv->logits,
                                  (size_t)m->cfg.vocab_size * sizeof(float)));
        h = kv->host_logits;
    }
    if (logits) *logits = h;
    return SHOAL_OK;
}

#define OP(op, ...) SHOAL_CHECK(SHOAL_OP(&m->ctx, op, __VA_ARGS__))

shoal_status shoal_gpt_decode_step(shoal_gpt *m, int32_t token, int pos, const float **logits) {
    SHOAL_REQUIRE(m && m->kv.block, SHOAL_ERR_INVALID_ARG, "decode_step before decode_reset");
    const shoal_gpt_config *c = &m->cfg;
    SHOAL_REQUIRE(token >= 0 && token < c->vocab_size, SHOAL_ERR_INVALID_ARG,
                  "decode: token id %d is outside the vocabulary [0, %d)", (int)token,
                  c->vocab_size);
    SHOAL_REQUIRE(pos >= 0 && pos < m->kv.max_T, SHOAL_ERR_INVALID_ARG,
                  "decode: position %d is outside the cache [0, %d)", pos, m->kv.max_T);
    gpt_kv *kv = &m->kv;
    int C = c->n_embd;
    size_t lstride = (size_t)kv->max_T * C;
    SHOAL_CHECK(shoal_ctx_h2d(&m->ctx, kv->tok, &token, sizeof token));
    OP(encoder_forward, kv->x, kv->tok, m->w.wte, m->w.wpe, 1, 1, C, pos);
    for (int l = 0; l < c->n_layer; l++) {
        const gpt_layer *w = &m->w.h[l];
        OP(layernorm_forward, kv->ln, NULL, NULL, kv->x, w->ln1_w, w->ln1_b, 1, C, c->ln_eps);
        OP(matmul_forward, kv->qkv, kv->ln, w->qkv_w, w->qkv_b, 1, C, 3 * C, SHOAL_W_IN_OUT);
        OP(attention_decode, kv->a, kv->kc + l * lstride, kv->vc + l * lstride, kv->qkv, pos,
           kv->max_T, 1, C, c->n_head);
        OP(matmul_forward, kv->proj, kv->a, w->attp_w, w->attp_b, 1, C, C, SHOAL_W_IN_OUT);
        OP(residual_forward, kv->x, kv->x, kv->proj, (size_t)C);
        OP(layernorm_forward, kv->ln, NULL, NULL, kv->x, w->ln2_w, w->ln2_b, 1, C, c->ln_eps);
        OP(matmul_forward, kv->fch, kv->ln, w->fc_w, w->fc_b, 1, C, 4 * C, SHOAL_W_IN_OUT);
        OP(gelu_forward, kv->fchg, kv->fch, (size_t)4 * C);
        OP(matmul_forward, kv->proj, kv->fchg, w->fcp_w, w->fcp_b, 1, 4 * C, C, SHOAL_W_IN_OUT);
        OP(residual_forward, kv->x, kv->x, kv->proj, (size_t)C);
    }
    OP(layernorm_forward, kv->ln, NULL, NULL, kv->x, m->w.lnf_w, m->w.lnf_b, 1, C, c->ln_eps);
    OP(matmul_forward, kv->logits, kv->ln, m->w.wte, NULL, 1, C, c->vocab_size, SHOAL_W_OUT_IN);
    return logits_out(m, logits);
}

shoal_status shoal_gpt_decode_prefill(shoal_gpt *m, const int32_t *tokens, int n,
                                      const float **logits) {
    SHOAL_REQUIRE(m && m->kv.block && tokens, SHOAL_ERR_INVALID_ARG,
                  "decode_prefill before decode_reset");
    SHOAL_REQUIRE(n >= 1 && n <= m->kv.max_T, SHOAL_ERR_INVALID_ARG,
                  "decode: prompt of %d tokens does not fit the cache of %d", n, m->kv.max_T);
    /* One batched forward over the prompt (GEMMs instead of n matrix-vector passes), then its
     * keys and values move into the cache: the forward keeps qkv (L,1,n,3C) for backward. */
    SHOAL_CHECK(shoal_gpt_forward(m, tokens, NULL, NULL, 1, n, NULL));
    int C = m->cfg.n_embd, V = m->cfg.vocab_size;
    size_t lstride = (size_t)m->kv.max_T * C;
    /* activation rows to the fp32 cache: a copy in fp32, a conversion in bf16 */
    for (int l = 0; l < m->cfg.n_layer; l++) {
        for (int t = 0; t < n; t++) {
            size_t row = ((size_t)l * n + t) * 3 * C;
            SHOAL_CHECK(gpt_act_to_f32(m, m->kv.kc + l * lstride + (size_t)t * C,
                                       ACT(m, m->acts.qkv, row + C), (size_t)C));
            SHOAL_CHECK(gpt_act_to_f32(m, m->kv.vc + l * lstride + (size_t)t * C,
                                       ACT(m, m->acts.qkv, row + 2 * C), (size_t)C));
        }
    }
    SHOAL_CHECK(gpt_act_to_f32(m, m->kv.logits, ACT(m, m->acts.logits, (size_t)(n - 1) * V),
                               (size_t)V));
    return logits_out(m, logits);
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    float p;
    int32_t id;
} cand;

static int cand_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id < y->id ? -1 : (x->id > y->id); /* ties: lower id first, deterministic */
}

static int32_t argmax(const float *x, int V) {
    int32_t best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int32_t shoal_gpt_sample(float *logits, int V, const shoal_sampling *s, uint64_t *rng) {
    if (!s || !(s->temperature > 0.0f) || V < 2) return argmax(logits, V);
    float mx = logits[argmax(logits, V)];
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        logits[i] = expf((logits[i] - mx) / s->temperature);
        sum += logits[i];
    }
    int use_k = s->top_k > 0 && s->top_k < V;
    int use_p = s->top_p > 0.0f && s->top_p < 1.0f;
    double u = (double)(rng_next(rng) >> 11) * 0x1.0p-53;
    if (!use_k && !use_p) { /* plain temperature sampling: one pass, no sort */
        double target = u * sum, acc = 0.0;
        for (int i = 0; i < V; i++) {
            acc += logits[i];
            if (acc > target) return i;
        }
        return V - 1;
    }
    cand *cs = malloc((size_t)V * sizeof *cs);
    if (!cs) return argmax(logits, V); /* out of memory: degrade to greedy, never crash */
    for (int i = 0; i < V; i++) cs[i] = (cand){(float)(logits[i] / sum), i};
    qsort(cs, (size_t)V, sizeof *cs, cand_desc);
    int n = use_k ? s->top_k : V;
    if (use_p) {
        double acc = 0.0;
        int k = 0;
        while (k < n) {
            acc += cs[k].p;
            k++;
            if (acc >= s->top_p) break;
        }
        n = k;
    }
    double tot = 0.0;
    for (int i = 0; i < n; i++) tot += cs[i].p;
    double target = u * tot, acc = 0.0;
    int32_t pick = cs[n - 1].id;
    for (int i = 0; i < n; i++) {
        acc += cs[i].p;
        if (acc > target) {
            pick = cs[i].id;
            break;
        }
    }
    free(cs);
    return pick;
}

shoal_status shoal_gpt_generate(shoal_gpt *m, const int32_t *prompt, int n_prompt, int max_new,
                                const shoal_sampling *s, int32_t eot_id, int32_t *out,
                                int *n_out) {
    SHOAL_REQUIRE(m && prompt && n_out && (out || max_new == 0), SHOAL_ERR_INVALID_ARG,
                  "generate: NULL argument");
    *n_out = 0;
    const shoal_gpt_config *c = &m->cfg;
    SHOAL_REQUIRE(n_prompt >= 1, SHOAL_ERR_INVALID_ARG, "generate: the prompt is empty");
    SHOAL_REQUIRE(n_prompt <= c->n_positions, SHOAL_ERR_INVALID_ARG,
                  "generate: prompt of %d tokens exceeds n_positions=%d", n_prompt,
                  c->n_positions);
    SHOAL_REQUIRE(max_new >= 0, SHOAL_ERR_INVALID_ARG, "generate: max_new=%d", max_new);
    for (int i = 0; i < n_prompt; i++)
        SHOAL_REQUIRE(prompt[i] >= 0 && prompt[i] < c->vocab_size, SHOAL_ERR_INVALID_ARG,
                      "generate: prompt token %d at position %d is outside the vocabulary [0, %d)",
                      (int)prompt[i], i, c->vocab_size);
    int total = n_prompt + max_new < c->n_positions ? n_prompt + max_new : c->n_positions;
    SHOAL_CHECK(shoal_gpt_decode_reset(m, total));
    uint64_t rng = s ? s->seed : 0;
    const float *logits = NULL;
    SHOAL_CHECK(shoal_gpt_decode_prefill(m, prompt, n_prompt, &logits));
    int pos = n_prompt;
    while (*n_out < max_new) {
        /* logits_out's host view; sampling may modify it in place */
        int32_t next = shoal_gpt_sample((float *)logits, c->vocab_size, s, &rng);
        if (eot_id >= 0 && next == eot_id) break;
        out[(*n_out)++] = next;
        if (*n_out == max_new || pos >= total) break;
        SHOAL_CHECK(shoal_gpt_decode_step(m, next, pos, &logits));
        pos++;
    }
    return SHOAL_OK;
}
