/* test_gpt.c: the GPT model beyond the PyTorch fixture: parameter table, initialisation,
 * KV-cache decoding and sampling, HF directory round trips (F32, BF16, F16, HF naming
 * variants), and every bad input of the model: malformed config.json (tests/data/model/
 * config_bad), missing/extra tensors, wrong shapes, dtype mismatches, token ids >= vocab, and
 * failed saves that must leave nothing half-written.
 */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/json.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "test.h"
#include "worker/model/gpt.h"

static char src_dir[2048], tiny_dir[4096];

static shoal_gpt *load_tiny(void) {
    shoal_gpt *m = NULL;
    if (shoal_gpt_load_dir(tiny_dir, &m) != SHOAL_OK) {
        fprintf(stderr, "cannot load %s\n", tiny_dir);
        exit(2);
    }
    return m;
}

static void test_table_and_init(void) {
    shoal_gpt_config gpt2 = {12, 12, 768, 50257, 1024, 1e-5f};
    CHECK_EQ_INT(shoal_gpt_config_num_params(&gpt2), 124439808); /* HF gpt2 */
    shoal_gpt_config c = {2, 4, 64, 301, 40, 1e-5f};
    shoal_gpt *m = NULL;
    CHECK(shoal_gpt_create(&c, &m) == SHOAL_OK);
    CHECK_EQ_INT(shoal_gpt_num_tensors(m), 4 + 12 * 2);
    size_t off = 0;
    for (int i = 0; i < shoal_gpt_num_tensors(m); i++) {
        const shoal_gpt_tensor *t = shoal_gpt_tensor_at(m, i);
        CHECK_EQ_INT(t->offset, off);
        CHECK(strncmp(t->name, "transformer.", 12) == 0);
        CHECK_EQ_INT(t->decay, t->ndim == 2);
        off += t->numel;
    }
    CHECK_EQ_INT(off, shoal_gpt_num_params(m));
    const shoal_gpt_tensor *t = shoal_gpt_tensor_find(m, "transformer.h.1.attn.c_attn.weight");
    CHECK(t && t->shape[0] == 64 && t->shape[1] == 192);
    t = shoal_gpt_tensor_find(m, "transformer.h.0.mlp.c_proj.weight");
    CHECK(t && t->shape[0] == 256 && t->shape[1] == 64);
    CHECK(shoal_gpt_tensor_find(m, "lm_head.weight") == NULL);
    CHECK(shoal_gpt_tensor_at(m, 1000) == NULL);
    CHECK(shoal_gpt_set_threads(m, 5000) == SHOAL_ERR_INVALID_ARG); /* keeps the old context */
    CHECK(shoal_gpt_ctx(m)->k != NULL && shoal_gpt_ctx(m)->n_threads >= 1);

    CHECK(shoal_gpt_init_random(m, 7) == SHOAL_OK);
    float *copy = malloc(shoal_gpt_num_params(m) * sizeof(float));
    memcpy(copy, shoal_gpt_params(m), shoal_gpt_num_params(m) * sizeof(float));
    CHECK(shoal_gpt_init_random(m, 7) == SHOAL_OK);
    CHECK(memcmp(copy, shoal_gpt_params(m), shoal_gpt_num_params(m) * sizeof(float)) == 0);
    CHECK(shoal_gpt_init_random(m, 8) == SHOAL_OK);
    CHECK(memcmp(copy, shoal_gpt_params(m), shoal_gpt_num_params(m) * sizeof(float)) != 0);
    /* statistics: wte ~ N(0, 0.02), c_proj ~ N(0, 0.02/sqrt(4)), ln weight 1, biases 0 */
    const char *names[] = {"transformer.wte.weight", "transformer.h.0.attn.c_proj.weight"};
    double want[] = {0.02, 0.01};
    for (int k = 0; k < 2; k++) {
        t = shoal_gpt_tensor_find(m, names[k]);
        double s = 0, s2 = 0;
        for (size_t i = 0; i < t->numel; i++) {
            double x = shoal_gpt_params(m)[t->offset + i];
            s += x, s2 += x * x;
        }
        double mean = s / t->numel, sd = sqrt(s2 / t->numel - mean * mean);
        CHECK(fabs(mean) < 0.002);
        CHECK(fabs(sd - want[k]) < 0.1 * want[k]);
    }
    CHECK(shoal_gpt_params(m)[shoal_gpt_tensor_find(m, "transformer.ln_f.weight")->offset] == 1.0f);
    CHECK(shoal_gpt_params(m)[shoal_gpt_tensor_find(m, "transformer.h.1.mlp.c_fc.bias")->offset + 5] == 0.0f);
    free(copy);
    shoal_gpt_free(m);
    shoal_gpt_free(NULL);
}

/* decode_step logits == the full forward's logits; greedy generate == argmax of full forwards */
static void test_decode(void) {
    shoal_gpt *m = load_tiny();
    const int V = shoal_gpt_cfg(m)->vocab_size;
    int32_t seq[20] = {5, 17, 200, 3, 3, 99, 250, 1};
    const int T = 12;
    for (int i = 8; i < T; i++) seq[i] = (seq[i - 1] * 31 + 7) % V;
    CHECK(shoal_gpt_forward(m, seq, NULL, NULL, 1, T, NULL) == SHOAL_OK);
    float *full = malloc((size_t)T * V * sizeof(float));
    memcpy(full, shoal_gpt_logits(m), (size_t)T * V * sizeof(float));
    CHECK(shoal_gpt_decode_reset(m, T) == SHOAL_OK);
    double worst = 0;
    for (int t = 0; t < T; t++) {
        const float *lg = NULL;
        CHECK(shoal_gpt_decode_step(m, seq[t], t, &lg) == SHOAL_OK);
        for (int v = 0; v < V; v++) {
            double d = fabs(lg[v] - full[(size_t)t * V + v]);
            worst = d > worst ? d : worst;
        }
    }
    printf("decode vs full forward: max |diff| %.3g\n", worst);
    /* batched prefill then steps == step-by-step from the start */
    const float *lp = NULL;
    CHECK(shoal_gpt_decode_prefill(m, seq, T - 2, &lp) == SHOAL_OK);
    for (int v = 0; v < V; v++) CHECK(fabs(lp[v] - full[(size_t)(T - 3) * V + v]) < 1e-4);
    for (int t = T - 2; t < T; t++) CHECK(shoal_gpt_decode_step(m, seq[t], t, &lp) == SHOAL_OK);
    for (int v = 0; v < V; v++) CHECK(fabs(lp[v] - full[(size_t)(T - 1) * V + v]) < 1e-4);
    CHECK(shoal_gpt_decode_prefill(m, seq, T + 1, &lp) == SHOAL_ERR_INVALID_ARG);
    CHECK(worst < 1e-4);
    CHECK(shoal_gpt_decode_step(m, 0, T, NULL) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_gpt_decode_step(m, V, 0, NULL) == SHOAL_ERR_INVALID_ARG);

    /* greedy generate vs argmax of repeated full forwards */
    int32_t out[16];
    int n_out = 0;
    CHECK(shoal_gpt_generate(m, seq, 4, 10, NULL, -1, out, &n_out) == SHOAL_OK);
    CHECK_EQ_INT(n_out, 10);
    int32_t ctxt[20];
    memcpy(ctxt, seq, 4 * sizeof(int32_t));
    for (int i = 0; i < 10; i++) {
        int len = 4 + i;
        CHECK(shoal_gpt_forward(m, ctxt, NULL, NULL, 1, len, NULL) == SHOAL_OK);
        const float *lg = shoal_gpt_logits(m) + (size_t)(len - 1) * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (lg[v] > lg[best]) best = v;
        CHECK_EQ_INT(out[i], best);
        ctxt[len] = best;
    }
    /* eot stops (not written) */
    int n2 = 0;
    CHECK(shoal_gpt_generate(m, seq, 4, 10, NULL, out[3], out + 0, &n2) == SHOAL_OK);
    CHECK(n2 <= 3);
    /* context limit: n_positions = 40 */
    int32_t longp[40] = {0};
    int32_t o2[30];
    CHECK(shoal_gpt_generate(m, longp, 35, 30, NULL, -1, o2, &n2) == SHOAL_OK);
    CHECK_EQ_INT(n2, 6); /* positions 35..39 fed, plus the token predicted at the last one */
    /* seeded sampling: reproducible; top_k=1 and tiny top_p are greedy */
    shoal_sampling s = {1.0f, 0, 1.0f, 1234};
    int32_t a[12], b[12], g[12];
    int na, nb, ng;
    CHECK(shoal_gpt_generate(m, seq, 4, 12, &s, -1, a, &na) == SHOAL_OK);
    CHECK(shoal_gpt_generate(m, seq, 4, 12, &s, -1, b, &nb) == SHOAL_OK);
    CHECK(na == 12 && nb == 12 && memcmp(a, b, sizeof a) == 0);
    s.seed = 999;
    CHECK(shoal_gpt_generate(m, seq, 4, 12, &s, -1, b, &nb) == SHOAL_OK);
    CHECK(memcmp(a, b, sizeof a) != 0);
    CHECK(shoal_gpt_generate(m, seq, 4, 12, NULL, -1, g, &ng) == SHOAL_OK);
    shoal_sampling k1 = {0.8f, 1, 1.0f, 5}, p0 = {0.8f, 0, 1e-6f, 5};
    CHECK(shoal_gpt_generate(m, seq, 4, 12, &k1, -1, a, &na) == SHOAL_OK);
    CHECK(memcmp(a, g, sizeof a) == 0);
    CHECK(shoal_gpt_generate(m, seq, 4, 12, &p0, -1, a, &na) == SHOAL_OK);
    CHECK(memcmp(a, g, sizeof a) == 0);
    /* top-k = 3: every sample is among the 3 most likely tokens */
    float lg[8] = {1, 5, 2, 4, 0, 3, -1, 0.5f}, w[8];
    shoal_sampling k3 = {1.0f, 3, 1.0f, 0};
    uint64_t rng = 77;
    int hits[8] = {0};
    for (int i = 0; i < 2000; i++) {
        memcpy(w, lg, sizeof lg);
        hits[shoal_gpt_sample(w, 8, &k3, &rng)]++;
    }
    CHECK(hits[1] > 0 && hits[3] > 0 && hits[5] > 0);
    CHECK(hits[0] + hits[2] + hits[4] + hits[6] + hits[7] == 0);
    /* top-p = 0.9 over softmax(lg): tokens 1 (0.628), 3 (0.231), 5 (0.085) are needed to pass
     * 0.9 (cumulative 0.944); the rest, token 2 (0.031) included, never appear */
    shoal_sampling p9 = {1.0f, 0, 0.9f, 0};
    memset(hits, 0, sizeof hits);
    for (int i = 0; i < 2000; i++) {
        memcpy(w, lg, sizeof lg);
        hits[shoal_gpt_sample(w, 8, &p9, &rng)]++;
    }
    CHECK(hits[1] > 0 && hits[3] > 0 && hits[5] > 0);
    CHECK(hits[0] + hits[2] + hits[4] + hits[6] + hits[7] == 0);
    /* bad prompts */
    int32_t bad[2] = {1, V};
    CHECK(shoal_gpt_generate(m, bad, 2, 4, NULL, -1, out, &n_out) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_gpt_generate(m, bad, 0, 4, NULL, -1, out, &n_out) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_gpt_generate(m, longp, 41, 4, NULL, -1, out, &n_out) == SHOAL_ERR_INVALID_ARG);
    free(full);
    shoal_gpt_free(m);
}

static void test_forward_bad_input(void) {
    shoal_gpt *m = load_tiny();
    int32_t tok[4] = {1, 2, 3, 4}, tgt[4] = {2, 3, 4, 5};
    uint8_t none[4] = {0, 0, 0, 0};
    float loss;
    tok[2] = 301;
    CHECK(shoal_gpt_forward(m, tok, tgt, NULL, 1, 4, &loss) == SHOAL_ERR_INVALID_ARG);
    tok[2] = -1;
    CHECK(shoal_gpt_forward(m, tok, tgt, NULL, 1, 4, &loss) == SHOAL_ERR_INVALID_ARG);
    tok[2] = 3;
    tgt[1] = 1000;
    CHECK(shoal_gpt_forward(m, tok, tgt, NULL, 1, 4, &loss) == SHOAL_ERR_INVALID_ARG);
    tgt[1] = 3;
    CHECK(shoal_gpt_forward(m, tok, tgt, none, 1, 4, &loss) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_gpt_forward(m, tok, tgt, NULL, 0, 4, &loss) == SHOAL_ERR_INVALID_ARG);
    int32_t big[41] = {0};
    CHECK(shoal_gpt_forward(m, big, NULL, NULL, 1, 41, &loss) == SHOAL_ERR_INVALID_ARG);
    CHECK(shoal_gpt_backward(m) == SHOAL_ERR_INVALID_ARG); /* no forward with targets */
    /* ignored targets (< 0) drop out of the mean */
    CHECK(shoal_gpt_forward(m, tok, tgt, NULL, 1, 4, &loss) == SHOAL_OK);
    const float *tl = shoal_gpt_token_losses(m);
    double l01 = (tl[0] + tl[1]) / 2.0;
    tgt[2] = -1, tgt[3] = -100;
    CHECK(shoal_gpt_forward(m, tok, tgt, NULL, 1, 4, &loss) == SHOAL_OK);
    CHECK_NEAR(loss, l01, 1e-6);
    /* growing (B,T) re-sizes the activations */
    int32_t tok2[3 * 40];
    for (int i = 0; i < 120; i++) tok2[i] = i % 301;
    CHECK(shoal_gpt_forward(m, tok2, tok2, NULL, 3, 40, &loss) == SHOAL_OK);
    CHECK(shoal_gpt_backward(m) == SHOAL_OK);
    shoal_gpt_free(m);
}

static void test_config_bad(void) {
    char dir[4096], path[8192];
    snprintf(dir, sizeof dir, "%s/tests/data/model/config_bad", src_dir);
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d) return;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        shoal_gpt_config c;
        shoal_status st = shoal_gpt_config_load(path, &c);
        if (strncmp(e->d_name, "ok_", 3) == 0) {
            CHECK(st == SHOAL_OK);
        } else {
            if (st == SHOAL_OK) fprintf(stderr, "  accepted bad config %s\n", e->d_name);
            CHECK(st != SHOAL_OK);
            n++;
        }
    }
    closedir(d);
    CHECK(n >= 15);
    shoal_gpt_config c;
    snprintf(path, sizeof path, "%s/nonexistent.json", dir);
    CHECK(shoal_gpt_config_load(path, &c) == SHOAL_ERR_NOT_FOUND);
    shoal_gpt_config bad = {2, 4, 64, 301, 40, 0.0f};
    shoal_gpt *m = (shoal_gpt *)1;
    CHECK(shoal_gpt_create(&bad, &m) == SHOAL_ERR_INVALID_ARG && m == NULL);
}

/* write tensors of model m under other names/dtypes to path; `drop` skips one table entry,
 * `extra` adds one more tensor, `dtype` for all, `prefix` replaces "transformer." */
static void write_variant(shoal_gpt *m, const char *path, int drop, const char *extra,
                          shoal_dtype dtype, const char *prefix, int bad_shape) {
    int n = shoal_gpt_num_tensors(m);
    shoal_st_write_tensor *wt = calloc((size_t)n + 1, sizeof *wt);
    char (*names)[96] = calloc((size_t)n + 1, 96);
    int64_t (*shapes)[2] = calloc((size_t)n + 1, sizeof *shapes);
    void *conv = malloc(shoal_gpt_num_params(m) * 4);
    size_t esz = shoal_dtype_size(dtype);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const shoal_gpt_tensor *t = shoal_gpt_tensor_at(m, i);
        if (i == drop) continue;
        snprintf(names[k], 96, "%s%s", prefix, t->name + 12);
        memcpy(shapes[k], t->shape, sizeof t->shape);
        if (bad_shape && i == 4) { /* c_attn weight as (3C, C): nn.Linear layout, wrong for HF */
            shapes[k][0] = t->shape[1], shapes[k][1] = t->shape[0];
        }
        char *dst = (char *)conv + t->offset * esz;
        if (dtype == SHOAL_DTYPE_I32) {
            memset(dst, 0, t->numel * esz);
        } else {
            shoal_convert_from_f32(dst, dtype, shoal_gpt_params(m) + t->offset, t->numel);
        }
        wt[k] = (shoal_st_write_tensor){names[k], dtype, t->ndim, shapes[k], dst};
        k++;
    }
    static float extra_data[4] = {1, 2, 3, 4};
    static const int64_t extra_shape[1] = {4};
    if (extra) wt[k++] = (shoal_st_write_tensor){extra, SHOAL_DTYPE_F32, 1, extra_shape, extra_data};
    const char *meta[] = {"format", "pt"};
    CHECK(shoal_safetensors_write(path, wt, k, meta, 1) == SHOAL_OK);
    free(conv), free(shapes), free(names), free(wt);
}

static void test_load_variants_and_bad_tensors(void) {
    shoal_gpt *m = load_tiny();
    size_t np = shoal_gpt_num_params(m);
    float *orig = malloc(np * sizeof(float));
    memcpy(orig, shoal_gpt_params(m), np * sizeof(float));
    char path[8192];
    snprintf(path, sizeof path, "%s/variant.safetensors", test_tmpdir());
    shoal_gpt *m2 = load_tiny();
    memset(shoal_gpt_params(m2), 0, np * sizeof(float));

    /* original gpt2 naming (no prefix), F16 */
    write_variant(m, path, -1, NULL, SHOAL_DTYPE_F16, "", 0);
    CHECK(shoal_gpt_load_safetensors(m2, path) == SHOAL_OK);
    double worst = 0;
    for (size_t i = 0; i < np; i++) {
        double d = fabs(shoal_gpt_params(m2)[i] - orig[i]) / (fabs(orig[i]) + 1e-3);
        worst = d > worst ? d : worst;
    }
    CHECK(worst < 1e-3);
    /* causal-mask buffers of older transformers are ignored */
    write_variant(m, path, -1, "h.0.attn.bias", SHOAL_DTYPE_BF16, "", 0);
    CHECK(shoal_gpt_load_safetensors(m2, path) == SHOAL_OK);

    memcpy(shoal_gpt_params(m2), orig, np * sizeof(float));
    /* every bad file leaves the parameters untouched */
    write_variant(m, path, 5, NULL, SHOAL_DTYPE_F32, "transformer.", 0);
    CHECK(shoal_gpt_load_safetensors(m2, path) == SHOAL_ERR_FORMAT); /* missing */
    write_variant(m, path, -1, "transformer.h.7.ln_1.weight", SHOAL_DTYPE_F32, "transformer.", 0);
    CHECK(shoal_gpt_load_safetensors(m2, path) == SHOAL_ERR_FORMAT); /* extra (other model) */
    write_variant(m, path, -1, "lm_head.weight", SHOAL_DTYPE_F32, "transformer.", 0);
    CHECK(shoal_gpt_load_safetensors(m2, path) == SHOAL_ERR_FORMAT); /* lm_head wrong shape */
    write_variant(m, path, -1, NULL, SHOAL_DTYPE_F32, "transformer.", 1);
    CHECK(shoal_gpt_load_safetensors(m2, path) == SHOAL_ERR_FORMAT); /* wrong shape */
    write_variant(m, path, -1, NULL, SHOAL_DTYPE_I32, "transformer.", 0);
    CHECK(shoal_gpt_load_safetensors(m2, path) == SHOAL_ERR_FORMAT); /* dtype */
    write_variant(m, path, -1, NULL, SHOAL_DTYPE_F32, "model.", 0);
    CHECK(shoal_gpt_load_safetensors(m2, path) == SHOAL_ERR_FORMAT); /* foreign names */
    CHECK(memcmp(shoal_gpt_params(m2), orig, np * sizeof(float)) == 0);
    snprintf(path, sizeof path, "%s/absent.safetensors", test_tmpdir());
    CHECK(shoal_gpt_load_safetensors(m2, path) == SHOAL_ERR_NOT_FOUND);

    /* a directory without weights, and a checkpoint from another (bigger) model */
    char dir[4096], p2[8192];
    snprintf(dir, sizeof dir, "%s/noweights", test_tmpdir());
    CHECK(shoal_mkdir_p(dir) == SHOAL_OK);
    snprintf(p2, sizeof p2, "%s/config.json", dir);
    char *cfg;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", tiny_dir);
    CHECK(shoal_file_read(path, 1 << 20, &cfg, &len) == SHOAL_OK);
    CHECK(shoal_file_write_atomic(p2, cfg, len) == SHOAL_OK);
    shoal_gpt *m3 = NULL;
    CHECK(shoal_gpt_load_dir(dir, &m3) == SHOAL_ERR_NOT_FOUND && m3 == NULL);
    shoal_gpt_config other = {3, 4, 64, 301, 40, 1e-5f};
    shoal_gpt *big = NULL;
    CHECK(shoal_gpt_create(&other, &big) == SHOAL_OK);
    snprintf(p2, sizeof p2, "%s/model.safetensors", dir);
    write_variant(big, p2, -1, NULL, SHOAL_DTYPE_F32, "transformer.", 0);
    CHECK(shoal_gpt_load_dir(dir, &m3) == SHOAL_ERR_FORMAT && m3 == NULL);
    free(cfg);
    shoal_gpt_free(big);
    free(orig);
    shoal_gpt_free(m2);
    shoal_gpt_free(m);
}

static void test_save_roundtrip(void) {
    shoal_gpt *m = load_tiny();
    size_t np = shoal_gpt_num_params(m);
    char dir[4096], path[8192];
    snprintf(dir, sizeof dir, "%s/saved_f32", test_tmpdir());
    json_t *prov = json_pack("{s:s, s:i}", "job", "job-42", "steps", 5);
    CHECK(shoal_gpt_save_dir_ex(m, dir, SHOAL_DTYPE_F32, prov) == SHOAL_OK);
    json_decref(prov);
    shoal_gpt *r = NULL;
    CHECK(shoal_gpt_load_dir(dir, &r) == SHOAL_OK);
    CHECK(r && memcmp(shoal_gpt_params(r), shoal_gpt_params(m), np * sizeof(float)) == 0);
    shoal_gpt_free(r);
    /* exact HF names, shapes, dtypes, metadata; no lm_head */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    shoal_safetensors *sf = NULL;
    CHECK(shoal_safetensors_open(path, &sf) == SHOAL_OK);
    CHECK_EQ_INT(shoal_safetensors_count(sf), shoal_gpt_num_tensors(m));
    CHECK_STR(shoal_safetensors_meta(sf, "format"), "pt");
    CHECK(shoal_safetensors_find(sf, "lm_head.weight") == NULL);
    const shoal_st_tensor *t = shoal_safetensors_find(sf, "transformer.h.1.mlp.c_fc.weight");
    CHECK(t && t->dtype == SHOAL_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 64 && t->shape[1] == 256);
    t = shoal_safetensors_find(sf, "transformer.h.0.attn.c_attn.bias");
    CHECK(t && t->ndim == 1 && t->shape[0] == 192);
    shoal_safetensors_close(sf);
    char sha[SHOAL_SHA256_HEX_LEN];
    CHECK(shoal_sha256_file(path, sha) == SHOAL_OK);
    /* config.json and shoal.json */
    json_t *cj = NULL, *sj = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(shoal_json_load_file(path, &cj) == SHOAL_OK);
    CHECK_STR(json_string_value(json_object_get(cj, "model_type")), "gpt2");
    CHECK_STR(json_string_value(json_array_get(json_object_get(cj, "architectures"), 0)), "GPT2LMHeadModel");
    CHECK_EQ_INT(json_integer_value(json_object_get(cj, "n_embd")), 64);
    CHECK_EQ_INT(json_integer_value(json_object_get(cj, "eos_token_id")), 300); /* kept */
    snprintf(path, sizeof path, "%s/shoal.json", dir);
    CHECK(shoal_json_load_file(path, &sj) == SHOAL_OK);
    CHECK_STR(json_string_value(json_object_get(sj, "job")), "job-42");
    CHECK_STR(json_string_value(json_object_get(json_object_get(sj, "sha256"), "model.safetensors")), sha);
    CHECK_EQ_INT(json_integer_value(json_object_get(sj, "num_params")), (long long)np);
    json_decref(cj);
    json_decref(sj);
    /* the staging directory is gone */
    DIR *d = opendir(dir);
    struct dirent *e;
    int files = 0;
    while (d && (e = readdir(d))) {
        CHECK(strncmp(e->d_name, ".shoal-save", 11) != 0);
        files += e->d_name[0] != '.';
    }
    if (d) closedir(d);
    CHECK_EQ_INT(files, 3);

    /* BF16: loads back within bf16 rounding, and a fresh (random-init) model saves too */
    snprintf(dir, sizeof dir, "%s/saved_bf16", test_tmpdir());
    CHECK(shoal_gpt_save_dir(m, dir, SHOAL_DTYPE_BF16) == SHOAL_OK);
    CHECK(shoal_gpt_load_dir(dir, &r) == SHOAL_OK);
    double worst = 0;
    for (size_t i = 0; r && i < np; i++) {
        double a = shoal_gpt_params(m)[i], b = shoal_gpt_params(r)[i];
        double rel = fabs(a - b) / (fabs(a) > 1e-30 ? fabs(a) : 1.0);
        worst = rel > worst ? rel : worst;
    }
    CHECK(worst <= 1.0 / 256);
    shoal_gpt_free(r);

    /* failures leave nothing half-written */
    snprintf(dir, sizeof dir, "%s/never", test_tmpdir());
    CHECK(shoal_gpt_save_dir(m, dir, SHOAL_DTYPE_F16) == SHOAL_ERR_INVALID_ARG);
    CHECK(!shoal_path_exists(dir));
    snprintf(dir, sizeof dir, "%s/blocked", test_tmpdir());
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(shoal_mkdir_p(path) == SHOAL_OK); /* a directory where the weights would go */
    CHECK(shoal_gpt_save_dir(m, dir, SHOAL_DTYPE_F32) != SHOAL_OK);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(!shoal_path_exists(path));
    d = opendir(dir);
    files = 0;
    while (d && (e = readdir(d))) files += e->d_name[0] != '.' || strncmp(e->d_name, ".shoal", 6) == 0;
    if (d) closedir(d);
    CHECK_EQ_INT(files, 1); /* only the blocking directory */
    snprintf(path, sizeof path, "%s/a_file", test_tmpdir());
    CHECK(shoal_file_write_atomic(path, "x", 1) == SHOAL_OK);
    CHECK(shoal_gpt_save_dir(m, path, SHOAL_DTYPE_F32) != SHOAL_OK);
    shoal_gpt_free(m);
}

int main(void) {
    const char *src = getenv("SHOAL_SOURCE_DIR");
    snprintf(src_dir, sizeof src_dir, "%s", src ? src : ".");
    snprintf(tiny_dir, sizeof tiny_dir, "%s/tests/data/model/gpt2_tiny", src_dir);
    TEST_RUN(test_table_and_init);
    TEST_RUN(test_decode);
    TEST_RUN(test_forward_bad_input);
    TEST_RUN(test_config_bad);
    TEST_RUN(test_load_variants_and_bad_tensors);
    TEST_RUN(test_save_roundtrip);
    return TEST_EXIT();
}
