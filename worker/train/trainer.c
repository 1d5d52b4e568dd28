/* trainer.c: see trainer.h. */
#define SHOAL_LOG_SUBSYS "trainer"
#include "worker/train/trainer.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/json.h"
#include "common/limits.h"
#include "common/progress.h"
#include "common/safetensors.h"
#include "common/timeutil.h"
#include "kernels/ops.h"
#include "privacy/accountant.h"
#include "worker/train/dataset.h"
#include "worker/train/dpsgd.h"
#include "worker/train/loader.h"
#include "worker/train/schedule.h"

#define CKPT_DIR SHOAL_TRAINER_CKPT_DIR
#define CKPT_FILE "trainer.safetensors"
/* Gradient all-reduce bucket: 1M floats (4 MB), the size past which MPI/NCCL reach full
 * bandwidth; a tuning constant, not an input bound. */
#define GRAD_BUCKET_ELEMS ((size_t)1 << 20)
#define DP_ACCT_FILE "dp_accountant.json"

void shoal_trainer_config_default(shoal_trainer_config *c) {
    memset(c, 0, sizeof *c);
    c->B = 8;
    c->T = 64;
    c->grad_accum = 1;
    c->steps = 100;
    c->lr = 3e-4;
    c->min_lr_ratio = 0.1;
    c->warmup_steps = 10;
    c->weight_decay = 0.1f;
    c->beta1 = 0.9f;
    c->beta2 = 0.95f;
    c->eps = 1e-8f;
    c->grad_clip = 1.0f;
    c->eval_every = 50;
    c->eval_batches = 20;
    c->ckpt_every = 100;
    c->seed = 1;
    c->save_model = 1;
}

typedef struct {
    const shoal_trainer_config *cfg;
    shoal_gpt *m;
    shoal_dataset *ds;
    shoal_loader *train, *val;
    float *adam_m, *adam_v; /* the moments of parameters [shard_off, shard_off + shard_cnt);
                             * backend memory of the model's context */
    double *dev_scalars;    /* device comm: (8) staging for the scalar all-reduces */
    size_t n_params;
    shoal_comm *comm; /* NULL: one rank */
    int rank, world;
    size_t shard_off, shard_cnt; /* this rank's optimizer block: everything unless zero */
    size_t *counts;              /* ZeRO: every rank's block size */
    shoal_comm_bucketer *bucketer; /* overlapped gradient all-reduce; NULL: after backward */
    int32_t *tok, *tgt;
    uint8_t *mask;
    /* DP-SGD (cfg->dp_clip > 0) */
    shoal_dpsgd *dp;
    double dp_sigma, dp_q;
    uint64_t *dp_idx;
    size_t dp_idx_cap, dp_rows_cap;
    int32_t *dp_tok, *dp_tgt;
    uint8_t *dp_mask;
    char dp_acct_path[SHOAL_MAX_PATH];
} run_state;

static shoal_status sum_f64(run_state *s, double *v, size_t n) {
    if (s->world <= 1) return SHOAL_OK;
    if (!s->dev_scalars) return shoal_comm_allreduce(s->comm, v, n, SHOAL_DTYPE_F64, SHOAL_COMM_SUM);
    /* NCCL reduces device buffers only: stage the few scalars (n <= 8) through the device */
    shoal_ctx *ctx = shoal_gpt_ctx(s->m);
    SHOAL_ASSERT(n <= 8);
    SHOAL_CHECK(shoal_ctx_h2d(ctx, s->dev_scalars, v, n * sizeof(double)));
    SHOAL_CHECK(shoal_comm_allreduce(s->comm, s->dev_scalars, n, SHOAL_DTYPE_F64, SHOAL_COMM_SUM));
    return shoal_ctx_d2h(ctx, v, s->dev_scalars, n * sizeof(double));
}

/* A host view of n floats of the model's backend memory: src itself when the backend is
 * host-visible (*owned NULL), else a copy the caller frees (*owned). */
static shoal_status host_view(run_state *s, const float *src, size_t n, const float **out,
                              float **owned) {
    shoal_ctx *ctx = shoal_gpt_ctx(s->m);
    *owned = NULL;
    *out = src;
    if (ctx->k->host_visible) return SHOAL_OK;
    float *h = malloc((n ? n : 1) * sizeof(float));
    SHOAL_REQUIRE(h != NULL, SHOAL_ERR_NOMEM, "train: out of memory staging %zu floats", n);
    shoal_status st = shoal_ctx_d2h(ctx, h, src, n * sizeof(float));
    if (st != SHOAL_OK) {
        free(h);
        return st;
    }
    *owned = h;
    *out = h;
    return SHOAL_OK;
}

/* Every rank agrees on success: a rank that failed locally (a bad checkpoint file) makes all
 * fail instead of leaving the others blocked in the next collective. */
static shoal_status agree(run_state *s, shoal_status local) {
    double bad = local != SHOAL_OK;
    shoal_status st = sum_f64(s, &bad, 1);
    if (st != SHOAL_OK) return st;
    if (local != SHOAL_OK) return local;
    SHOAL_REQUIRE(bad == 0, SHOAL_ERR_REMOTE, "train: another rank failed (see its log)");
    return SHOAL_OK;
}

/* The run geometry and model identity a checkpoint must match, as metadata strings. */
static void model_desc(const shoal_gpt_config *mc, char *out, size_t cap) {
    snprintf(out, cap, "n_layer=%d n_head=%d n_embd=%d vocab_size=%d n_positions=%d", mc->n_layer,
             mc->n_head, mc->n_embd, mc->vocab_size, mc->n_positions);
}
static void geometry_desc(const shoal_trainer_config *c, char *out, size_t cap) {
    int world = c->comm ? shoal_comm_world_size(c->comm) : 1;
    snprintf(out, cap, "B=%d T=%d grad_accum=%d world=%d zero=%d seed=%llu", c->B, c->T,
             c->grad_accum, world, world > 1 && c->zero, (unsigned long long)c->seed);
}

static long long step_of_name(const char *name) {
    if (strncmp(name, "step-", 5) != 0 || !name[5]) return -1;
    char *end = NULL;
    long long k = strtoll(name + 5, &end, 10);
    return *end == '\0' && k >= 0 ? k : -1;
}

shoal_status shoal_trainer_find_checkpoint(const char *out_dir, char *out, size_t cap) {
    char dir[SHOAL_MAX_PATH], done[SHOAL_MAX_PATH + 300];
    SHOAL_CHECK(shoal_path_join(dir, sizeof dir, out_dir, CKPT_DIR));
    DIR *d = opendir(dir);
    if (!d) return SHOAL_ERR_NOT_FOUND;
    long long best = -1;
    char best_name[256] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        long long k = step_of_name(e->d_name);
        if (k < 0 || k <= best) continue;
        snprintf(done, sizeof done, "%s/%s/DONE", dir, e->d_name);
        if (!shoal_path_exists(done)) continue; /* incomplete: a rank died while writing */
        best = k;
        snprintf(best_name, sizeof best_name, "%s", e->d_name);
    }
    closedir(d);
    if (best < 0) return SHOAL_ERR_NOT_FOUND;
    int n = snprintf(out, cap, "%s/%s", dir, best_name);
    SHOAL_REQUIRE(n > 0 && (size_t)n < cap, SHOAL_ERR_LIMIT, "checkpoint path too long");
    return SHOAL_OK;
}

static shoal_status rank_file(char *out, size_t cap, const char *dir, int rank) {
    char name[64];
    snprintf(name, sizeof name, "optim-rank-%05d.safetensors", rank);
    return shoal_path_join(out, cap, dir, name);
}

/* This rank's part of the checkpoint of `step` into dir (see trainer.h). */
static shoal_status save_part(run_state *s, const char *dir, int64_t step) {
    char step_s[32], model_s[160], geo_s[160], path[SHOAL_MAX_PATH];
    snprintf(step_s, sizeof step_s, "%lld", (long long)step);
    model_desc(shoal_gpt_cfg(s->m), model_s, sizeof model_s);
    geometry_desc(s->cfg, geo_s, sizeof geo_s);
    const char *meta[] = {"format",      "shoal-checkpoint",
                          "version",     "2",
                          "step",        step_s,
                          "model",       model_s,
                          "geometry",    geo_s,
                          "data_sha256", s->ds->source_sha256};
    int zero = s->world > 1 && s->cfg->zero;
    /* host views of the fp32 masters and moments (copies on a device) */
    shoal_status st = SHOAL_OK;
    const float *hm = NULL, *hv = NULL, *hp = NULL;
    float *om = NULL, *ov = NULL, *op = NULL;
    SHOAL_CHECK_GOTO(host_view(s, s->adam_m, s->shard_cnt, &hm, &om));
    SHOAL_CHECK_GOTO(host_view(s, s->adam_v, s->shard_cnt, &hv, &ov));
    if (zero) {
        int64_t k = (int64_t)s->shard_cnt;
        shoal_st_write_tensor t[2] = {
            {"adam_m", SHOAL_DTYPE_F32, 1, &k, hm},
            {"adam_v", SHOAL_DTYPE_F32, 1, &k, hv},
        };
        SHOAL_CHECK_GOTO(rank_file(path, sizeof path, dir, s->rank));
        SHOAL_CHECK_GOTO(shoal_safetensors_write(path, t, 2, meta, 6));
    }
    if (s->rank != 0) goto cleanup;
    SHOAL_CHECK_GOTO(host_view(s, shoal_gpt_params_const(s->m), s->n_params, &hp, &op));
    shoal_loader_state ls;
    shoal_loader_get_state(s->train, &ls);
    uint8_t blob[SHOAL_LOADER_STATE_BYTES];
    shoal_loader_state_encode(&ls, blob);
    int64_t n = (int64_t)s->n_params, nb = SHOAL_LOADER_STATE_BYTES;
    shoal_st_write_tensor t[4] = {
        {"params", SHOAL_DTYPE_F32, 1, &n, hp},
        {"loader", SHOAL_DTYPE_U8, 1, &nb, blob},
        {"adam_m", SHOAL_DTYPE_F32, 1, &n, hm},
        {"adam_v", SHOAL_DTYPE_F32, 1, &n, hv},
    };
    if (s->dp) {
        /* The accountant first: a crash between the two writes leaves it ahead of the
         * checkpoint (epsilon over-counted, which is safe), never behind it. */
        SHOAL_CHECK_GOTO(shoal_path_join(path, sizeof path, dir, DP_ACCT_FILE));
        SHOAL_CHECK_GOTO(shoal_dp_accountant_save(shoal_dpsgd_accountant(s->dp), path));
    }
    SHOAL_CHECK_GOTO(shoal_path_join(path, sizeof path, dir, CKPT_FILE));
    st = shoal_safetensors_write(path, t, zero ? 2 : 4, meta, 6);
cleanup:
    free(op);
    free(ov);
    free(om);
    return st;
}

/* Every rank writes its part, a barrier, then rank 0 marks the directory complete. */
static shoal_status save_checkpoint(run_state *s, int64_t step) {
    char root[SHOAL_MAX_PATH], name[40], dir[SHOAL_MAX_PATH], done[SHOAL_MAX_PATH];
    SHOAL_CHECK(shoal_path_join(root, sizeof root, s->cfg->out_dir, CKPT_DIR));
    snprintf(name, sizeof name, "step-%08lld", (long long)step);
    SHOAL_CHECK(shoal_path_join(dir, sizeof dir, root, name));
    SHOAL_CHECK(shoal_path_join(done, sizeof done, dir, "DONE"));
    shoal_status st = shoal_mkdir_p(dir);
    if (st == SHOAL_OK) st = save_part(s, dir, step);
    SHOAL_CHECK(agree(s, st));
    if (s->rank == 0) {
        char line[64];
        int n = snprintf(line, sizeof line, "step %lld world %d\n", (long long)step, s->world);
        SHOAL_CHECK(shoal_file_write_atomic(done, line, (size_t)n));
        if (s->cfg->on_checkpoint) s->cfg->on_checkpoint(s->cfg->cb_arg, step, dir);
    }
    return SHOAL_OK;
}

static shoal_status expect_meta(const shoal_safetensors *st, const char *path, const char *key,
                                const char *want) {
    const char *got = shoal_safetensors_meta(st, key);
    SHOAL_REQUIRE(got && strcmp(got, want) == 0, SHOAL_ERR_INVALID_ARG,
                  "%s: checkpoint %s is \"%s\" but this run has \"%s\"; resume with the same "
                  "model, data and batch settings, or use a fresh --out",
                  path, key, got ? got : "(missing)", want);
    return SHOAL_OK;
}

/* Open path and check it belongs to this run (format, model, geometry, data). */
static shoal_status open_part(run_state *s, const char *path, shoal_safetensors **out) {
    shoal_safetensors *sf = NULL;
    SHOAL_CHECK(shoal_safetensors_open(path, &sf));
    shoal_status st = SHOAL_OK;
    char model_s[160], geo_s[160];
    model_desc(shoal_gpt_cfg(s->m), model_s, sizeof model_s);
    geometry_desc(s->cfg, geo_s, sizeof geo_s);
    SHOAL_CHECK_GOTO(expect_meta(sf, path, "format", "shoal-checkpoint"));
    SHOAL_CHECK_GOTO(expect_meta(sf, path, "version", "2"));
    SHOAL_CHECK_GOTO(expect_meta(sf, path, "model", model_s));
    SHOAL_CHECK_GOTO(expect_meta(sf, path, "geometry", geo_s));
    SHOAL_CHECK_GOTO(expect_meta(sf, path, "data_sha256", s->ds->source_sha256));
    *out = sf;
    return SHOAL_OK;
cleanup:
    shoal_safetensors_close(sf);
    return st;
}

static shoal_status find_f32(const shoal_safetensors *sf, const char *path, const char *name,
                             size_t n, const shoal_st_tensor **out) {
    const shoal_st_tensor *t = shoal_safetensors_find(sf, name);
    SHOAL_REQUIRE(t && t->dtype == SHOAL_DTYPE_F32 && t->ndim == 1 && t->nelem == n,
                  SHOAL_ERR_FORMAT, "%s: tensor %s is missing or not F32 [%zu]", path, name, n);
    *out = t;
    return SHOAL_OK;
}

/* This rank's part of the checkpoint in dir: parameters and loader position from rank 0's
 * file, the moments from it or (ZeRO) from this rank's file. Nothing is changed unless all
 * of it checked out. */
static shoal_status load_checkpoint(run_state *s, const char *dir, int64_t *step) {
    char path[SHOAL_MAX_PATH], opath[SHOAL_MAX_PATH];
    shoal_safetensors *sf = NULL, *of = NULL;
    shoal_status st = SHOAL_OK;
    SHOAL_CHECK(shoal_path_join(path, sizeof path, dir, "DONE"));
    SHOAL_REQUIRE(shoal_path_exists(path), SHOAL_ERR_NOT_FOUND,
                  "%s: not a complete checkpoint (no DONE marker)", dir);
    SHOAL_CHECK(shoal_path_join(path, sizeof path, dir, CKPT_FILE));
    SHOAL_CHECK(open_part(s, path, &sf));
    int zero = s->world > 1 && s->cfg->zero;
    const char *step_s = shoal_safetensors_meta(sf, "step");
    char *end = NULL;
    long long k = step_s ? strtoll(step_s, &end, 10) : -1;
    SHOAL_REQUIRE_GOTO(step_s && *end == '\0' && k >= 0 && k <= s->cfg->steps, SHOAL_ERR_FORMAT,
                       "%s: checkpoint step \"%s\" is not in [0, %lld]", path,
                       step_s ? step_s : "(missing)", (long long)s->cfg->steps);
    const shoal_st_tensor *tp, *tm, *tv;
    SHOAL_CHECK_GOTO(find_f32(sf, path, "params", s->n_params, &tp));
    if (zero) {
        SHOAL_CHECK_GOTO(rank_file(opath, sizeof opath, dir, s->rank));
        SHOAL_CHECK_GOTO(open_part(s, opath, &of));
        const char *os = shoal_safetensors_meta(of, "step");
        SHOAL_REQUIRE_GOTO(os && strcmp(os, step_s) == 0, SHOAL_ERR_FORMAT,
                           "%s: step %s, but %s has step %s", opath, os ? os : "(missing)", path,
                           step_s);
        SHOAL_CHECK_GOTO(find_f32(of, opath, "adam_m", s->shard_cnt, &tm));
        SHOAL_CHECK_GOTO(find_f32(of, opath, "adam_v", s->shard_cnt, &tv));
    } else {
        SHOAL_CHECK_GOTO(find_f32(sf, path, "adam_m", s->n_params, &tm));
        SHOAL_CHECK_GOTO(find_f32(sf, path, "adam_v", s->n_params, &tv));
    }
    const shoal_st_tensor *lt = shoal_safetensors_find(sf, "loader");
    SHOAL_REQUIRE_GOTO(lt && lt->dtype == SHOAL_DTYPE_U8, SHOAL_ERR_FORMAT,
                       "%s: tensor loader is missing or not U8", path);
    shoal_loader_state ls;
    SHOAL_CHECK_GOTO(shoal_loader_state_decode(lt->data, (size_t)lt->nbytes, &ls));
    SHOAL_CHECK_GOTO(shoal_loader_set_state(s->train, &ls));
    /* Only now that everything checked out: overwrite parameters and optimizer state. */
    SHOAL_CHECK_GOTO(shoal_gpt_params_from_host(s->m, tp->data));
    SHOAL_CHECK_GOTO(
        shoal_ctx_h2d(shoal_gpt_ctx(s->m), s->adam_m, tm->data, s->shard_cnt * sizeof(float)));
    SHOAL_CHECK_GOTO(
        shoal_ctx_h2d(shoal_gpt_ctx(s->m), s->adam_v, tv->data, s->shard_cnt * sizeof(float)));
    *step = (int64_t)k;
cleanup:
    shoal_safetensors_close(sf);
    shoal_safetensors_close(of);
    return st;
}

static int mask_any(const uint8_t *m, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (m[i]) return 1;
    return 0;
}
static uint64_t mask_count(const uint8_t *m, size_t n) {
    uint64_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += m[i];
    return c;
}

/* Token-weighted mean loss over (up to eval_batches of) the validation split. */
static shoal_status evaluate(run_state *s, float *out) {
    const shoal_trainer_config *c = s->cfg;
    SHOAL_CHECK(shoal_loader_rewind(s->val, 0));
    uint64_t steps = shoal_loader_steps_per_epoch(s->val);
    if (c->eval_batches > 0 && (uint64_t)c->eval_batches < steps) steps = (uint64_t)c->eval_batches;
    double sum = 0, count = 0;
    size_t n = (size_t)c->B * (size_t)c->T;
    for (uint64_t i = 0; i < steps; i++) {
        SHOAL_CHECK(shoal_loader_next(s->val, s->tok, s->tgt, s->mask));
        uint64_t k = mask_count(s->mask, n);
        if (!k) continue;
        float loss = 0;
        SHOAL_CHECK(shoal_gpt_forward(s->m, s->tok, s->tgt, s->mask, c->B, c->T, &loss));
        sum += (double)loss * (double)k;
        count += (double)k;
    }
    double red[2] = {sum, count};
    SHOAL_CHECK(sum_f64(s, red, 2));
    sum = red[0];
    count = red[1];
    *out = count > 0 ? (float)(sum / count) : NAN;
    return SHOAL_OK;
}

/* AdamW on this rank's block [shard_off, shard_off + shard_cnt) of the parameters (all of
 * them without ZeRO), each tensor with its own weight decay. */
static shoal_status adamw_all(run_state *s, int64_t step, float lr) {
    const shoal_trainer_config *c = s->cfg;
    shoal_gpt *m = s->m;
    size_t off = s->shard_off, cnt = s->shard_cnt;
    for (int i = 0; i < shoal_gpt_num_tensors(m); i++) {
        const shoal_gpt_tensor *t = shoal_gpt_tensor_at(m, i);
        size_t lo = t->offset > off ? t->offset : off;
        size_t hi = t->offset + t->numel < off + cnt ? t->offset + t->numel : off + cnt;
        if (lo >= hi) continue; /* not in this rank's block */
        SHOAL_CHECK(shoal_gpt_adamw_update(m, lo, hi - lo, s->adam_m + (lo - off),
                                           s->adam_v + (lo - off), lr, c->beta1, c->beta2,
                                           c->eps, t->decay ? c->weight_decay : 0.0f,
                                           (int)step + 1, 1.0f));
    }
    return SHOAL_OK;
}

/* One DP-SGD step: a Poisson batch of windows, shoal_dpsgd_step, AdamW on the privatised
 * gradient. *loss: mean loss of the batch's examples (NAN for an empty batch). */
static shoal_status dp_train_step(run_state *s, int64_t step, float lr, float *loss,
                                  uint64_t *tokens) {
    const shoal_trainer_config *c = s->cfg;
    size_t n = 0;
    shoal_status st = shoal_dpsgd_sample(s->dp, s->dp_idx, s->dp_idx_cap, &n);
    if (st == SHOAL_ERR_LIMIT) { /* a rare large draw: the whole split always fits */
        size_t cap = (size_t)shoal_loader_n_windows(s->train);
        uint64_t *idx = realloc(s->dp_idx, cap * sizeof *idx);
        SHOAL_REQUIRE(idx != NULL, SHOAL_ERR_NOMEM, "train: out of memory for a DP batch");
        s->dp_idx = idx;
        s->dp_idx_cap = cap;
        st = shoal_dpsgd_sample(s->dp, s->dp_idx, s->dp_idx_cap, &n);
    }
    SHOAL_CHECK(st);
    size_t T = (size_t)c->T;
    if (n > s->dp_rows_cap) {
        int32_t *tk = realloc(s->dp_tok, n * T * sizeof *tk);
        if (tk) s->dp_tok = tk;
        int32_t *tg = realloc(s->dp_tgt, n * T * sizeof *tg);
        if (tg) s->dp_tgt = tg;
        uint8_t *mk = realloc(s->dp_mask, n * T);
        if (mk) s->dp_mask = mk;
        SHOAL_REQUIRE(tk && tg && mk, SHOAL_ERR_NOMEM, "train: out of memory for a DP batch of %zu",
                      n);
        s->dp_rows_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        SHOAL_CHECK(shoal_loader_window(s->train, s->dp_idx[i], s->dp_tok + i * T,
                                        s->dp_tgt + i * T, s->dp_mask + i * T));
    shoal_dpsgd_step_info info;
    SHOAL_CHECK(shoal_dpsgd_step(s->dp, s->m, s->dp_tok, s->dp_tgt, s->dp_mask, n, c->T, &info));
    *loss = (float)info.mean_loss;
    *tokens += (uint64_t)n * T;
    return adamw_all(s, step, lr);
}

static size_t grad_bucket(const shoal_trainer_config *c) {
    return c->grad_bucket > 0 ? (size_t)c->grad_bucket : GRAD_BUCKET_ELEMS;
}

/* Backward hook of the last micro-batch: its ranges are final for the step, so their buckets
 * may start all-reducing while backward goes on with earlier layers. */
static shoal_status grad_ready(void *arg, size_t offset, size_t n) {
    return shoal_comm_bucketer_mark_ready(arg, offset, n);
}

/* One optimizer step; *loss is the mean of the micro-batch losses (NAN when all skipped). */
static shoal_status train_step(run_state *s, int64_t step, float lr, float *loss) {
    const shoal_trainer_config *c = s->cfg;
    shoal_gpt *m = s->m;
    shoal_ctx *ctx = shoal_gpt_ctx(m);
    size_t n = (size_t)c->B * (size_t)c->T;
    shoal_gpt_zero_grad(m);
    double sum = 0;
    int used = 0;
    for (int a = 0; a < c->grad_accum; a++) {
        SHOAL_CHECK(shoal_loader_next(s->train, s->tok, s->tgt, s->mask));
        if (!mask_any(s->mask, n)) continue; /* all prompt: nothing to learn from */
        float l = 0;
        SHOAL_CHECK(shoal_gpt_forward(m, s->tok, s->tgt, s->mask, c->B, c->T, &l));
        int last = s->bucketer && a == c->grad_accum - 1;
        if (last) shoal_gpt_set_backward_hook(m, grad_ready, s->bucketer);
        shoal_status bst = shoal_gpt_backward(m);
        if (last) shoal_gpt_set_backward_hook(m, NULL, NULL);
        SHOAL_CHECK(bst);
        sum += l;
        used++;
    }
    /* Overlap: start what the last micro-batch did not (all of it when that one was skipped:
     * the bucketer starts buckets last to first on every rank whatever was marked, so the
     * ranks' collectives stay in the same order) and wait, before the loss sum below. When no
     * rank had a micro-batch this all-reduces zeros, and the step is skipped below. */
    if (s->bucketer) SHOAL_CHECK(shoal_comm_bucketer_finish(s->bucketer));
    /* Global loss and micro-batch count: every rank takes the same branch below. */
    double red[2] = {sum, (double)used};
    SHOAL_CHECK(sum_f64(s, red, 2));
    *loss = red[1] > 0 ? (float)(red[0] / red[1]) : NAN;
    if (red[1] == 0) {
        SHOAL_LOG_WARN("step %lld: every micro-batch was fully masked; no update",
                       (long long)step + 1);
        return SHOAL_OK;
    }
    float *g = shoal_gpt_grads(m);
    size_t off = s->shard_off, cnt = s->shard_cnt;
    int zero = s->world > 1 && c->zero;
    if (s->world > 1) {
        if (zero)
            SHOAL_CHECK(shoal_comm_reduce_scatter(s->comm, g, g + off, s->counts, SHOAL_DTYPE_F32,
                                                  SHOAL_COMM_SUM));
        else if (!s->bucketer)
            SHOAL_CHECK(shoal_comm_allreduce_bucketed(s->comm, g, s->n_params, SHOAL_DTYPE_F32,
                                                      SHOAL_COMM_SUM, grad_bucket(c)));
    }
    if (red[1] > 1) SHOAL_CHECK(SHOAL_OP(ctx, scale, g + off, cnt, (float)(1.0 / red[1])));
    float norm = 0;
    shoal_status st;
    if (zero) {
        /* global norm from the shards' squared norms, clipped as shoal_grad_clip does */
        double sq = 0;
        SHOAL_CHECK(SHOAL_OP(ctx, norm_sq, g + off, cnt, &sq));
        SHOAL_CHECK(sum_f64(s, &sq, 1));
        double nrm = sqrt(sq);
        st = isfinite(nrm) ? SHOAL_OK : SHOAL_ERR_INVALID_ARG;
        if (st == SHOAL_OK && c->grad_clip > 0.0f && nrm > (double)c->grad_clip)
            SHOAL_CHECK(
                SHOAL_OP(ctx, scale, g + off, cnt, (float)((double)c->grad_clip / (nrm + 1e-6))));
    } else {
        st = shoal_grad_clip(ctx, g, s->n_params, c->grad_clip, &norm);
    }
    if (st == SHOAL_ERR_INVALID_ARG) {
        SHOAL_LOG_WARN("step %lld: gradient norm is not finite; step skipped", (long long)step + 1);
        return SHOAL_OK;
    }
    SHOAL_CHECK(st);
    SHOAL_CHECK(adamw_all(s, step, lr));
    if (zero) {
        float *p = shoal_gpt_params(m); /* written by the gather (the bf16 copy follows) */
        SHOAL_CHECK(shoal_comm_all_gather(s->comm, p + off, p, s->counts, SHOAL_DTYPE_F32));
    }
    return SHOAL_OK;
}

static shoal_status check_config(const shoal_trainer_config *c, const shoal_gpt *m) {
    const shoal_gpt_config *mc = shoal_gpt_cfg(m);
    SHOAL_REQUIRE(c->data_dir && c->out_dir, SHOAL_ERR_INVALID_ARG,
                  "train: --data and --out are required");
    SHOAL_REQUIRE(c->B >= 1 && c->T >= 1 && c->grad_accum >= 1 && c->grad_accum <= 65536,
                  SHOAL_ERR_INVALID_ARG,
                  "train: batch %d, sequence %d, accumulation %d must be "
                  "positive",
                  c->B, c->T, c->grad_accum);
    SHOAL_REQUIRE(c->T <= mc->n_positions, SHOAL_ERR_INVALID_ARG,
                  "train: sequence length %d is longer than the model's n_positions %d", c->T,
                  mc->n_positions);
    SHOAL_REQUIRE(c->steps >= 1 && c->steps < (1ll << 31), SHOAL_ERR_INVALID_ARG,
                  "train: steps %lld must be in [1, 2^31)", (long long)c->steps);
    SHOAL_REQUIRE(c->eval_every >= 0 && c->eval_batches >= 0 && c->ckpt_every >= 0 &&
                      c->stop_after >= 0,
                  SHOAL_ERR_INVALID_ARG, "train: negative eval/checkpoint interval");
    SHOAL_REQUIRE(isfinite(c->weight_decay) && c->weight_decay >= 0 && c->beta1 >= 0 &&
                      c->beta1 < 1 && c->beta2 >= 0 && c->beta2 < 1 && c->eps > 0 &&
                      isfinite(c->grad_clip),
                  SHOAL_ERR_INVALID_ARG, "train: optimizer settings out of range");
    if (c->dp_clip != 0.0) {
        SHOAL_REQUIRE(isfinite(c->dp_clip) && c->dp_clip > 0, SHOAL_ERR_INVALID_ARG,
                      "train: --dp-clip %g must be > 0", c->dp_clip);
        SHOAL_REQUIRE(c->dp_delta > 0 && c->dp_delta < 1, SHOAL_ERR_INVALID_ARG,
                      "train: DP-SGD needs --dp-delta in (0, 1), usually below 1/(examples)");
        SHOAL_REQUIRE(isfinite(c->dp_noise) && c->dp_noise >= 0 && isfinite(c->dp_epsilon) &&
                          c->dp_epsilon >= 0 && (c->dp_noise > 0 || c->dp_epsilon > 0),
                      SHOAL_ERR_INVALID_ARG,
                      "train: DP-SGD needs --dp-noise > 0 or --dp-epsilon > 0 (got %g, %g)",
                      c->dp_noise, c->dp_epsilon);
    } else {
        SHOAL_REQUIRE(c->dp_noise == 0 && c->dp_epsilon == 0, SHOAL_ERR_INVALID_ARG,
                      "train: --dp-noise/--dp-epsilon need --dp-clip");
    }
    shoal_lr_schedule sch = {c->lr, c->min_lr_ratio, c->warmup_steps, c->steps};
    return shoal_lr_schedule_check(&sch);
}

/* Set up DP-SGD once the train loader is open and the checkpoint (if any) is loaded at
 * `step`: q, σ (solved for --dp-epsilon), the accountant (continued from the checkpoint's),
 * the budget check, and the sampler's buffers. */
static shoal_status dp_setup(run_state *s, int64_t step) {
    const shoal_trainer_config *c = s->cfg;
    uint64_t N = shoal_loader_n_windows(s->train), d = s->n_params;
    double expected = (double)c->B * (double)c->grad_accum;
    s->dp_q = expected >= (double)N ? 1.0 : expected / (double)N;
    if (c->dp_delta * (double)N > 1.0)
        SHOAL_LOG_WARN("train: --dp-delta %g is above 1/N = %g for N = %llu examples; the "
                       "guarantee is weak", c->dp_delta, 1.0 / (double)N, (unsigned long long)N);
    s->dp_sigma = c->dp_noise;
    if (s->dp_sigma == 0)
        SHOAL_CHECK(shoal_dpsgd_noise_for_epsilon(c->dp_epsilon, s->dp_q, d, (uint64_t)c->steps,
                                                  c->dp_delta, &s->dp_sigma));
    shoal_dp_accountant *acct = NULL;
    if (step > 0) {
        SHOAL_REQUIRE(shoal_path_exists(s->dp_acct_path), SHOAL_ERR_FORMAT,
                      "%s: missing: the checkpoint is at step %lld but its DP accountant state "
                      "is gone, so epsilon cannot be continued; use a fresh --out",
                      s->dp_acct_path, (long long)step);
        SHOAL_CHECK(shoal_dp_accountant_load(s->dp_acct_path, &acct));
        if (shoal_dp_accountant_total_steps(acct) < (uint64_t)step) {
            SHOAL_LOG_ERROR("%s: the accountant has %llu steps but the checkpoint is at step "
                            "%lld; refusing to under-count epsilon",
                            s->dp_acct_path,
                            (unsigned long long)shoal_dp_accountant_total_steps(acct),
                            (long long)step);
            shoal_dp_accountant_free(acct);
            return SHOAL_ERR_FORMAT;
        }
    }
    if (c->dp_epsilon > 0) {
        double eps = 0;
        shoal_status st = shoal_dpsgd_plan_epsilon(acct, s->dp_q, s->dp_sigma, d,
                                                   (uint64_t)(c->steps - step), c->dp_delta, &eps);
        if (st == SHOAL_OK && !(eps <= c->dp_epsilon)) {
            SHOAL_LOG_ERROR("train: the plan (%lld steps at q=%g, sigma=%g, delta=%g) reaches "
                            "epsilon %.4f, above the budget --dp-epsilon %g; raise --dp-noise, "
                            "or lower --steps or the batch",
                            (long long)c->steps, s->dp_q, s->dp_sigma, c->dp_delta, eps,
                            c->dp_epsilon);
            st = SHOAL_ERR_INVALID_ARG;
        }
        if (st != SHOAL_OK) {
            shoal_dp_accountant_free(acct);
            return st;
        }
    }
    shoal_dpsgd_config dc;
    shoal_dpsgd_config_default(&dc);
    dc.clip = c->dp_clip;
    dc.noise = s->dp_sigma;
    dc.sample_rate = s->dp_q;
    dc.n_examples = N;
    dc.delta = c->dp_delta;
    dc.noise_mode = c->dp_noise_fast ? SHOAL_DP_NOISE_FAST : SHOAL_DP_NOISE_EXACT;
    dc.micro_batch = c->B;
    dc.test_seed = c->dp_test_seed;
    /* --dp-noise-threads: split the CPU threads, N drawing the next step's noise ahead while
     * the rest run the model. On small models whose threads do not scale this beats every
     * thread doing both in turn (docs/BENCHMARKS.md, DP-SGD: the tiny model on 2 cores, 1 + 1,
     * 1.19-1.27x the non-private step with EXACT noise against 1.49-1.50x); on models whose
     * noise outweighs their compute (a 50k vocabulary at 96 channels) it is slower, so it is
     * the user's choice, not a default. */
    if (c->dp_noise_threads > 0) {
        int nt = shoal_gpt_ctx(s->m)->n_threads;
        if (c->dp_noise_threads >= nt) {
            SHOAL_LOG_ERROR("train: --dp-noise-threads %d leaves no thread for the model (%d "
                            "threads; raise --threads or lower --dp-noise-threads)",
                            c->dp_noise_threads, nt);
            shoal_dp_accountant_free(acct);
            return SHOAL_ERR_INVALID_ARG;
        }
        dc.noise_threads = c->dp_noise_threads;
        dc.noise_draw = SHOAL_DP_DRAW_AHEAD;
        shoal_status st = shoal_gpt_set_threads(s->m, nt - dc.noise_threads);
        if (st != SHOAL_OK) {
            shoal_dp_accountant_free(acct);
            return st;
        }
    }
    SHOAL_CHECK(shoal_dpsgd_init(&dc, s->m, acct, &s->dp)); /* takes acct */
    s->dp_idx_cap = (size_t)(expected + 10.0 * sqrt(expected) + 64.0);
    if (s->dp_idx_cap > N) s->dp_idx_cap = (size_t)N;
    s->dp_idx = malloc(s->dp_idx_cap * sizeof *s->dp_idx);
    SHOAL_REQUIRE(s->dp_idx != NULL, SHOAL_ERR_NOMEM, "train: out of memory");
    SHOAL_LOG_INFO("DP-SGD: N=%llu examples, q=%g (expected batch %.1f), sigma=%g, C=%g, "
                   "delta=%g, %s noise",
                   (unsigned long long)N, s->dp_q, s->dp_q * (double)N, s->dp_sigma, c->dp_clip,
                   c->dp_delta, c->dp_noise_fast ? "FAST" : "EXACT");
    return SHOAL_OK;
}

shoal_status shoal_trainer_run(shoal_gpt *m, const shoal_trainer_config *cfg,
                               shoal_trainer_result *res) {
    SHOAL_REQUIRE(m && cfg, SHOAL_ERR_INVALID_ARG, "train: no model or config");
    SHOAL_CHECK(check_config(cfg, m));
    shoal_ctx *mctx = shoal_gpt_ctx(m);
    /* "on a device": the model's buffers are not host memory (CUDA; the guarded test table) */
    int on_device = !mctx->k->host_visible;
    int world0 = cfg->comm ? shoal_comm_world_size(cfg->comm) : 1;
    SHOAL_REQUIRE(on_device || !cfg->comm || !shoal_comm_on_device(cfg->comm),
                  SHOAL_ERR_UNSUPPORTED,
                  "train: the %s communicator takes device buffers; CPU training needs mpi",
                  shoal_comm_backend_name(shoal_comm_backend_of(cfg->comm)));
    SHOAL_REQUIRE(!on_device || world0 <= 1 || shoal_comm_on_device(cfg->comm),
                  SHOAL_ERR_UNSUPPORTED,
                  "train: the model is on a %s device but the %s communicator reduces host "
                  "buffers; use --comm nccl (or auto) for multi-GPU training",
                  mctx->k->name, shoal_comm_backend_name(shoal_comm_backend_of(cfg->comm)));
    SHOAL_REQUIRE(!on_device || !(cfg->dp_clip > 0), SHOAL_ERR_UNSUPPORTED,
                  "train: DP-SGD (--dp-clip) runs on the CPU only (its per-example gradient "
                  "norms read activations on the host); use --device cpu");
    shoal_trainer_result r = {0};
    r.first_loss = r.last_loss = r.first_val_loss = r.val_loss = NAN;
    run_state s = {0};
    s.cfg = cfg;
    s.m = m;
    s.n_params = shoal_gpt_num_params(m);
    s.comm = cfg->comm;
    s.rank = s.comm ? shoal_comm_rank(s.comm) : 0;
    s.world = s.comm ? shoal_comm_world_size(s.comm) : 1;
    s.shard_off = 0;
    s.shard_cnt = s.n_params;
    SHOAL_REQUIRE(!(cfg->dp_clip > 0 && s.world > 1), SHOAL_ERR_UNSUPPORTED,
                  "train: DP-SGD runs on one rank in this build (got %d ranks)", s.world);
    FILE *progress = s.rank == 0 ? cfg->progress : NULL;
    FILE *metrics = s.rank == 0 ? cfg->metrics : NULL;
    shoal_status st = SHOAL_OK;
    shoal_progress bar;
    int bar_on = 0;
    const shoal_gpt_config *mc = shoal_gpt_cfg(m);

    if (s.world > 1 && cfg->zero) {
        s.counts = calloc((size_t)s.world, sizeof *s.counts);
        SHOAL_REQUIRE(s.counts, SHOAL_ERR_NOMEM, "train: out of memory");
        for (int r2 = 0; r2 < s.world; r2++) {
            size_t o;
            shoal_comm_shard(s.n_params, s.world, r2, &o, &s.counts[r2]);
        }
        shoal_comm_shard(s.n_params, s.world, s.rank, &s.shard_off, &s.shard_cnt);
    }
    if (s.world > 1 && shoal_comm_on_device(s.comm)) {
        /* NCCL: collectives wait for the compute stream; scalars are staged on the device */
        shoal_comm_set_compute_stream(s.comm, mctx->stream);
        SHOAL_CHECK_GOTO(shoal_ctx_alloc(mctx, (void **)&s.dev_scalars, 8 * sizeof(double),
                                         "the all-reduce staging"));
    }
    if (s.world > 1 && !cfg->zero && !cfg->no_overlap)
        SHOAL_CHECK_GOTO(shoal_comm_bucketer_init(&s.bucketer, s.comm, shoal_gpt_grads(m),
                                                  s.n_params, SHOAL_DTYPE_F32, SHOAL_COMM_SUM,
                                                  grad_bucket(cfg)));
    SHOAL_CHECK_GOTO(shoal_dataset_load(cfg->data_dir, &s.ds));
    SHOAL_CHECK_GOTO(shoal_dataset_verify(s.ds));
    SHOAL_REQUIRE_GOTO(s.ds->vocab_size <= (uint32_t)mc->vocab_size, SHOAL_ERR_INVALID_ARG,
                       "%s: the data was tokenized with a vocabulary of %u, larger than the "
                       "model's %d",
                       cfg->data_dir, s.ds->vocab_size, mc->vocab_size);
    shoal_loader_config lc = {cfg->B, cfg->T, s.rank, s.world, cfg->seed, 1, 1};
    SHOAL_CHECK_GOTO(shoal_loader_open_split(s.ds, "train", &lc, &s.train));
    if (s.ds->val.n_shards > 0) {
        shoal_loader_config vc = {cfg->B, cfg->T, s.rank, s.world, 0, 0, 0};
        if (shoal_loader_open_split(s.ds, "val", &vc, &s.val) != SHOAL_OK)
            SHOAL_LOG_WARN("%s: validation split unusable at T=%d; no validation loss",
                           cfg->data_dir, cfg->T);
    }
    size_t n = (size_t)cfg->B * (size_t)cfg->T;
    s.tok = malloc(n * sizeof *s.tok);
    s.tgt = malloc(n * sizeof *s.tgt);
    s.mask = malloc(n);
    SHOAL_REQUIRE_GOTO(s.tok && s.tgt && s.mask, SHOAL_ERR_NOMEM, "train: out of memory");
    /* fp32 moments in the model's backend memory, zeroed */
    SHOAL_CHECK_GOTO(shoal_ctx_alloc(mctx, (void **)&s.adam_m,
                                     (s.shard_cnt ? s.shard_cnt : 1) * sizeof(float),
                                     "the AdamW first moments"));
    SHOAL_CHECK_GOTO(shoal_ctx_alloc(mctx, (void **)&s.adam_v,
                                     (s.shard_cnt ? s.shard_cnt : 1) * sizeof(float),
                                     "the AdamW second moments"));
    /* one starting point on every rank, whatever each initialised */
    if (s.world > 1)
        SHOAL_CHECK_GOTO(shoal_comm_broadcast(s.comm, shoal_gpt_params(m), s.n_params,
                                              SHOAL_DTYPE_F32, 0));

    int64_t step = 0;
    char ckpt[SHOAL_MAX_PATH] = "";
    if (cfg->resume_from && cfg->resume_from[0]) {
        snprintf(ckpt, sizeof ckpt, "%s", cfg->resume_from);
    } else if (cfg->resume) {
        shoal_status fs = shoal_trainer_find_checkpoint(cfg->out_dir, ckpt, sizeof ckpt);
        if (fs != SHOAL_OK && fs != SHOAL_ERR_NOT_FOUND) st = fs;
        SHOAL_CHECK_GOTO(agree(&s, st));
        /* every rank must take the same checkpoint (or none) */
        double mine = ckpt[0] ? (double)step_of_name(strrchr(ckpt, '/') + 1) : -1.0;
        double lo = -mine;
        SHOAL_CHECK_GOTO(sum_f64(&s, &mine, 1));
        SHOAL_CHECK_GOTO(sum_f64(&s, &lo, 1));
        SHOAL_REQUIRE_GOTO(mine == -lo, SHOAL_ERR_INVALID_ARG,
                           "%s: the ranks see different newest checkpoints; the output "
                           "directory must be shared by all ranks",
                           cfg->out_dir);
        if (!ckpt[0])
            SHOAL_LOG_INFO("no complete checkpoint under %s/%s; starting at step 0", cfg->out_dir,
                           CKPT_DIR);
    }
    if (ckpt[0]) {
        SHOAL_CHECK_GOTO(agree(&s, load_checkpoint(&s, ckpt, &step)));
        SHOAL_CHECK_GOTO(shoal_path_join(s.dp_acct_path, sizeof s.dp_acct_path, ckpt, DP_ACCT_FILE));
        if (s.rank == 0)
            SHOAL_LOG_INFO("resumed from %s at step %lld", ckpt, (long long)step);
    }
    if (cfg->dp_clip > 0) SHOAL_CHECK_GOTO(dp_setup(&s, step));
    r.start_step = step;
    shoal_lr_schedule sch = {cfg->lr, cfg->min_lr_ratio, cfg->warmup_steps, cfg->steps};
    int64_t end = cfg->steps;
    if (cfg->stop_after > 0 && cfg->stop_after < end) end = cfg->stop_after;
    if (progress) {
        shoal_progress_init(&bar, progress, "train", "step", cfg->steps, step);
        bar_on = 1;
    }
    double t0 = shoal_now_s();
    uint64_t tokens_per_step = (uint64_t)n * (uint64_t)cfg->grad_accum * (uint64_t)s.world;
    for (; step < end; step++) {
        float lr = (float)shoal_lr_schedule_at(&sch, step), loss = NAN;
        if (s.dp) {
            SHOAL_CHECK_GOTO(dp_train_step(&s, step, lr, &loss, &r.tokens));
        } else {
            SHOAL_CHECK_GOTO(train_step(&s, step, lr, &loss));
            r.tokens += tokens_per_step;
        }
        if (isnan(r.first_loss)) r.first_loss = loss;
        r.last_loss = loss;
        if (metrics) fprintf(metrics, "step %lld loss %.9g lr %.9g\n", (long long)step + 1, loss, lr);
        int last = step + 1 == end;
        if (s.val &&
            ((cfg->eval_every && (step + 1) % cfg->eval_every == 0) || step + 1 == cfg->steps)) {
            float vl = NAN;
            SHOAL_CHECK_GOTO(evaluate(&s, &vl));
            if (isnan(r.first_val_loss)) r.first_val_loss = vl;
            r.val_loss = vl;
            if (progress)
                fprintf(progress, "%sstep %lld: val loss %.4f\n",
                        bar_on && bar.is_tty ? "\n" : "", (long long)step + 1, vl);
            if (metrics) fprintf(metrics, "step %lld val_loss %.9g\n", (long long)step + 1, vl);
        }
        if (metrics) fflush(metrics);
        if ((cfg->ckpt_every && (step + 1) % cfg->ckpt_every == 0) || last)
            SHOAL_CHECK_GOTO(save_checkpoint(&s, step + 1));
        if (s.rank == 0 && cfg->on_step) {
            double dt = shoal_now_s() - t0;
            cfg->on_step(cfg->cb_arg, step + 1, cfg->steps, loss,
                         dt > 0 ? (double)r.tokens / dt : 0.0);
        }
        if (bar_on) {
            double dt = shoal_now_s() - t0;
            char suffix[160], eps_s[40] = "";
            double eps = 0;
            if (s.dp && shoal_dpsgd_epsilon(s.dp, &eps, NULL) == SHOAL_OK)
                snprintf(eps_s, sizeof eps_s, " eps %.4f", eps);
            snprintf(suffix, sizeof suffix, "loss %.4f lr %.2e %.0f tok/s%s", loss, lr,
                     dt > 0 ? (double)r.tokens / dt : 0.0, eps_s);
            shoal_progress_update(&bar, step + 1, suffix, 0);
        }
    }
    double dt = shoal_now_s() - t0;
    r.end_step = step;
    r.tokens_per_s = dt > 0 ? (double)r.tokens / dt : 0;
    if (bar_on) {
        char suffix[96];
        snprintf(suffix, sizeof suffix, "loss %.4f %.0f tok/s", r.last_loss, r.tokens_per_s);
        shoal_progress_finish(&bar, step, suffix);
    }
    if (cfg->save_model && step == cfg->steps && s.rank == 0) {
        json_t *prov =
            json_pack("{s:s, s:s, s:I, s:i, s:f, s:f}", "data_sha256", s.ds->source_sha256,
                      "data_dir", cfg->data_dir, "steps", (json_int_t)step, "world", s.world,
                      "final_train_loss", isnan(r.last_loss) ? -1.0 : (double)r.last_loss,
                      "final_val_loss", isnan(r.val_loss) ? -1.0 : (double)r.val_loss);
        SHOAL_REQUIRE_GOTO(prov, SHOAL_ERR_NOMEM, "train: out of memory");
        if (s.dp) {
            json_t *dpj = NULL;
            st = shoal_dpsgd_provenance(s.dp, &dpj);
            if (st == SHOAL_OK && json_object_set_new(prov, "dp", dpj) != 0) st = SHOAL_ERR_NOMEM;
            if (st != SHOAL_OK) {
                json_decref(prov);
                goto cleanup;
            }
        }
        st = shoal_gpt_save_dir_ex(m, cfg->out_dir, SHOAL_DTYPE_F32, prov);
        json_decref(prov);
    }
    if (cfg->save_model && step == cfg->steps) SHOAL_CHECK_GOTO(agree(&s, st));
    if (s.dp) {
        r.dp_sigma = s.dp_sigma;
        r.dp_q = s.dp_q;
        if (shoal_dpsgd_epsilon(s.dp, &r.dp_epsilon, NULL) != SHOAL_OK) r.dp_epsilon = NAN;
    }
    if (res) *res = r;
cleanup:
    shoal_comm_bucketer_free(s.bucketer);
    shoal_dpsgd_free(s.dp);
    free(s.dp_idx);
    free(s.dp_tok);
    free(s.dp_tgt);
    free(s.dp_mask);
    free(s.tok);
    free(s.tgt);
    free(s.mask);
    shoal_ctx_mem_free(mctx, s.adam_m);
    shoal_ctx_mem_free(mctx, s.adam_v);
    shoal_ctx_mem_free(mctx, s.dev_scalars);
    free(s.counts);
    shoal_loader_free(s.train);
    shoal_loader_free(s.val);
    shoal_dataset_free(s.ds);
    return st;
}
