/* gpt_io.c: GPT-2 config.json and Hugging Face model directories, in and out.
 *
 * Loading accepts what HF GPT-2 directories actually contain: names with the "transformer."
 * prefix (saved from GPT2LMHeadModel) or without (the original gpt2 upload), F32/F16/BF16
 * tensors, the causal-mask buffers older transformers saved (*.attn.bias (1,1,P,P),
 * *.attn.masked_bias) and an lm_head.weight that must equal wte (tied). Anything else, a
 * missing tensor or a wrong shape, is an error naming the file and the tensor; parameters are
 * only replaced once the whole file has checked out.
 * Saving stages model.safetensors, config.json and shoal.json in a private temporary directory
 * inside the target and renames them into place only when all three are complete.
 * Tested by tests/model/test_gpt.c (round trips F32/BF16/F16, every bad-input case) and the
 * config fuzz target tests/fuzz/fuzz_gpt_config.c.
 */
#define SHOAL_LOG_SUBSYS "model"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/json.h"
#include "common/limits.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/version.h"
#include "worker/model/gpt_internal.h"

/* ---------------------------------------------------------------- config */

shoal_status shoal_gpt_config_from_json(const json_t *obj, const char *what,
                                        shoal_gpt_config *cfg) {
    SHOAL_REQUIRE(obj && json_is_object(obj), SHOAL_ERR_FORMAT, "%s: expected a JSON object",
                  what);
    const char *s = NULL;
    SHOAL_CHECK(shoal_json_get_str(obj, "model_type", 0, what, &s));
    SHOAL_REQUIRE(!s || strcmp(s, "gpt2") == 0, SHOAL_ERR_UNSUPPORTED,
                  "%s: model_type \"%s\" is not supported (shoal runs GPT-2 models: \"gpt2\")",
                  what, s);
    s = NULL;
    SHOAL_CHECK(shoal_json_get_str(obj, "activation_function", 0, what, &s));
    SHOAL_REQUIRE(!s || strcmp(s, "gelu_new") == 0 || strcmp(s, "gelu_pytorch_tanh") == 0,
                  SHOAL_ERR_UNSUPPORTED,
                  "%s: activation_function \"%s\" is not supported (GPT-2's tanh GELU: "
                  "\"gelu_new\")", what, s);
    int64_t L = 0, H = 0, E = 0, V = 0, P = -1;
    SHOAL_CHECK(shoal_json_get_int(obj, "n_layer", 1, 1, SHOAL_MAX_GPT_LAYERS, what, &L));
    SHOAL_CHECK(shoal_json_get_int(obj, "n_head", 1, 1, SHOAL_MAX_GPT_HEADS, what, &H));
    SHOAL_CHECK(shoal_json_get_int(obj, "n_embd", 1, 1, SHOAL_MAX_GPT_EMBD, what, &E));
    SHOAL_CHECK(shoal_json_get_int(obj, "vocab_size", 1, 1, SHOAL_MAX_GPT_VOCAB, what, &V));
    SHOAL_CHECK(shoal_json_get_int(obj, "n_positions", 0, 1, SHOAL_MAX_GPT_POSITIONS, what, &P));
    if (P < 0) SHOAL_CHECK(shoal_json_get_int(obj, "n_ctx", 0, 1, SHOAL_MAX_GPT_POSITIONS, what, &P));
    SHOAL_REQUIRE(P > 0, SHOAL_ERR_FORMAT, "%s: missing field \"n_positions\"", what);
    double eps = 1e-5;
    SHOAL_CHECK(shoal_json_get_num(obj, "layer_norm_epsilon", 0, 1e-30, 0.5, what, &eps));
    json_t *inner = json_object_get(obj, "n_inner");
    if (inner && !json_is_null(inner)) {
        SHOAL_REQUIRE(json_is_integer(inner) && json_integer_value(inner) == 4 * E,
                      SHOAL_ERR_UNSUPPORTED,
                      "%s: n_inner must be null or 4*n_embd=%lld (other MLP widths are not "
                      "supported)", what, (long long)(4 * E));
    }
    const char *flags[] = {"scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"};
    for (int i = 0; i < 2; i++) {
        int b = 0;
        SHOAL_CHECK(shoal_json_get_bool(obj, flags[i], 0, what, &b));
        SHOAL_REQUIRE(!b, SHOAL_ERR_UNSUPPORTED, "%s: %s=true is not supported", what, flags[i]);
    }
    json_t *tie = json_object_get(obj, "tie_word_embeddings");
    SHOAL_REQUIRE(!tie || !json_is_false(tie), SHOAL_ERR_UNSUPPORTED,
                  "%s: tie_word_embeddings=false is not supported (GPT-2 ties lm_head to wte)",
                  what);
    shoal_gpt_config c = {(int)L, (int)H, (int)E, (int)V, (int)P, (float)eps};
    SHOAL_CHECK(shoal_gpt_config_check(&c, what));
    *cfg = c;
    return SHOAL_OK;
}

shoal_status shoal_gpt_config_load(const char *path, shoal_gpt_config *cfg) {
    json_t *doc = NULL;
    SHOAL_CHECK(shoal_json_load_file(path, &doc));
    shoal_status st = shoal_gpt_config_from_json(doc, path, cfg);
    json_decref(doc);
    return st;
}

/* ---------------------------------------------------------------- load */

/* "[64, 192]" into buf; cut short when it does not fit. */
static const char *fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

/* Is name (after the prefix) one of the tensors HF checkpoints carry that we ignore? */
static int is_ignorable(const char *name) {
    size_t n = strlen(name);
    const char *suffixes[] = {".attn.bias", ".attn.masked_bias"};
    for (int i = 0; i < 2; i++) {
        size_t k = strlen(suffixes[i]);
        if (n > k && strcmp(name + n - k, suffixes[i]) == 0 && strncmp(name, "h.", 2) == 0)
            return 1;
    }
    return 0;
}

shoal_status shoal_gpt_load_tensors(shoal_gpt *m, const shoal_safetensors *sf,
                                    const char *path) {
    shoal_status st = SHOAL_OK;
    float *staged = NULL, *tmp = NULL;
    uint8_t *seen = NULL;
    SHOAL_REQUIRE(m && sf && path, SHOAL_ERR_INVALID_ARG, "shoal_gpt_load_tensors: NULL argument");
    int n = shoal_safetensors_count(sf);
    const char *prefix = shoal_safetensors_find(sf, "transformer.wte.weight") ? "transformer." : "";
    size_t plen = strlen(prefix);
    staged = malloc(m->n_params * sizeof(float));
    seen = calloc((size_t)m->n_tensors, 1);
    SHOAL_REQUIRE_GOTO(staged && seen, SHOAL_ERR_NOMEM, "%s: out of memory staging %zu parameters",
                       path, m->n_params);
    const shoal_st_tensor *lm_head = NULL;
    for (int i = 0; i < n; i++) {
        const shoal_st_tensor *t = shoal_safetensors_at(sf, i);
        const char *rest = strncmp(t->name, prefix, plen) == 0 ? t->name + plen : NULL;
        if (strcmp(t->name, "lm_head.weight") == 0) {
            lm_head = t;
            continue;
        }
        if (rest && is_ignorable(rest)) continue;
        char full[96];
        const shoal_gpt_tensor *pt = NULL;
        if (rest && snprintf(full, sizeof full, "transformer.%s", rest) < (int)sizeof full)
            pt = shoal_gpt_tensor_find(m, full);
        SHOAL_REQUIRE_GOTO(pt != NULL, SHOAL_ERR_FORMAT,
                           "%s: extra tensor \"%s\" is not a parameter of this GPT-2 model "
                           "(n_layer=%d); is the checkpoint from another model?",
                           path, t->name, m->cfg.n_layer);
        int shape_ok = t->ndim == pt->ndim && t->shape[0] == pt->shape[0] &&
                       (pt->ndim < 2 || t->shape[1] == pt->shape[1]);
        char got[200], want[64];
        SHOAL_REQUIRE_GOTO(shape_ok, SHOAL_ERR_FORMAT,
                           "%s: tensor \"%s\" has shape %s, expected %s (HF Conv1D layout, "
                           "from config.json)", path, t->name,
                           fmt_shape(got, sizeof got, t->ndim, t->shape),
                           fmt_shape(want, sizeof want, pt->ndim, pt->shape));
        SHOAL_REQUIRE_GOTO(shoal_convert_to_f32(staged + pt->offset, t->data, t->dtype, pt->numel) == 0,
                           SHOAL_ERR_FORMAT,
                           "%s: tensor \"%s\" has dtype %s; expected F32, F16 or BF16", path,
                           t->name, shoal_dtype_name(t->dtype));
        seen[pt - m->table] = 1;
    }
    for (int i = 0; i < m->n_tensors; i++) {
        char want[64];
        SHOAL_REQUIRE_GOTO(seen[i], SHOAL_ERR_FORMAT, "%s: missing tensor \"%s%s\" (shape %s)",
                           path, prefix, m->table[i].name + strlen("transformer."),
                           fmt_shape(want, sizeof want, m->table[i].ndim, m->table[i].shape));
    }
    if (lm_head) { /* tied: it must be wte, or the model is not what we run */
        const shoal_gpt_tensor *wte = &m->table[0];
        SHOAL_REQUIRE_GOTO(lm_head->ndim == 2 && lm_head->shape[0] == wte->shape[0] &&
                               lm_head->shape[1] == wte->shape[1],
                           SHOAL_ERR_FORMAT, "%s: lm_head.weight shape differs from wte", path);
        tmp = malloc(wte->numel * sizeof(float));
        SHOAL_REQUIRE_GOTO(tmp, SHOAL_ERR_NOMEM, "%s: out of memory checking lm_head", path);
        SHOAL_REQUIRE_GOTO(shoal_convert_to_f32(tmp, lm_head->data, lm_head->dtype, wte->numel) == 0,
                           SHOAL_ERR_FORMAT, "%s: lm_head.weight has dtype %s", path,
                           shoal_dtype_name(lm_head->dtype));
        SHOAL_REQUIRE_GOTO(memcmp(tmp, staged + wte->offset, wte->numel * sizeof(float)) == 0,
                           SHOAL_ERR_UNSUPPORTED,
                           "%s: lm_head.weight differs from wte.weight; untied output "
                           "embeddings are not supported", path);
    }
    SHOAL_CHECK_GOTO(shoal_gpt_params_from_host(m, staged));
cleanup:
    free(tmp);
    free(seen);
    free(staged);
    return st;
}

shoal_status shoal_gpt_load_safetensors(shoal_gpt *m, const char *path) {
    shoal_safetensors *sf = NULL;
    SHOAL_REQUIRE(m && path, SHOAL_ERR_INVALID_ARG, "shoal_gpt_load_safetensors: NULL argument");
    SHOAL_CHECK(shoal_safetensors_open(path, &sf));
    shoal_status st = shoal_gpt_load_tensors(m, sf, path);
    shoal_safetensors_close(sf);
    return st;
}

shoal_status shoal_gpt_load_dir(const char *dir, shoal_gpt **out) {
    shoal_status st = SHOAL_OK;
    shoal_gpt *m = NULL;
    json_t *doc = NULL;
    char path[SHOAL_MAX_PATH];
    SHOAL_REQUIRE(dir && out, SHOAL_ERR_INVALID_ARG, "shoal_gpt_load_dir: NULL argument");
    *out = NULL;
    SHOAL_CHECK(shoal_path_join(path, sizeof path, dir, "config.json"));
    SHOAL_CHECK(shoal_json_load_file(path, &doc));
    shoal_gpt_config cfg;
    SHOAL_CHECK_GOTO(shoal_gpt_config_from_json(doc, path, &cfg));
    SHOAL_CHECK_GOTO(shoal_gpt_create(&cfg, &m));
    SHOAL_CHECK_GOTO(shoal_path_join(path, sizeof path, dir, "model.safetensors"));
    if (!shoal_path_exists(path)) {
        char idx[SHOAL_MAX_PATH];
        SHOAL_CHECK_GOTO(shoal_path_join(idx, sizeof idx, dir, "model.safetensors.index.json"));
        SHOAL_REQUIRE_GOTO(!shoal_path_exists(idx), SHOAL_ERR_UNSUPPORTED,
                           "%s: sharded checkpoints are not supported yet; merge the shards into "
                           "model.safetensors", idx);
        SHOAL_REQUIRE_GOTO(0, SHOAL_ERR_NOT_FOUND, "%s: no such file (a model directory needs "
                           "config.json and model.safetensors)", path);
    }
    SHOAL_CHECK_GOTO(shoal_gpt_load_safetensors(m, path));
    m->hf_config = doc;
    doc = NULL;
    *out = m;
    m = NULL;
cleanup:
    if (doc) json_decref(doc);
    shoal_gpt_free(m);
    return st;
}

/* ---------------------------------------------------------------- save */

static json_t *config_json(const shoal_gpt *m, shoal_dtype dtype) {
    const shoal_gpt_config *c = &m->cfg;
    json_t *o = m->hf_config ? json_deep_copy(m->hf_config) : json_object();
    if (!o) return NULL;
    int eos = c->vocab_size > 50256 ? 50256 : c->vocab_size - 1;
    int bad = 0;
#define SET(k, v) bad |= json_object_set_new(o, k, v)
    if (!m->hf_config) {
        SET("activation_function", json_string("gelu_new"));
        SET("attn_pdrop", json_real(0.1));
        SET("embd_pdrop", json_real(0.1));
        SET("resid_pdrop", json_real(0.1));
        SET("bos_token_id", json_integer(eos));
        SET("eos_token_id", json_integer(eos));
        SET("initializer_range", json_real(0.02));
        SET("n_inner", json_null());
        SET("scale_attn_weights", json_true());
        SET("summary_activation", json_null());
        SET("summary_first_dropout", json_real(0.1));
        SET("summary_proj_to_labels", json_true());
        SET("summary_type", json_string("cls_index"));
        SET("summary_use_proj", json_true());
        SET("use_cache", json_true());
    }
    json_t *arch = json_array();
    bad |= json_array_append_new(arch, json_string("GPT2LMHeadModel"));
    SET("architectures", arch);
    SET("model_type", json_string("gpt2"));
    SET("n_layer", json_integer(c->n_layer));
    SET("n_head", json_integer(c->n_head));
    SET("n_embd", json_integer(c->n_embd));
    SET("vocab_size", json_integer(c->vocab_size));
    SET("n_positions", json_integer(c->n_positions));
    SET("n_ctx", json_integer(c->n_positions));
    SET("layer_norm_epsilon", json_real(c->ln_eps));
    SET("tie_word_embeddings", json_true());
    SET("torch_dtype", json_string(dtype == SHOAL_DTYPE_BF16 ? "bfloat16" : "float32"));
#undef SET
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void remove_staging(const char *stage) {
    const char *names[] = {"model.safetensors", "config.json", "shoal.json"};
    char p[SHOAL_MAX_PATH];
    for (int i = 0; i < 3; i++)
        if (shoal_path_join(p, sizeof p, stage, names[i]) == SHOAL_OK) unlink(p);
    rmdir(stage);
}

shoal_status shoal_gpt_save_dir_ex(const shoal_gpt *m, const char *dir, shoal_dtype dtype,
                                   const json_t *provenance) {
    shoal_status st = SHOAL_OK;
    shoal_st_write_tensor *wt = NULL;
    uint16_t *half = NULL;
    float *hp = NULL;
    json_t *cfgj = NULL, *prov = NULL;
    char stage[SHOAL_MAX_PATH], p[SHOAL_MAX_PATH], dst[SHOAL_MAX_PATH];
    int staged = 0;
    SHOAL_REQUIRE(m && dir, SHOAL_ERR_INVALID_ARG, "shoal_gpt_save_dir: NULL argument");
    SHOAL_REQUIRE(dtype == SHOAL_DTYPE_F32 || dtype == SHOAL_DTYPE_BF16, SHOAL_ERR_INVALID_ARG,
                  "%s: models are saved as F32 or BF16, not %s", dir, shoal_dtype_name(dtype));
    SHOAL_REQUIRE(!provenance || json_is_object(provenance), SHOAL_ERR_INVALID_ARG,
                  "%s: provenance must be a JSON object", dir);
    SHOAL_CHECK(shoal_mkdir_p(dir));
    char leaf[64];
    snprintf(leaf, sizeof leaf, ".shoal-save.%ld", (long)getpid());
    SHOAL_CHECK(shoal_path_join(stage, sizeof stage, dir, leaf));
    remove_staging(stage);
    SHOAL_REQUIRE(mkdir(stage, 0755) == 0, SHOAL_ERR_IO,
                  "%s: cannot create staging directory: %s", stage, strerror(errno));
    staged = 1;

    wt = calloc((size_t)m->n_tensors, sizeof *wt);
    SHOAL_REQUIRE_GOTO(wt, SHOAL_ERR_NOMEM, "out of memory saving %s", dir);
    /* the fp32 masters, copied to the host unless the backend is host-visible */
    SHOAL_CHECK_GOTO(gpt_params_host_begin(m, 1, &hp));
    if (dtype == SHOAL_DTYPE_BF16) {
        half = malloc(m->n_params * sizeof(uint16_t));
        SHOAL_REQUIRE_GOTO(half, SHOAL_ERR_NOMEM, "out of memory converting to BF16");
        SHOAL_ASSERT(shoal_convert_from_f32(half, SHOAL_DTYPE_BF16, hp, m->n_params) == 0);
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const shoal_gpt_tensor *t = &m->table[i];
        wt[i].name = t->name;
        wt[i].dtype = dtype;
        wt[i].ndim = t->ndim;
        wt[i].shape = t->shape;
        wt[i].data = half ? (const void *)(half + t->offset) : (const void *)(hp + t->offset);
    }
    const char *meta[] = {"format", "pt"};
    SHOAL_CHECK_GOTO(shoal_path_join(p, sizeof p, stage, "model.safetensors"));
    SHOAL_CHECK_GOTO(shoal_safetensors_write(p, wt, m->n_tensors, meta, 1));
    char sha[SHOAL_SHA256_HEX_LEN];
    SHOAL_CHECK_GOTO(shoal_sha256_file(p, sha));

    cfgj = config_json(m, dtype);
    SHOAL_REQUIRE_GOTO(cfgj, SHOAL_ERR_NOMEM, "out of memory building config.json");
    SHOAL_CHECK_GOTO(shoal_path_join(p, sizeof p, stage, "config.json"));
    SHOAL_CHECK_GOTO(shoal_json_write_file(p, cfgj));

    prov = provenance ? json_deep_copy(provenance) : json_object();
    SHOAL_REQUIRE_GOTO(prov, SHOAL_ERR_NOMEM, "out of memory building shoal.json");
    char when[32];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    json_t *files = json_object();
    int bad = json_object_set_new(files, "model.safetensors", json_string(sha));
    bad |= json_object_set_new(prov, "format", json_string("shoal-model"));
    bad |= json_object_set_new(prov, "format_version", json_integer(1));
    bad |= json_object_set_new(prov, "shoal_version", json_string(shoal_build()->version));
    bad |= json_object_set_new(prov, "saved_at", json_string(when));
    bad |= json_object_set_new(prov, "dtype", json_string(shoal_dtype_name(dtype)));
    bad |= json_object_set_new(prov, "num_params", json_integer((json_int_t)m->n_params));
    bad |= json_object_set_new(prov, "sha256", files);
    SHOAL_REQUIRE_GOTO(!bad, SHOAL_ERR_NOMEM, "out of memory building shoal.json");
    SHOAL_CHECK_GOTO(shoal_path_join(p, sizeof p, stage, "shoal.json"));
    SHOAL_CHECK_GOTO(shoal_json_write_file(p, prov));

    /* everything is on disk: move into place (weights first, then the files naming them) */
    const char *names[] = {"model.safetensors", "config.json", "shoal.json"};
    for (int i = 0; i < 3; i++) {
        SHOAL_CHECK_GOTO(shoal_path_join(p, sizeof p, stage, names[i]));
        SHOAL_CHECK_GOTO(shoal_path_join(dst, sizeof dst, dir, names[i]));
        SHOAL_REQUIRE_GOTO(rename(p, dst) == 0, SHOAL_ERR_IO, "%s: rename into place failed: %s", dst,
                           strerror(errno));
    }
    SHOAL_CHECK_GOTO(shoal_fsync_parent_dir(dst));
cleanup:
    if (staged) remove_staging(stage);
    if (prov) json_decref(prov);
    if (cfgj) json_decref(cfgj);
    if (hp) (void)gpt_params_host_end((shoal_gpt *)m, hp, 0);
    free(half);
    free(wt);
    return st;
}

shoal_status shoal_gpt_save_dir(const shoal_gpt *m, const char *dir, shoal_dtype dtype) {
    return shoal_gpt_save_dir_ex(m, dir, dtype, NULL);
}
