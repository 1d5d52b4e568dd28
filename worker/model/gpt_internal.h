/* gpt_internal.h: the model struct, shared by gpt.c (compute), gpt_io.c (config and HF
 * directories), gpt_decode.c (KV-cache decoding) and gpt_ops.c (per-op precision dispatch).
 * Private to worker/model.
 *
 * Memory: every buffer an op sees (params, grads, params_lp, acts.block, kv.block) is backend
 * memory from shoal_ctx_alloc on m->ctx; host code reaches it only through copies, or directly
 * when m->ctx.k->host_visible (the plain CPU table). In bf16 the activation buffers of gpt_acts
 * hold bf16 elements (act_es = 2) behind their float * type: index them with ACT().
 */
#ifndef SHOAL_WORKER_MODEL_GPT_INTERNAL_H
#define SHOAL_WORKER_MODEL_GPT_INTERNAL_H

#include "worker/model/gpt.h"

/* Pointers into the parameter (or gradient) block for one layer. */
typedef struct {
    float *ln1_w, *ln1_b;     /* (C) */
    float *qkv_w, *qkv_b;     /* (C, 3C), (3C) */
    float *attp_w, *attp_b;   /* (C, C), (C) */
    float *ln2_w, *ln2_b;     /* (C) */
    float *fc_w, *fc_b;       /* (C, 4C), (4C) */
    float *fcp_w, *fcp_b;     /* (4C, C), (C) */
} gpt_layer;

typedef struct {
    float *wte;   /* (V, C) */
    float *wpe;   /* (P, C) */
    gpt_layer *h; /* n_layer */
    float *lnf_w, *lnf_b; /* (C) */
} gpt_weights;

/* Activations for one (B, T) forward, kept for backward. */
typedef struct {
    int B, T;         /* capacity (B*T tokens at most, T at most) */
    float *encoded;   /* (B,T,C) */
    float *ln1;       /* (L,B,T,C) */
    float *ln1_mean, *ln1_rstd; /* (L,B,T) */
    float *qkv;       /* (L,B,T,3C) */
    float *atty;      /* (L,B,T,C) */
    float *att;       /* (L,B,NH,T,T) */
    float *res2;      /* (L,B,T,C) */
    float *ln2;       /* (L,B,T,C) */
    float *ln2_mean, *ln2_rstd; /* (L,B,T) */
    float *fch;       /* (L,B,T,4C) pre-GELU; GELU output is recomputed in backward */
    float *res3;      /* (L,B,T,C) */
    float *lnf;       /* (B,T,C) */
    float *lnf_mean, *lnf_rstd; /* (B,T) */
    float *logits;    /* (B,T,V); dlogits in place during backward */
    float *lse;       /* (B,T) */
    float *losses;    /* (B,T) */
    /* scratch shared by all layers */
    float *proj;      /* (B,T,C) c_proj outputs before the residual add */
    float *fchg;      /* (B,T,4C) GELU output */
    float *dres;      /* (B,T,C) gradient of the residual stream */
    float *dbtc;      /* (B,T,C) */
    float *dqkv;      /* (B,T,3C) */
    float *d4a, *d4b; /* (B,T,4C) */
    int32_t *tokens, *targets; /* (B,T) copies (backend memory) */
    uint8_t *mask;    /* (B,T) copy */
    float *block;     /* the one allocation all of the above point into */
} gpt_acts;

typedef struct {
    int max_T;
    float *kc, *vc;   /* (L, max_T, C) each */
    float *x, *ln, *qkv, *a, *proj, *fch, *fchg, *logits; /* one-token scratch */
    float *block;
    int32_t *tok;        /* (1) the token of a decode step, uploaded (inside block) */
    float *host_logits;  /* (V) host copy of logits; NULL when the backend is host-visible */
} gpt_kv;

struct shoal_gpt {
    shoal_gpt_config cfg;
    shoal_ctx ctx;
    size_t n_params;
    float *params; /* one block */
    float *grads;  /* same layout */
    gpt_weights w, g;
    shoal_gpt_tensor *table;
    int n_tensors;
    gpt_acts acts;
    int cur_B, cur_T;      /* shape of the last forward */
    int have_targets;      /* last forward had targets and backward has not consumed it */
    float count_inv;       /* 1 / counted tokens of the last forward */
    int dp_ready;          /* gpt_dp.c: the norms pass ran on the last forward and stored the
                            * per-example output gradients in dp_block; weighted backward may run */
    float *dp_block;       /* gpt_dp.c: stored output gradients (owned, freed with the model) */
    size_t dp_floats;      /* its capacity in floats */
    gpt_kv kv;
    shoal_gpt_backward_hook bw_hook; /* shoal_gpt_set_backward_hook; NULL: none */
    void *bw_hook_arg;
    json_t *hf_config;     /* config.json the model was loaded from (kept on save), or NULL */
    /* precision and device memory (gpt_ops.c, gpt.c) */
    shoal_precision prec;  /* FP32: the op table on fp32 buffers; BF16: ops_cuda.h bf16 entries */
    size_t act_es;         /* bytes per activation element: 4 (fp32) or 2 (bf16) */
    uint16_t *params_lp;   /* bf16: the bf16 copy of params (backend memory); NULL in fp32 */
    int lp_stale;          /* bf16: params changed since params_lp was last written */
    float *host_losses;    /* (B,T) host copy of acts.losses; NULL when host-visible */
    float *host_logits;    /* (B,T,V) host copy for shoal_gpt_logits, made on demand */
    size_t host_logits_cap;
};

/* ACT(p, i): element i of an activation buffer p in the model's activation dtype. */
#define ACT(m, p, i) ((void *)((char *)(p) + (size_t)(i) * (m)->act_es))

/* gpt_ops.c: one function per op, fp32 table or bf16 CUDA entry point by m->prec. */
shoal_status gpt_sync_lp(shoal_gpt *m);
shoal_status gpt_op_encoder_fwd(shoal_gpt *m, void *out, const int32_t *tokens, int B, int T);
shoal_status gpt_op_encoder_bwd(shoal_gpt *m, const void *dout, const int32_t *tokens, int B,
                                int T);
shoal_status gpt_op_ln_fwd(shoal_gpt *m, void *out, float *mean, float *rstd, const void *inp,
                           const float *w, const float *b, int N);
shoal_status gpt_op_ln_bwd(shoal_gpt *m, void *dinp, float *dw, float *db, const void *dout,
                           const void *inp, const float *w, const float *mean, const float *rstd,
                           int N);
shoal_status gpt_op_mm_fwd(shoal_gpt *m, void *out, const void *inp, const float *w,
                           const float *bias, int N, int IC, int OC, shoal_wlayout layout);
shoal_status gpt_op_mm_gelu_fwd(shoal_gpt *m, void *out, void *pre, const void *inp,
                                const float *w, const float *bias, int N, int IC, int OC);
shoal_status gpt_op_mm_bwd(shoal_gpt *m, void *dinp, float *dw, float *dbias, const void *dout,
                           const void *inp, const float *w, int N, int IC, int OC,
                           shoal_wlayout layout);
shoal_status gpt_op_attn_fwd(shoal_gpt *m, void *out, float *att, const void *qkv, int B, int T);
shoal_status gpt_op_attn_bwd(shoal_gpt *m, void *dqkv, const void *dout, const void *qkv,
                             const void *out, const float *att, int B, int T);
shoal_status gpt_op_gelu_bwd(shoal_gpt *m, void *dinp, const void *dout, const void *pre,
                             size_t n);
shoal_status gpt_op_residual_fwd(shoal_gpt *m, void *out, const void *a, const void *b,
                                 size_t n);
shoal_status gpt_op_ce_fwd(shoal_gpt *m, float *losses, float *lse, const void *logits,
                           const int32_t *targets, int N);
shoal_status gpt_op_ce_bwd(shoal_gpt *m, void *dlogits, const void *logits, const float *lse,
                           const int32_t *targets, const uint8_t *mask, float scale, int N);
/* dst (n, fp32, backend memory) = activation src (n, the model's activation dtype) */
shoal_status gpt_act_to_f32(shoal_gpt *m, float *dst, const void *src, size_t n);
shoal_status gpt_op_adamw(shoal_gpt *m, size_t off, size_t n, float *ms, float *vs, float lr,
                          float beta1, float beta2, float eps, float wd, int step,
                          float grad_scale);

/* gpt.c: host access to the fp32 parameter block. begin gives *h = the block itself when the
 * backend is host-visible, else a host copy (filled from the device when fetch, else
 * uninitialised); end writes it back when push (and marks the bf16 copy stale) and frees the
 * copy. end must follow every successful begin. */
shoal_status gpt_params_host_begin(const shoal_gpt *m, int fetch, float **h);
shoal_status gpt_params_host_end(shoal_gpt *m, float *h, int push);

#endif
