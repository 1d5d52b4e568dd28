/* gpt_internal.h: the model struct, shared by gpt.c (compute), gpt_io.c (config and HF
 * directories) and gpt_decode.c (KV-cache decoding). Private to worker/model.
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
    int32_t *tokens, *targets; /* (B,T) copies */
    uint8_t *mask;    /* (B,T) copy */
    float *block;     /* the one allocation all of the above point into */
} gpt_acts;

typedef struct {
    int max_T;
    float *kc, *vc;   /* (L, max_T, C) each */
    float *x, *ln, *qkv, *a, *proj, *fch, *fchg, *logits; /* one-token scratch */
    float *block;
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
};

#endif
