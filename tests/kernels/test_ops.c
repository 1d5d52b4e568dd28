/* test_ops.c: every CPU op of kernels/ops.h on small shapes.
 *
 * Backward ops are checked against central finite differences of a scalar probe
 * L = sum(out * R) (R fixed random), accumulated in double, with step h = 1e-2 on O(1) inputs:
 * fp32 rounding then contributes ~1e-5 and truncation ~1e-4, while a wrong formula is off by
 * O(1); the tolerance is 2e-3 of the gradient's max magnitude. Every backward is also checked to
 * ACCUMULATE (called on a non-zero gradient). Forwards are checked against double-precision
 * loops; the loop GEMM against BLAS on odd shapes and all transposes; attention_decode against
 * the full attention forward; AdamW against a scalar double reference; clipping against
 * torch's rule.
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/ops.h"
#include "test.h"

static shoal_ctx ctx;
static uint64_t rs = 42;

static float frand(void) { /* uniform in [-1, 1) */
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (float)((double)(rs >> 11) * 0x1.0p-52 - 1.0);
}
static float *rnd(size_t n) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = frand();
    return x;
}
static float *zeros(size_t n) { return calloc(n, sizeof(float)); }

static double dotd(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* probe: run the forward, return sum(out * R) */
typedef double (*probe_fn)(void);

/* Compare analytic gradient g of x (n) with central differences of probe(). Checks up to 64
 * evenly spread elements. */
static void fd_check(const char *what, float *x, size_t n, const float *g, probe_fn probe) {
    double gmax = 0;
    for (size_t i = 0; i < n; i++) gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
    double worst = 0;
    size_t stride = n > 64 ? n / 64 : 1;
    for (size_t i = 0; i < n; i += stride) {
        float keep = x[i];
        const float h = 1e-2f;
        x[i] = keep + h;
        double lp = probe();
        x[i] = keep - h;
        double lm = probe();
        x[i] = keep;
        double num = (lp - lm) / (2.0 * (double)h);
        double err = fabs(num - g[i]) / (gmax > 1e-3 ? gmax : 1e-3);
        worst = err > worst ? err : worst;
    }
    if (!(worst < 2e-3)) fprintf(stderr, "  %s: finite-difference error %.3g\n", what, worst);
    CHECK(worst < 2e-3);
}

/* ---- layernorm ---- */
enum { N_ = 6, C_ = 20 };
static float *ln_in, *ln_w, *ln_b, *ln_out, *ln_R, ln_mean[N_], ln_rstd[N_];
static double ln_probe(void) {
    shoal_layernorm_forward_cpu(&ctx, ln_out, ln_mean, ln_rstd, ln_in, ln_w, ln_b, N_, C_, 1e-5f);
    return dotd(ln_out, ln_R, N_ * C_);
}
static void test_layernorm(void) {
    ln_in = rnd(N_ * C_), ln_w = rnd(C_), ln_b = rnd(C_), ln_out = zeros(N_ * C_), ln_R = rnd(N_ * C_);
    ln_probe();
    /* forward vs double */
    for (int n = 0; n < N_; n++) {
        double m = 0, v = 0;
        for (int c = 0; c < C_; c++) m += ln_in[n * C_ + c];
        m /= C_;
        for (int c = 0; c < C_; c++) v += (ln_in[n * C_ + c] - m) * (ln_in[n * C_ + c] - m);
        double r = 1.0 / sqrt(v / C_ + 1e-5);
        for (int c = 0; c < C_; c++)
            CHECK_NEAR(ln_out[n * C_ + c], (ln_in[n * C_ + c] - m) * r * ln_w[c] + ln_b[c], 1e-5);
    }
    float *di = zeros(N_ * C_), *dw = zeros(C_), *db = zeros(C_);
    CHECK(shoal_layernorm_backward_cpu(&ctx, di, dw, db, ln_R, ln_in, ln_w, ln_mean, ln_rstd, N_, C_) == SHOAL_OK);
    fd_check("layernorm dinp", ln_in, N_ * C_, di, ln_probe);
    fd_check("layernorm dw", ln_w, C_, dw, ln_probe);
    fd_check("layernorm db", ln_b, C_, db, ln_probe);
    /* accumulation: a second call doubles */
    float before = dw[3];
    shoal_layernorm_backward_cpu(&ctx, di, dw, db, ln_R, ln_in, ln_w, ln_mean, ln_rstd, N_, C_);
    CHECK_NEAR(dw[3], 2 * before, 1e-5);
    free(di), free(dw), free(db), free(ln_in), free(ln_w), free(ln_b), free(ln_out), free(ln_R);
}

/* ---- matmul ---- */
enum { MN = 5, MI = 7, MO = 9 };
static float *mm_in, *mm_w, *mm_b, *mm_out, *mm_R;
static shoal_wlayout mm_layout;
static double mm_probe(void) {
    shoal_matmul_forward_cpu(&ctx, mm_out, mm_in, mm_w, mm_b, MN, MI, MO, mm_layout);
    return dotd(mm_out, mm_R, MN * MO);
}
static void matmul_case(shoal_wlayout layout, int bias) {
    mm_layout = layout;
    mm_in = rnd(MN * MI), mm_w = rnd(MI * MO), mm_b = bias ? rnd(MO) : NULL;
    mm_out = rnd(MN * MO), mm_R = rnd(MN * MO); /* out poisoned: forward must overwrite */
    mm_probe();
    for (int n = 0; n < MN; n++)
        for (int o = 0; o < MO; o++) {
            double s = bias ? mm_b[o] : 0;
            for (int i = 0; i < MI; i++)
                s += (double)mm_in[n * MI + i] *
                     (layout == SHOAL_W_IN_OUT ? mm_w[i * MO + o] : mm_w[o * MI + i]);
            CHECK_NEAR(mm_out[n * MO + o], s, 1e-5);
        }
    float *di = zeros(MN * MI), *dw = zeros(MI * MO), *db = zeros(MO);
    CHECK(shoal_matmul_backward_cpu(&ctx, di, dw, bias ? db : NULL, mm_R, mm_in, mm_w, MN, MI, MO, layout) == SHOAL_OK);
    fd_check("matmul dinp", mm_in, MN * MI, di, mm_probe);
    fd_check("matmul dw", mm_w, MI * MO, dw, mm_probe);
    if (bias) fd_check("matmul dbias", mm_b, MO, db, mm_probe);
    float before = dw[5];
    shoal_matmul_backward_cpu(&ctx, NULL, dw, NULL, mm_R, mm_in, mm_w, MN, MI, MO, layout);
    CHECK_NEAR(dw[5], 2 * before, 1e-5);
    free(di), free(dw), free(db), free(mm_in), free(mm_w), free(mm_b), free(mm_out), free(mm_R);
}
static void test_matmul(void) {
    matmul_case(SHOAL_W_IN_OUT, 1);
    matmul_case(SHOAL_W_IN_OUT, 0);
    matmul_case(SHOAL_W_OUT_IN, 0);
    matmul_case(SHOAL_W_OUT_IN, 1);
}

/* the loop GEMM against a double reference on odd shapes, every transpose, beta 0/1/0.5 */
static void test_gemm_loops(void) {
    int M = 13, N = 17, K = 11;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int bi = 0; bi < 3; bi++) {
                float beta = bi == 0 ? 0.0f : bi == 1 ? 1.0f : 0.5f;
                float *A = rnd((size_t)M * K), *Bm = rnd((size_t)K * N), *Cm = rnd((size_t)M * N);
                float *C0 = malloc((size_t)M * N * sizeof(float));
                memcpy(C0, Cm, (size_t)M * N * sizeof(float));
                int lda = ta ? M : K, ldb = tb ? K : N;
                shoal_gemm_loops(2, ta, tb, M, N, K, 1.5f, A, lda, Bm, ldb, beta, Cm, N);
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double s = 0;
                        for (int k = 0; k < K; k++)
                            s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) *
                                 (tb ? Bm[j * ldb + k] : Bm[k * ldb + j]);
                        CHECK_NEAR(Cm[i * N + j], 1.5 * s + beta * C0[i * N + j], 1e-5);
                    }
                free(A), free(Bm), free(Cm), free(C0);
            }
}

/* The threaded GEMM path (row or column slabs per thread) on shapes big enough to split, 1 vs 3
 * threads, against a double reference; forward and all backward products, both layouts. */
static void matmul_threaded_case(int N, int IC, int OC) {
    shoal_ctx c1, c3;
    CHECK(shoal_ctx_init_cpu(&c1, 1) == SHOAL_OK && shoal_ctx_init_cpu(&c3, 3) == SHOAL_OK);
    for (int lay = 0; lay < 2; lay++) {
        float *in = rnd((size_t)N * IC), *w = rnd((size_t)IC * OC), *b = rnd(OC), *d = rnd((size_t)N * OC);
        float *o1 = zeros((size_t)N * OC), *o3 = zeros((size_t)N * OC);
        float *di1 = zeros((size_t)N * IC), *di3 = zeros((size_t)N * IC);
        float *dw1 = zeros((size_t)IC * OC), *dw3 = zeros((size_t)IC * OC);
        shoal_matmul_forward_cpu(&c1, o1, in, w, b, N, IC, OC, (shoal_wlayout)lay);
        shoal_matmul_forward_cpu(&c3, o3, in, w, b, N, IC, OC, (shoal_wlayout)lay);
        shoal_matmul_backward_cpu(&c1, di1, dw1, NULL, d, in, w, N, IC, OC, (shoal_wlayout)lay);
        shoal_matmul_backward_cpu(&c3, di3, dw3, NULL, d, in, w, N, IC, OC, (shoal_wlayout)lay);
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) {
                double s = b[o];
                for (int i = 0; i < IC; i++)
                    s += (double)in[n * IC + i] * (lay == 0 ? w[i * OC + o] : w[o * IC + i]);
                CHECK_NEAR(o1[n * OC + o], s, 1e-5);
                CHECK_NEAR(o3[n * OC + o], s, 1e-5);
            }
        for (int n = 0; n < N; n++)
            for (int i = 0; i < IC; i++) {
                double s = 0;
                for (int o = 0; o < OC; o++)
                    s += (double)d[n * OC + o] * (lay == 0 ? w[i * OC + o] : w[o * IC + i]);
                CHECK_NEAR(di1[n * IC + i], s, 1e-5);
                CHECK_NEAR(di3[n * IC + i], s, 1e-5);
            }
        for (int i = 0; i < IC; i++)
            for (int o = 0; o < OC; o++) {
                double s = 0;
                for (int n = 0; n < N; n++) s += (double)in[n * IC + i] * d[n * OC + o];
                size_t k = lay == 0 ? (size_t)i * OC + o : (size_t)o * IC + i;
                CHECK_NEAR(dw1[k], s, 1e-5);
                CHECK_NEAR(dw3[k], s, 1e-5);
            }
        free(in), free(w), free(b), free(d), free(o1), free(o3), free(di1), free(di3), free(dw1), free(dw3);
    }
    shoal_ctx_free(&c1);
    shoal_ctx_free(&c3);
}
static void test_matmul_threaded(void) {
    matmul_threaded_case(70, 33, 45);  /* row slabs */
    matmul_threaded_case(40, 33, 150); /* column slabs (forward, dw) */
    matmul_threaded_case(20, 130, 9);  /* column slabs of dinp, row slabs of dw (IN_OUT) */
}

/* ---- attention ---- */
enum { AB = 2, AT = 5, AC = 8, ANH = 2 };
static float *at_qkv, *at_out, *at_att, *at_R;
static double at_probe(void) {
    shoal_attention_forward_cpu(&ctx, at_out, at_att, at_qkv, AB, AT, AC, ANH);
    return dotd(at_out, at_R, AB * AT * AC);
}
static void test_attention(void) {
    at_qkv = rnd(AB * AT * 3 * AC), at_out = rnd(AB * AT * AC), at_R = rnd(AB * AT * AC);
    at_att = rnd(AB * ANH * AT * AT);
    at_probe();
    /* forward vs double, and causality (att rows sum to 1, zero past t) */
    int hs = AC / ANH;
    for (int b = 0; b < AB; b++)
        for (int h = 0; h < ANH; h++)
            for (int t = 0; t < AT; t++) {
                double sc[AT], mx = -1e30, sum = 0;
                const float *q = at_qkv + (b * AT + t) * 3 * AC + h * hs;
                for (int u = 0; u <= t; u++) {
                    const float *k = at_qkv + (b * AT + u) * 3 * AC + AC + h * hs;
                    sc[u] = 0;
                    for (int i = 0; i < hs; i++) sc[u] += (double)q[i] * k[i];
                    sc[u] /= sqrt((double)hs);
                    mx = sc[u] > mx ? sc[u] : mx;
                }
                for (int u = 0; u <= t; u++) sum += (sc[u] = exp(sc[u] - mx));
                const float *a = at_att + ((b * ANH + h) * AT + t) * AT;
                for (int u = 0; u < AT; u++) CHECK_NEAR(a[u], u <= t ? sc[u] / sum : 0.0, 1e-6);
                for (int i = 0; i < hs; i++) {
                    double o = 0;
                    for (int u = 0; u <= t; u++)
                        o += sc[u] / sum * at_qkv[(b * AT + u) * 3 * AC + 2 * AC + h * hs + i];
                    CHECK_NEAR(at_out[(b * AT + t) * AC + h * hs + i], o, 1e-5);
                }
            }
    float *dqkv = zeros(AB * AT * 3 * AC);
    CHECK(shoal_attention_backward_cpu(&ctx, dqkv, at_R, at_qkv, at_att, AB, AT, AC, ANH) == SHOAL_OK);
    fd_check("attention dqkv", at_qkv, AB * AT * 3 * AC, dqkv, at_probe);
    /* decode step by step == full forward */
    float *kc = zeros(AB * AT * AC), *vc = zeros(AB * AT * AC), *o = zeros(AB * AC);
    float *row = malloc(AB * 3 * AC * sizeof(float));
    at_probe();
    for (int t = 0; t < AT; t++) {
        for (int b = 0; b < AB; b++)
            memcpy(row + b * 3 * AC, at_qkv + (b * AT + t) * 3 * AC, 3 * AC * sizeof(float));
        CHECK(shoal_attention_decode_cpu(&ctx, o, kc, vc, row, t, AT, AB, AC, ANH) == SHOAL_OK);
        for (int b = 0; b < AB; b++)
            for (int i = 0; i < AC; i++) CHECK_NEAR(o[b * AC + i], at_out[(b * AT + t) * AC + i], 1e-5);
    }
    free(kc), free(vc), free(o), free(row), free(dqkv);
    free(at_qkv), free(at_out), free(at_att), free(at_R);
}

/* ---- gelu, residual ---- */
enum { GN = 50 };
static float *g_in, *g_out, *g_R;
static double gelu_probe(void) {
    shoal_gelu_forward_cpu(&ctx, g_out, g_in, GN);
    return dotd(g_out, g_R, GN);
}
static void test_gelu_residual(void) {
    g_in = rnd(GN), g_out = zeros(GN), g_R = rnd(GN);
    for (int i = 0; i < GN; i++) g_in[i] *= 3.0f;
    gelu_probe();
    for (int i = 0; i < GN; i++) {
        double x = g_in[i];
        CHECK_NEAR(g_out[i], 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))), 1e-6);
    }
    float *d = zeros(GN);
    shoal_gelu_backward_cpu(&ctx, d, g_R, g_in, GN);
    fd_check("gelu", g_in, GN, d, gelu_probe);
    float *a = rnd(GN), *b = rnd(GN), *o = zeros(GN), *da = zeros(GN), *db = zeros(GN);
    shoal_residual_forward_cpu(&ctx, o, a, b, GN);
    for (int i = 0; i < GN; i++) CHECK(o[i] == a[i] + b[i]);
    shoal_residual_backward_cpu(&ctx, da, db, g_R, GN);
    shoal_residual_backward_cpu(&ctx, da, NULL, g_R, GN);
    for (int i = 0; i < GN; i++) CHECK(da[i] == 2 * g_R[i] && db[i] == g_R[i]);
    free(a), free(b), free(o), free(da), free(db), free(d), free(g_in), free(g_out), free(g_R);
}

/* ---- encoder ---- */
enum { EB = 2, ET = 4, EC = 6, EV = 5 };
static float *e_wte, *e_wpe, *e_out, *e_R;
static int32_t e_tok[EB * ET] = {1, 3, 1, 0, 4, 4, 2, 1}; /* repeats: rows collide */
static double enc_probe(void) {
    shoal_encoder_forward_cpu(&ctx, e_out, e_tok, e_wte, e_wpe, EB, ET, EC, 0);
    return dotd(e_out, e_R, EB * ET * EC);
}
static void test_encoder(void) {
    e_wte = rnd(EV * EC), e_wpe = rnd(8 * EC), e_out = zeros(EB * ET * EC), e_R = rnd(EB * ET * EC);
    float *dte = zeros(EV * EC), *dpe = zeros(8 * EC);
    enc_probe();
    shoal_encoder_backward_cpu(&ctx, dte, dpe, e_R, e_tok, EB, ET, EC);
    fd_check("encoder dwte", e_wte, EV * EC, dte, enc_probe);
    fd_check("encoder dwpe", e_wpe, 8 * EC, dpe, enc_probe);
    /* pos0 offsets the position rows */
    shoal_encoder_forward_cpu(&ctx, e_out, e_tok, e_wte, e_wpe, 1, 1, EC, 3);
    CHECK(e_out[2] == e_wte[1 * EC + 2] + e_wpe[3 * EC + 2]);
    free(dte), free(dpe), free(e_wte), free(e_wpe), free(e_out), free(e_R);
}

/* ---- cross-entropy ---- */
enum { XN = 4, XV = 7 };
static float *x_logits, x_loss[XN], x_lse[XN];
static int32_t x_tgt[XN] = {2, 6, -1, 0};
static uint8_t x_mask[XN] = {1, 1, 1, 0};
static double xent_probe(void) { /* the masked mean the model computes */
    shoal_crossentropy_forward_cpu(&ctx, x_loss, x_lse, x_logits, x_tgt, XN, XV);
    return ((double)x_loss[0] + x_loss[1]) / 2.0;
}
static void test_crossentropy(void) {
    x_logits = rnd(XN * XV);
    xent_probe();
    for (int n = 0; n < XN; n++) {
        double s = 0;
        for (int i = 0; i < XV; i++) s += exp(x_logits[n * XV + i]);
        if (x_tgt[n] >= 0) CHECK_NEAR(x_loss[n], log(s) - x_logits[n * XV + x_tgt[n]], 1e-6);
        else CHECK(x_loss[n] == 0.0f);
    }
    float *d = rnd(XN * XV); /* overwritten, not accumulated */
    shoal_crossentropy_backward_cpu(&ctx, d, x_logits, x_lse, x_tgt, x_mask, 0.5f, XN, XV);
    fd_check("crossentropy", x_logits, XN * XV, d, xent_probe);
    for (int i = 2 * XV; i < XN * XV; i++) CHECK(d[i] == 0.0f); /* ignored and masked rows */
    /* in place */
    float *l2 = malloc(XN * XV * sizeof(float));
    memcpy(l2, x_logits, XN * XV * sizeof(float));
    shoal_crossentropy_backward_cpu(&ctx, l2, l2, x_lse, x_tgt, NULL, 0.5f, XN, XV);
    for (int i = 0; i < XV; i++) CHECK(l2[i] == d[i]);
    free(l2), free(d), free(x_logits);
}

/* ---- AdamW, norm, clip ---- */
static void test_adamw(void) {
    enum { n = 33 };
    float *p = rnd(n), *g = rnd(n), *m = zeros(n), *v = zeros(n);
    double pd[n], md[n] = {0}, vd[n] = {0};
    for (int i = 0; i < n; i++) pd[i] = p[i];
    const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1, gs = 0.5;
    for (int step = 1; step <= 3; step++) {
        CHECK(shoal_adamw_update_cpu(&ctx, p, g, m, v, n, (float)lr, (float)b1, (float)b2,
                                     (float)eps, (float)wd, step, (float)gs) == SHOAL_OK);
        for (int i = 0; i < n; i++) {
            double gg = g[i] * gs;
            pd[i] *= 1 - lr * wd;
            md[i] = b1 * md[i] + (1 - b1) * gg;
            vd[i] = b2 * vd[i] + (1 - b2) * gg * gg;
            pd[i] -= lr * (md[i] / (1 - pow(b1, step))) / (sqrt(vd[i] / (1 - pow(b2, step))) + eps);
            CHECK_NEAR(p[i], pd[i], 1e-6);
        }
    }
    double sq;
    shoal_norm_sq_cpu(&ctx, g, n, &sq);
    double ref = 0;
    for (int i = 0; i < n; i++) ref += (double)g[i] * g[i];
    CHECK_NEAR(sq, ref, 1e-12);
    float norm;
    CHECK(shoal_grad_clip(&ctx, g, n, 0.5f, &norm) == SHOAL_OK);
    CHECK_NEAR(norm, sqrt(ref), 1e-6);
    shoal_norm_sq_cpu(&ctx, g, n, &sq);
    CHECK_NEAR(sqrt(sq), 0.5, 1e-5);
    CHECK(shoal_grad_clip(&ctx, g, n, 10.0f, &norm) == SHOAL_OK); /* below: untouched */
    CHECK_NEAR(norm, 0.5, 1e-5);
    g[3] = NAN;
    CHECK(shoal_grad_clip(&ctx, g, n, 1.0f, &norm) == SHOAL_ERR_INVALID_ARG);
    free(p), free(g), free(m), free(v);
}

static void test_ctx(void) {
    shoal_ctx c2;
    CHECK(shoal_ctx_init_cpu(&c2, 3) == SHOAL_OK);
    CHECK_EQ_INT(c2.n_threads, 3);
    CHECK(c2.k == shoal_kernels_cpu());
    CHECK_STR(c2.k->name, "cpu");
    setenv("OMP_NUM_THREADS", "2", 1);
    CHECK(shoal_ctx_init_cpu(&c2, 0) == SHOAL_OK);
    CHECK_EQ_INT(c2.n_threads, 2);
    setenv("OMP_NUM_THREADS", "banana", 1);
    CHECK(shoal_ctx_init_cpu(&c2, 0) == SHOAL_OK);
    CHECK(c2.n_threads >= 1);
    unsetenv("OMP_NUM_THREADS");
    CHECK(shoal_ctx_init_cpu(NULL, 1) == SHOAL_ERR_INVALID_ARG);
    /* every table entry is set */
    const void *const *slots = (const void *const *)((const char *)shoal_kernels_cpu() + sizeof(const char *));
    size_t nslots = (offsetof(shoal_kernels, host_visible) - sizeof(const char *)) / sizeof(void *);
    for (size_t i = 0; i < nslots; i++) CHECK(slots[i] != NULL);
    CHECK_EQ_INT(shoal_kernels_cpu()->host_visible, 1);
    shoal_ctx_free(&c2);
    shoal_ctx_free(NULL);
    /* zero: several 4 MB chunks and a ragged tail, nothing past the end touched */
    size_t nb = ((size_t)5 << 20) + 3;
    unsigned char *buf = malloc(nb + 16);
    memset(buf, 0xab, nb + 16);
    CHECK(shoal_zero_cpu(&ctx, buf, nb) == SHOAL_OK);
    size_t bad = 0;
    for (size_t i = 0; i < nb; i++) bad += buf[i] != 0;
    CHECK_EQ_INT(bad, 0);
    for (size_t i = nb; i < nb + 16; i++) CHECK(buf[i] == 0xab);
    CHECK(shoal_zero_cpu(&ctx, NULL, 10) == SHOAL_OK);
    free(buf);
}

/* Backend memory on the CPU table: zeroed allocations, copies both ways and within. */
static void test_memory(void) {
    float *d = NULL, *e = NULL;
    CHECK_EQ_INT(shoal_ctx_alloc(&ctx, (void **)&d, 1000 * sizeof(float), "test"), SHOAL_OK);
    CHECK_EQ_INT(shoal_ctx_alloc(&ctx, (void **)&e, 1000 * sizeof(float), "test"), SHOAL_OK);
    if (!d || !e) return;
    size_t nz = 0;
    for (int i = 0; i < 1000; i++) nz += d[i] != 0.0f;
    CHECK_EQ_INT(nz, 0);
    float h[1000], back[1000];
    for (int i = 0; i < 1000; i++) h[i] = (float)i * 0.5f - 7.0f;
    CHECK_EQ_INT(shoal_ctx_h2d(&ctx, d, h, sizeof h), SHOAL_OK);
    CHECK_EQ_INT(shoal_ctx_d2d(&ctx, e + 10, d, 990 * sizeof(float)), SHOAL_OK);
    CHECK_EQ_INT(shoal_ctx_d2h(&ctx, back, e, sizeof back), SHOAL_OK);
    CHECK(back[0] == 0.0f && back[9] == 0.0f);
    CHECK(memcmp(back + 10, h, 990 * sizeof(float)) == 0);
    CHECK_EQ_INT(shoal_ctx_h2d(&ctx, d, h, 0), SHOAL_OK); /* 0 bytes: no-op */
    void *z = (void *)1;
    CHECK_EQ_INT(shoal_ctx_alloc(&ctx, &z, 0, "nothing"), SHOAL_ERR_INVALID_ARG);
    CHECK(z == NULL);
    CHECK_EQ_INT(shoal_ctx_alloc(NULL, &z, 8, "x"), SHOAL_ERR_INVALID_ARG);
    shoal_ctx_mem_free(&ctx, d);
    shoal_ctx_mem_free(&ctx, e);
    shoal_ctx_mem_free(&ctx, NULL);
}

int main(void) {
    if (shoal_ctx_init_cpu(&ctx, 2) != SHOAL_OK) return 2;
    printf("gemm path: %s\n", shoal_kernels_cpu_gemm_name());
    TEST_RUN(test_layernorm);
    TEST_RUN(test_matmul);
    TEST_RUN(test_gemm_loops);
    TEST_RUN(test_matmul_threaded);
    TEST_RUN(test_attention);
    TEST_RUN(test_gelu_residual);
    TEST_RUN(test_encoder);
    TEST_RUN(test_crossentropy);
    TEST_RUN(test_adamw);
    TEST_RUN(test_ctx);
    TEST_RUN(test_memory);
    shoal_ctx_free(&ctx);
    return TEST_EXIT();
}
