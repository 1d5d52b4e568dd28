/* test_ops_cuda.c: every CUDA op against the CPU table (label gpu; exit 77 without a device).
 *
 * Method (STYLE.md, device METHOD.md): fresh random inputs every run (the seed is printed, and
 * SHOAL_TEST_SEED repeats a run); outputs that an op overwrites are poisoned with NaN bits
 * first, so an element the kernel forgets fails the finiteness check; gradients that ops
 * accumulate into start from the same random values on both sides, which tests the += too.
 * Errors are ||gpu - cpu|| / ||cpu|| in double: fp32 <= 1e-5, bf16 <= 2e-2 (the CPU reference
 * then runs on the bf16-rounded inputs). Attention runs at T = 1, 17, 1000 with head dims 64
 * and 128; determinism is checked by running an op twice and comparing bits. memcheck.sh runs
 * the attention cases under compute-sanitizer.
 */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels/cuda/cuda_plan.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/ops.h"
#include "test.h"

#define TOL_F32 1e-5
#define TOL_BF16 2e-2

static shoal_ctx cpu, gpu;
static uint64_t rng_state;

static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static float frand(float lo, float hi) {
    return lo + (hi - lo) * (float)(rnd() >> 8) / 16777216.0f;
}

static float *hrand(size_t n, float lo, float hi) {
    float *h = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++)
        h[i] = frand(lo, hi);
    return h;
}

static float *hcopy(const float *a, size_t n) {
    float *h = malloc(n * sizeof(float) + 1);
    memcpy(h, a, n * sizeof(float));
    return h;
}

/* Round every element to bf16 and back (the values the bf16 kernels actually see). */
static void bf16_round(float *h, size_t n) {
    for (size_t i = 0; i < n; i++)
        h[i] = shoal_plan_bf16_to_f32(shoal_plan_f32_to_bf16(h[i]));
}

static void *dmalloc(size_t bytes) {
    void *d = NULL;
    if (cudaMalloc(&d, bytes ? bytes : 1) != cudaSuccess) {
        fprintf(stderr, "cudaMalloc(%zu) failed\n", bytes);
        exit(1);
    }
    return d;
}

static float *dup_f(const float *h, size_t n) {
    float *d = dmalloc(n * sizeof(float));
    cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice);
    return d;
}

static void *dup_bytes(const void *h, size_t bytes) {
    void *d = dmalloc(bytes);
    cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
    return d;
}

static shoal_bf16 *dup_bf16(const float *h, size_t n) {
    shoal_bf16 *t = malloc(n * sizeof(shoal_bf16) + 1);
    for (size_t i = 0; i < n; i++)
        t[i] = shoal_plan_f32_to_bf16(h[i]);
    shoal_bf16 *d = dup_bytes(t, n * sizeof(shoal_bf16));
    free(t);
    return d;
}

static float *poisoned(size_t n) {
    float *d = dmalloc(n * sizeof(float));
    cudaMemset(d, 0xff, n * sizeof(float)); /* 0xffffffff is a NaN */
    return d;
}

static float *to_host(const float *d, size_t n) {
    float *h = malloc(n * sizeof(float) + 1);
    CHECK_EQ_INT(shoal_cuda_sync(&gpu), SHOAL_OK);
    CHECK_EQ_INT(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
}

static float *bf16_to_host(const shoal_bf16 *d, size_t n) {
    shoal_bf16 *t = malloc(n * sizeof(shoal_bf16) + 1);
    float *h = malloc(n * sizeof(float) + 1);
    CHECK_EQ_INT(shoal_cuda_sync(&gpu), SHOAL_OK);
    CHECK_EQ_INT(cudaMemcpy(t, d, n * sizeof(shoal_bf16), cudaMemcpyDeviceToHost), cudaSuccess);
    for (size_t i = 0; i < n; i++)
        h[i] = shoal_plan_bf16_to_f32(t[i]);
    free(t);
    return h;
}

/* ||a - ref|| / ||ref||; +inf when a has a non-finite element (unwritten poison). */
static double relerr(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

#define EXPECT_REL(what, a, ref, n, tol)                                                           \
    do {                                                                                           \
        double e_ = relerr((a), (ref), (n));                                                       \
        if (!(e_ <= (tol))) fprintf(stderr, "  %s: rel err %.3g > %.1g\n", (what), e_, (tol));     \
        CHECK(e_ <= (tol));                                                                        \
    } while (0)

/* Compare a device fp32 tensor with a host reference, then free the host copy. */
static void expect_dev(const char *what, const float *d, const float *ref, size_t n, double tol) {
    float *h = to_host(d, n);
    EXPECT_REL(what, h, ref, n, tol);
    free(h);
}

/* For accumulating ops: compare the increments (got - start) with (ref - start), so a small
 * gradient on top of a larger starting value is still measured at full precision. */
static void expect_delta(const char *what, const float *got, const float *ref, const float *start,
                         size_t n, double tol) {
    float *a = malloc(n * sizeof(float) + 1), *b = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) {
        a[i] = got[i] - start[i];
        b[i] = ref[i] - start[i];
    }
    EXPECT_REL(what, a, b, n, tol);
    free(a);
    free(b);
}

static void test_encoder(void) {
    int B = 3, T = 17, C = 96, V = 50, NP = 32, pos0 = 5;
    size_t n = (size_t)B * T * C;
    int32_t *tok = malloc(B * T * sizeof(int32_t));
    for (int i = 0; i < B * T; i++)
        tok[i] = (int32_t)(rnd() % 7); /* many repeats */
    float *wte = hrand((size_t)V * C, -1, 1), *wpe = hrand((size_t)NP * C, -1, 1);
    float *ref = malloc(n * sizeof(float));
    int32_t *dtok = dup_bytes(tok, B * T * sizeof(int32_t));
    float *dwte_ = dup_f(wte, (size_t)V * C), *dwpe_ = dup_f(wpe, (size_t)NP * C),
          *dout = poisoned(n);
    CHECK_EQ_INT(SHOAL_OP(&cpu, encoder_forward, ref, tok, wte, wpe, B, T, C, pos0), SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, encoder_forward, dout, dtok, dwte_, dwpe_, B, T, C, pos0),
                 SHOAL_OK);
    expect_dev("encoder_forward", dout, ref, n, TOL_F32);
    /* backward: gradients accumulate into random starting values */
    float *g = hrand(n, -1, 1), *gw = hrand((size_t)V * C, -1, 1),
          *gp = hrand((size_t)NP * C, -1, 1);
    float *dg = dup_f(g, n), *dgw = dup_f(gw, (size_t)V * C), *dgp = dup_f(gp, (size_t)NP * C);
    CHECK_EQ_INT(SHOAL_OP(&cpu, encoder_backward, gw, gp, g, tok, B, T, C), SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, encoder_backward, dgw, dgp, dg, dtok, B, T, C), SHOAL_OK);
    expect_dev("encoder_backward dwte", dgw, gw, (size_t)V * C, TOL_F32);
    expect_dev("encoder_backward dwpe", dgp, gp, (size_t)NP * C, TOL_F32);
    free(tok);
    free(wte);
    free(wpe);
    free(ref);
    free(g);
    free(gw);
    free(gp);
    cudaFree(dtok);
    cudaFree(dwte_);
    cudaFree(dwpe_);
    cudaFree(dout);
    cudaFree(dg);
    cudaFree(dgw);
    cudaFree(dgp);
}

static void test_layernorm(void) {
    int N = 333, C = 768;
    size_t n = (size_t)N * C;
    float *x = hrand(n, -3, 3), *w = hrand(C, 0.5f, 1.5f), *b = hrand(C, -1, 1);
    float *out = malloc(n * 4), *mean = malloc(N * 4), *rstd = malloc(N * 4);
    float *dx = dup_f(x, n), *dw = dup_f(w, C), *db = dup_f(b, C);
    float *dout = poisoned(n), *dmean = poisoned(N), *drstd = poisoned(N);
    CHECK_EQ_INT(SHOAL_OP(&cpu, layernorm_forward, out, mean, rstd, x, w, b, N, C, 1e-5f),
                 SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, layernorm_forward, dout, dmean, drstd, dx, dw, db, N, C, 1e-5f),
                 SHOAL_OK);
    expect_dev("layernorm out", dout, out, n, TOL_F32);
    expect_dev("layernorm mean", dmean, mean, N, TOL_F32);
    expect_dev("layernorm rstd", drstd, rstd, N, TOL_F32);
    float *g = hrand(n, -1, 1), *gi = hrand(n, -1, 1), *gw = hrand(C, -1, 1), *gb = hrand(C, -1, 1);
    float *dg = dup_f(g, n), *dgi = dup_f(gi, n), *dgw = dup_f(gw, C), *dgb = dup_f(gb, C);
    CHECK_EQ_INT(SHOAL_OP(&cpu, layernorm_backward, gi, gw, gb, g, x, w, mean, rstd, N, C),
                 SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, layernorm_backward, dgi, dgw, dgb, dg, dx, dw, dmean, drstd, N, C),
                 SHOAL_OK);
    expect_dev("layernorm dinp", dgi, gi, n, TOL_F32);
    expect_dev("layernorm dw", dgw, gw, C, TOL_F32);
    expect_dev("layernorm db", dgb, gb, C, TOL_F32);
    free(x);
    free(w);
    free(b);
    free(out);
    free(mean);
    free(rstd);
    free(g);
    free(gi);
    free(gw);
    free(gb);
    cudaFree(dx);
    cudaFree(dw);
    cudaFree(db);
    cudaFree(dout);
    cudaFree(dmean);
    cudaFree(drstd);
    cudaFree(dg);
    cudaFree(dgi);
    cudaFree(dgw);
    cudaFree(dgb);
}

static void matmul_case(int N, int IC, int OC, shoal_wlayout layout, int with_bias) {
    size_t ni = (size_t)N * IC, no = (size_t)N * OC, nw = (size_t)IC * OC;
    float *x = hrand(ni, -1, 1), *w = hrand(nw, -1, 1), *b = with_bias ? hrand(OC, -1, 1) : NULL;
    float *out = malloc(no * 4);
    float *dx = dup_f(x, ni), *dw = dup_f(w, nw), *db = b ? dup_f(b, OC) : NULL,
          *dout = poisoned(no);
    CHECK_EQ_INT(SHOAL_OP(&cpu, matmul_forward, out, x, w, b, N, IC, OC, layout), SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, matmul_forward, dout, dx, dw, db, N, IC, OC, layout), SHOAL_OK);
    expect_dev("matmul_forward", dout, out, no, TOL_F32);
    float *g = hrand(no, -1, 1), *gi = hrand(ni, -1, 1), *gw = hrand(nw, -1, 1);
    float *gb = with_bias ? hrand(OC, -1, 1) : NULL;
    float *dg = dup_f(g, no), *dgi = dup_f(gi, ni), *dgw = dup_f(gw, nw),
          *dgb = gb ? dup_f(gb, OC) : NULL;
    CHECK_EQ_INT(SHOAL_OP(&cpu, matmul_backward, gi, gw, gb, g, x, w, N, IC, OC, layout), SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, matmul_backward, dgi, dgw, dgb, dg, dx, dw, N, IC, OC, layout),
                 SHOAL_OK);
    expect_dev("matmul dinp", dgi, gi, ni, TOL_F32);
    expect_dev("matmul dw", dgw, gw, nw, TOL_F32);
    if (gb) expect_dev("matmul dbias", dgb, gb, OC, TOL_F32);

    /* bf16: inputs rounded, fp32 accumulation; forward with bias (+ GELU), backward. */
    bf16_round(x, ni);
    bf16_round(w, nw);
    if (b) bf16_round(b, OC);
    CHECK_EQ_INT(SHOAL_OP(&cpu, matmul_forward, out, x, w, b, N, IC, OC, layout), SHOAL_OK);
    shoal_bf16 *hx = dup_bf16(x, ni), *hw = dup_bf16(w, nw), *hb = b ? dup_bf16(b, OC) : NULL;
    shoal_bf16 *hout = dmalloc(no * 2), *hpre = dmalloc(no * 2);
    cudaMemset(hout, 0xff, no * 2);
    cudaMemset(hpre, 0xff, no * 2);
    CHECK_EQ_INT(shoal_matmul_forward_bf16_cuda(&gpu, hout, NULL, hx, hw, hb, N, IC, OC, layout, 0),
                 SHOAL_OK);
    float *got = bf16_to_host(hout, no);
    EXPECT_REL("matmul_forward_bf16", got, out, no, TOL_BF16);
    free(got);
    float *gel = malloc(no * 4);
    CHECK_EQ_INT(SHOAL_OP(&cpu, gelu_forward, gel, out, no), SHOAL_OK);
    CHECK_EQ_INT(shoal_matmul_forward_bf16_cuda(&gpu, hout, hpre, hx, hw, hb, N, IC, OC, layout, 1),
                 SHOAL_OK);
    got = bf16_to_host(hout, no);
    EXPECT_REL("matmul_forward_bf16 gelu", got, gel, no, TOL_BF16);
    free(got);
    got = bf16_to_host(hpre, no);
    EXPECT_REL("matmul_forward_bf16 pre-gelu", got, out, no, TOL_BF16);
    free(got);
    bf16_round(g, no);
    bf16_round(gi, ni);
    shoal_bf16 *hg = dup_bf16(g, no), *hgi = dup_bf16(gi, ni);
    cudaMemcpy(dgw, gw, nw * 4, cudaMemcpyHostToDevice);
    if (gb) cudaMemcpy(dgb, gb, OC * 4, cudaMemcpyHostToDevice);
    float *gw2 = hcopy(gw, nw), *gb2 = gb ? hcopy(gb, OC) : NULL;
    CHECK_EQ_INT(SHOAL_OP(&cpu, matmul_backward, gi, gw2, gb2, g, x, w, N, IC, OC, layout),
                 SHOAL_OK);
    CHECK_EQ_INT(
        shoal_matmul_backward_bf16_cuda(&gpu, hgi, dgw, dgb, hg, hx, hw, N, IC, OC, layout),
        SHOAL_OK);
    got = bf16_to_host(hgi, ni);
    EXPECT_REL("matmul_backward_bf16 dinp", got, gi, ni, TOL_BF16);
    free(got);
    expect_dev("matmul_backward_bf16 dw", dgw, gw2, nw, TOL_BF16);
    if (gb) expect_dev("matmul_backward_bf16 dbias", dgb, gb2, OC, TOL_BF16);
    free(x);
    free(w);
    free(b);
    free(out);
    free(g);
    free(gi);
    free(gw);
    free(gb);
    free(gel);
    free(gw2);
    free(gb2);
    cudaFree(dx);
    cudaFree(dw);
    cudaFree(db);
    cudaFree(dout);
    cudaFree(dg);
    cudaFree(dgi);
    cudaFree(dgw);
    cudaFree(dgb);
    cudaFree(hx);
    cudaFree(hw);
    cudaFree(hb);
    cudaFree(hout);
    cudaFree(hpre);
    cudaFree(hg);
    cudaFree(hgi);
}

static void test_matmul(void) {
    matmul_case(129, 64, 192, SHOAL_W_IN_OUT, 1);
    matmul_case(129, 64, 192, SHOAL_W_OUT_IN, 0);
    matmul_case(64, 96, 96, SHOAL_W_OUT_IN, 1);
}

/* Host double reference of the LSE rows (scale 1/sqrt(hd)). */
static void lse_ref(float *lse, const float *qkv, int B, int T, int C, int NH) {
    int hd = C / NH;
    double sc = 1.0 / sqrt((double)hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * 3 * C + (size_t)h * hd;
                double mx = -INFINITY, s = 0;
                double *sv = malloc((size_t)(t + 1) * sizeof(double));
                for (int j = 0; j <= t; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * 3 * C + C + (size_t)h * hd;
                    double d = 0;
                    for (int e = 0; e < hd; e++)
                        d += (double)q[e] * k[e];
                    sv[j] = d * sc;
                    if (sv[j] > mx) mx = sv[j];
                }
                for (int j = 0; j <= t; j++)
                    s += exp(sv[j] - mx);
                lse[shoal_plan_lse_index(b, h, t, NH, T)] = (float)(mx + log(s));
                free(sv);
            }
}

static void attention_case(int B, int T, int NH, int hd) {
    int C = NH * hd;
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
    size_t nl = (size_t)B * NH * T;
    fprintf(stderr, "  attention B=%d T=%d NH=%d hd=%d\n", B, T, NH, hd);
    float *qkv = hrand(nq, -2, 2), *out = malloc(no * 4), *att = malloc(natt * 4);
    float *lse = malloc(nl * 4);
    CHECK_EQ_INT(SHOAL_OP(&cpu, attention_forward, out, att, qkv, B, T, C, NH), SHOAL_OK);
    lse_ref(lse, qkv, B, T, C, NH);
    float *dqkv = dup_f(qkv, nq), *dout = poisoned(no), *datt = poisoned(nl);
    CHECK_EQ_INT(SHOAL_OP(&gpu, attention_forward, dout, datt, dqkv, B, T, C, NH), SHOAL_OK);
    expect_dev("attention_forward out", dout, out, no, TOL_F32);
    expect_dev("attention_forward lse", datt, lse, nl, TOL_F32);
    float *g = hrand(no, -1, 1), *gq = hrand(nq, -0.25f, 0.25f), *gq_start = hcopy(gq, nq);
    float *dg = dup_f(g, no), *dgq = dup_f(gq, nq);
    CHECK_EQ_INT(SHOAL_OP(&cpu, attention_backward, gq, g, qkv, att, B, T, C, NH), SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, attention_backward, dgq, dg, dqkv, datt, B, T, C, NH), SHOAL_OK);
    float *got = to_host(dgq, nq);
    expect_delta("attention_backward dqkv", got, gq, gq_start, nq, TOL_F32);
    free(got);
    free(gq_start);

    /* bf16 tensor-core path on the bf16-rounded inputs. */
    float *q2 = hcopy(qkv, nq), *g2 = hcopy(g, no);
    bf16_round(q2, nq);
    bf16_round(g2, no);
    float *gq2 = hrand(nq, -0.25f, 0.25f);
    bf16_round(gq2, nq);
    float *gq2_start = hcopy(gq2, nq);
    CHECK_EQ_INT(SHOAL_OP(&cpu, attention_forward, out, att, q2, B, T, C, NH), SHOAL_OK);
    lse_ref(lse, q2, B, T, C, NH);
    CHECK_EQ_INT(SHOAL_OP(&cpu, attention_backward, gq2, g2, q2, att, B, T, C, NH), SHOAL_OK);
    shoal_bf16 *bq = dup_bf16(q2, nq), *bout = dmalloc(no * 2), *bg = dup_bf16(g2, no);
    shoal_bf16 *bgq = dup_bf16(gq2_start, nq);
    float *blse = poisoned(nl);
    cudaMemset(bout, 0xff, no * 2);
    CHECK_EQ_INT(shoal_attention_forward_bf16_cuda(&gpu, bout, blse, bq, B, T, C, NH), SHOAL_OK);
    got = bf16_to_host(bout, no);
    EXPECT_REL("attention_forward_bf16 out", got, out, no, TOL_BF16);
    free(got);
    expect_dev("attention_forward_bf16 lse", blse, lse, nl, TOL_BF16);
    CHECK_EQ_INT(shoal_attention_backward_bf16_cuda(&gpu, bgq, bg, bq, bout, blse, B, T, C, NH),
                 SHOAL_OK);
    float *grad1 = bf16_to_host(bgq, nq);
    expect_delta("attention_backward_bf16 dqkv", grad1, gq2, gq2_start, nq, TOL_BF16);
    /* determinism: rerun forward and backward from the same start; bits must match */
    shoal_bf16 *bout2 = dmalloc(no * 2);
    float *blse2 = poisoned(nl);
    shoal_bf16 *bgq2 = dup_bf16(gq2_start, nq);
    CHECK_EQ_INT(shoal_attention_forward_bf16_cuda(&gpu, bout2, blse2, bq, B, T, C, NH), SHOAL_OK);
    CHECK_EQ_INT(shoal_attention_backward_bf16_cuda(&gpu, bgq2, bg, bq, bout2, blse2, B, T, C, NH),
                 SHOAL_OK);
    float *grad2 = bf16_to_host(bgq2, nq);
    float *o1 = bf16_to_host(bout, no), *o2 = bf16_to_host(bout2, no);
    CHECK(memcmp(grad1, grad2, nq * 4) == 0);
    CHECK(memcmp(o1, o2, no * 4) == 0);
    free(grad1);
    free(grad2);
    free(o1);
    free(o2);
    free(qkv);
    free(out);
    free(att);
    free(lse);
    free(g);
    free(gq);
    free(q2);
    free(g2);
    free(gq2);
    free(gq2_start);
    cudaFree(dqkv);
    cudaFree(dout);
    cudaFree(datt);
    cudaFree(dg);
    cudaFree(dgq);
    cudaFree(bq);
    cudaFree(bout);
    cudaFree(bg);
    cudaFree(bgq);
    cudaFree(blse);
    cudaFree(bout2);
    cudaFree(blse2);
    cudaFree(bgq2);
}

static void test_attention(void) {
    static const int Ts[] = {1, 17, 1000};
    for (int i = 0; i < 3; i++) {
        attention_case(2, Ts[i], 2, 64);
        attention_case(1, Ts[i], 2, 128);
    }
}

static void test_attention_fp32_determinism(void) {
    int B = 2, T = 129, NH = 3, hd = 32, C = NH * hd;
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, nl = (size_t)B * NH * T;
    float *qkv = hrand(nq, -2, 2), *g = hrand(no, -1, 1);
    float *dq = dup_f(qkv, nq), *dg = dup_f(g, no), *o = poisoned(no), *l = poisoned(nl);
    float *r[2];
    for (int k = 0; k < 2; k++) {
        float *dgq = poisoned(nq);
        cudaMemset(dgq, 0, nq * 4);
        CHECK_EQ_INT(SHOAL_OP(&gpu, attention_forward, o, l, dq, B, T, C, NH), SHOAL_OK);
        CHECK_EQ_INT(SHOAL_OP(&gpu, attention_backward, dgq, dg, dq, l, B, T, C, NH), SHOAL_OK);
        r[k] = to_host(dgq, nq);
        cudaFree(dgq);
    }
    CHECK(memcmp(r[0], r[1], nq * 4) == 0);
    free(r[0]);
    free(r[1]);
    free(qkv);
    free(g);
    cudaFree(dq);
    cudaFree(dg);
    cudaFree(o);
    cudaFree(l);
}

static void test_attention_decode(void) {
    int B = 2, NH = 4, hd = 16, C = NH * hd, Tmax = 40, pos = 23;
    size_t nc = (size_t)B * Tmax * C;
    float *kc = hrand(nc, -1, 1), *vc = hrand(nc, -1, 1), *qkv = hrand((size_t)B * 3 * C, -1, 1);
    float *out = malloc((size_t)B * C * 4);
    float *dkc = dup_f(kc, nc), *dvc = dup_f(vc, nc), *dq = dup_f(qkv, (size_t)B * 3 * C);
    float *dout = poisoned((size_t)B * C);
    CHECK_EQ_INT(SHOAL_OP(&cpu, attention_decode, out, kc, vc, qkv, pos, Tmax, B, C, NH), SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, attention_decode, dout, dkc, dvc, dq, pos, Tmax, B, C, NH),
                 SHOAL_OK);
    expect_dev("attention_decode out", dout, out, (size_t)B * C, TOL_F32);
    expect_dev("attention_decode kcache", dkc, kc, nc, 0.0);
    expect_dev("attention_decode vcache", dvc, vc, nc, 0.0);
    CHECK_EQ_INT(SHOAL_OP(&gpu, attention_decode, dout, dkc, dvc, dq, Tmax, Tmax, B, C, NH),
                 SHOAL_ERR_INVALID_ARG);
    free(kc);
    free(vc);
    free(qkv);
    free(out);
    cudaFree(dkc);
    cudaFree(dvc);
    cudaFree(dq);
    cudaFree(dout);
}

static void test_pointwise(void) {
    size_t n = 100003;
    float *x = hrand(n, -4, 4), *y = hrand(n, -1, 1), *ref = malloc(n * 4);
    float *dx = dup_f(x, n), *dy = dup_f(y, n), *dout = poisoned(n);
    CHECK_EQ_INT(SHOAL_OP(&cpu, gelu_forward, ref, x, n), SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, gelu_forward, dout, dx, n), SHOAL_OK);
    expect_dev("gelu_forward", dout, ref, n, TOL_F32);
    float *acc = hrand(n, -1, 1), *dacc = dup_f(acc, n);
    CHECK_EQ_INT(SHOAL_OP(&cpu, gelu_backward, acc, y, x, n), SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, gelu_backward, dacc, dy, dx, n), SHOAL_OK);
    expect_dev("gelu_backward", dacc, acc, n, TOL_F32);
    cudaMemset(dout, 0xff, n * 4);
    CHECK_EQ_INT(SHOAL_OP(&cpu, residual_forward, ref, x, y, n), SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, residual_forward, dout, dx, dy, n), SHOAL_OK);
    expect_dev("residual_forward", dout, ref, n, TOL_F32);
    float *a2 = hrand(n, -1, 1), *b2 = hrand(n, -1, 1), *da2 = dup_f(a2, n), *db2 = dup_f(b2, n);
    CHECK_EQ_INT(SHOAL_OP(&cpu, residual_backward, a2, b2, y, n), SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, residual_backward, da2, db2, dy, n), SHOAL_OK);
    expect_dev("residual_backward da", da2, a2, n, TOL_F32);
    expect_dev("residual_backward db", db2, b2, n, TOL_F32);
    CHECK_EQ_INT(SHOAL_OP(&cpu, scale, x, n, 0.37f), SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, scale, dx, n, 0.37f), SHOAL_OK);
    expect_dev("scale", dx, x, n, TOL_F32);
    CHECK_EQ_INT(SHOAL_OP(&gpu, zero, dout, n * 4), SHOAL_OK);
    float *z = to_host(dout, n);
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i++)
        nonzero += z[i] != 0.0f;
    CHECK_EQ_INT(nonzero, 0);
    free(z);
    /* fp32 <-> bf16 conversion: the same bits as the host rounding */
    shoal_bf16 *hb = dmalloc(n * 2);
    CHECK_EQ_INT(shoal_cuda_f32_to_bf16(&gpu, hb, dy, n), SHOAL_OK);
    shoal_bf16 *bits = malloc(n * 2);
    CHECK_EQ_INT(shoal_cuda_sync(&gpu), SHOAL_OK);
    cudaMemcpy(bits, hb, n * 2, cudaMemcpyDeviceToHost);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += bits[i] != shoal_plan_f32_to_bf16(y[i]);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(shoal_cuda_bf16_to_f32(&gpu, dout, hb, n), SHOAL_OK);
    float *back = to_host(dout, n);
    bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += back[i] != shoal_plan_bf16_to_f32(bits[i]);
    CHECK_EQ_INT(bad, 0);
    free(back);
    free(bits);
    free(x);
    free(y);
    free(ref);
    free(acc);
    free(a2);
    free(b2);
    cudaFree(hb);
    cudaFree(dx);
    cudaFree(dy);
    cudaFree(dout);
    cudaFree(dacc);
    cudaFree(da2);
    cudaFree(db2);
}

static void test_crossentropy(void) {
    int N = 37, V = 50257;
    size_t n = (size_t)N * V;
    float *logits = hrand(n, -8, 8), *loss = malloc(N * 4), *lse = malloc(N * 4);
    int32_t *tg = malloc(N * 4);
    uint8_t *mask = malloc(N);
    for (int i = 0; i < N; i++) {
        tg[i] = i % 5 == 0 ? -1 : (int32_t)(rnd() % V);
        mask[i] = (uint8_t)(i % 3 != 0);
    }
    float *dl = dup_f(logits, n), *dloss = poisoned(N), *dlse = poisoned(N);
    int32_t *dtg = dup_bytes(tg, N * 4);
    uint8_t *dmask = dup_bytes(mask, N);
    CHECK_EQ_INT(SHOAL_OP(&cpu, crossentropy_forward, loss, lse, logits, tg, N, V), SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, crossentropy_forward, dloss, dlse, dl, dtg, N, V), SHOAL_OK);
    expect_dev("crossentropy losses", dloss, loss, N, TOL_F32);
    expect_dev("crossentropy lse", dlse, lse, N, TOL_F32);
    float *grad = malloc(n * 4), *dgrad = poisoned(n);
    CHECK_EQ_INT(SHOAL_OP(&cpu, crossentropy_backward, grad, logits, lse, tg, mask, 0.05f, N, V),
                 SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, crossentropy_backward, dgrad, dl, dlse, dtg, dmask, 0.05f, N, V),
                 SHOAL_OK);
    expect_dev("crossentropy_backward", dgrad, grad, n, TOL_F32);
    /* in place, no mask */
    CHECK_EQ_INT(SHOAL_OP(&cpu, crossentropy_backward, grad, logits, lse, tg, NULL, 1.0f, N, V),
                 SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, crossentropy_backward, dl, dl, dlse, dtg, NULL, 1.0f, N, V),
                 SHOAL_OK);
    expect_dev("crossentropy_backward in place", dl, grad, n, TOL_F32);
    free(logits);
    free(loss);
    free(lse);
    free(tg);
    free(mask);
    free(grad);
    cudaFree(dl);
    cudaFree(dloss);
    cudaFree(dlse);
    cudaFree(dtg);
    cudaFree(dmask);
    cudaFree(dgrad);
}

static void test_optimizer(void) {
    size_t n = 300007;
    float *p = hrand(n, -1, 1), *g = hrand(n, -1, 1), *m = hrand(n, -0.1f, 0.1f);
    float *v = hrand(n, 0, 0.01f);
    float *dp = dup_f(p, n), *dg = dup_f(g, n), *dm = dup_f(m, n), *dv = dup_f(v, n);
    float *dp2 = dup_f(p, n), *dm2 = dup_f(m, n), *dv2 = dup_f(v, n);
    for (int step = 1; step <= 3; step++) {
        CHECK_EQ_INT(SHOAL_OP(&cpu, adamw_update, p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f,
                              step, 0.5f),
                     SHOAL_OK);
        CHECK_EQ_INT(SHOAL_OP(&gpu, adamw_update, dp, dg, dm, dv, n, 1e-3f, 0.9f, 0.95f, 1e-8f,
                              0.1f, step, 0.5f),
                     SHOAL_OK);
    }
    expect_dev("adamw params", dp, p, n, TOL_F32);
    expect_dev("adamw m", dm, m, n, TOL_F32);
    expect_dev("adamw v", dv, v, n, TOL_F32);
    /* mixed: same master update, plus the bf16 copy of the result */
    shoal_bf16 *pb = dmalloc(n * 2);
    for (int step = 1; step <= 3; step++)
        CHECK_EQ_INT(shoal_adamw_update_mixed_cuda(&gpu, dp2, pb, dg, dm2, dv2, n, 1e-3f, 0.9f,
                                                   0.95f, 1e-8f, 0.1f, step, 0.5f),
                     SHOAL_OK);
    float *master = to_host(dp2, n), *copy = bf16_to_host(pb, n), *first = to_host(dp, n);
    CHECK(memcmp(master, first, n * 4) == 0); /* same kernel, same bits */
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += copy[i] != shoal_plan_bf16_to_f32(shoal_plan_f32_to_bf16(master[i]));
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(
        SHOAL_OP(&gpu, adamw_update, dp, dg, dm, dv, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0, 1.0f),
        SHOAL_ERR_INVALID_ARG);
    /* norm_sq (double) and determinism, then grad_clip through the table */
    double a = 0, b = 0, c = 0;
    CHECK_EQ_INT(SHOAL_OP(&cpu, norm_sq, g, n, &a), SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, norm_sq, dg, n, &b), SHOAL_OK);
    CHECK_EQ_INT(SHOAL_OP(&gpu, norm_sq, dg, n, &c), SHOAL_OK);
    CHECK_NEAR(b, a, 1e-9);
    CHECK(b == c);
    float na = 0, nb = 0;
    CHECK_EQ_INT(shoal_grad_clip(&cpu, g, n, 1.0f, &na), SHOAL_OK);
    CHECK_EQ_INT(shoal_grad_clip(&gpu, dg, n, 1.0f, &nb), SHOAL_OK);
    CHECK_NEAR(nb, na, 1e-6);
    expect_dev("grad_clip", dg, g, n, TOL_F32);
    free(p);
    free(g);
    free(m);
    free(v);
    free(master);
    free(copy);
    free(first);
    cudaFree(dp);
    cudaFree(dg);
    cudaFree(dm);
    cudaFree(dv);
    cudaFree(dp2);
    cudaFree(dm2);
    cudaFree(dv2);
    cudaFree(pb);
}

/* The bf16 training ops against the CPU table run on the bf16-rounded inputs. */
static void test_bf16_training_ops(void) {
    int B = 2, T = 33, C = 256, V = 300, N = B * T;
    size_t n = (size_t)N * C;
    /* encoder */
    int32_t *tok = malloc(N * sizeof(int32_t));
    for (int i = 0; i < N; i++)
        tok[i] = (int32_t)(rnd() % 9);
    float *wte = hrand((size_t)V * C, -1, 1), *wpe = hrand((size_t)T * C, -1, 1);
    float *ref = malloc(n * 4);
    int32_t *dtok = dup_bytes(tok, N * sizeof(int32_t));
    float *dwte = dup_f(wte, (size_t)V * C), *dwpe = dup_f(wpe, (size_t)T * C);
    shoal_bf16 *bo = dmalloc(n * 2);
    cudaMemset(bo, 0xff, n * 2);
    CHECK_EQ_INT(SHOAL_OP(&cpu, encoder_forward, ref, tok, wte, wpe, B, T, C, 0), SHOAL_OK);
    CHECK_EQ_INT(shoal_encoder_forward_bf16_cuda(&gpu, bo, dtok, dwte, dwpe, B, T, C, 0), SHOAL_OK);
    float *got = bf16_to_host(bo, n);
    EXPECT_REL("encoder_forward_bf16", got, ref, n, TOL_BF16);
    free(got);
    float *g = hrand(n, -1, 1);
    bf16_round(g, n);
    shoal_bf16 *bg = dup_bf16(g, n);
    CHECK_EQ_INT(SHOAL_OP(&cpu, encoder_backward, wte, wpe, g, tok, B, T, C), SHOAL_OK);
    CHECK_EQ_INT(shoal_encoder_backward_bf16_cuda(&gpu, dwte, dwpe, bg, dtok, B, T, C), SHOAL_OK);
    expect_dev("encoder_backward_bf16 dwte", dwte, wte, (size_t)V * C, TOL_F32);
    expect_dev("encoder_backward_bf16 dwpe", dwpe, wpe, (size_t)T * C, TOL_F32);

    /* layernorm */
    float *x = hrand(n, -3, 3), *w = hrand(C, 0.5f, 1.5f), *b = hrand(C, -1, 1);
    bf16_round(x, n);
    bf16_round(w, C);
    bf16_round(b, C);
    float *mean = malloc(N * 4), *rstd = malloc(N * 4);
    shoal_bf16 *bx = dup_bf16(x, n), *bw = dup_bf16(w, C), *bb = dup_bf16(b, C);
    float *dmean = poisoned(N), *drstd = poisoned(N);
    cudaMemset(bo, 0xff, n * 2);
    CHECK_EQ_INT(SHOAL_OP(&cpu, layernorm_forward, ref, mean, rstd, x, w, b, N, C, 1e-5f),
                 SHOAL_OK);
    CHECK_EQ_INT(shoal_layernorm_forward_bf16_cuda(&gpu, bo, dmean, drstd, bx, bw, bb, N, C, 1e-5f),
                 SHOAL_OK);
    got = bf16_to_host(bo, n);
    EXPECT_REL("layernorm_forward_bf16", got, ref, n, TOL_BF16);
    free(got);
    expect_dev("layernorm_forward_bf16 mean", dmean, mean, N, TOL_F32);
    expect_dev("layernorm_forward_bf16 rstd", drstd, rstd, N, TOL_F32);
    float *gi = hrand(n, -0.25f, 0.25f), *gw = hrand(C, -1, 1), *gb = hrand(C, -1, 1);
    bf16_round(gi, n);
    float *gi0 = hcopy(gi, n);
    shoal_bf16 *bgi = dup_bf16(gi, n);
    float *dgw = dup_f(gw, C), *dgb = dup_f(gb, C), *dm = dup_f(mean, N), *dr = dup_f(rstd, N);
    CHECK_EQ_INT(SHOAL_OP(&cpu, layernorm_backward, gi, gw, gb, g, x, w, mean, rstd, N, C),
                 SHOAL_OK);
    CHECK_EQ_INT(shoal_layernorm_backward_bf16_cuda(&gpu, bgi, dgw, dgb, bg, bx, bw, dm, dr, N, C),
                 SHOAL_OK);
    got = bf16_to_host(bgi, n);
    expect_delta("layernorm_backward_bf16 dinp", got, gi, gi0, n, TOL_BF16);
    free(got);
    expect_dev("layernorm_backward_bf16 dw", dgw, gw, C, 1e-4);
    expect_dev("layernorm_backward_bf16 db", dgb, gb, C, 1e-4);

    /* gelu backward, residual */
    float *acc = hrand(n, -0.25f, 0.25f);
    bf16_round(acc, n);
    float *acc0 = hcopy(acc, n);
    shoal_bf16 *bacc = dup_bf16(acc, n);
    CHECK_EQ_INT(SHOAL_OP(&cpu, gelu_backward, acc, g, x, n), SHOAL_OK);
    CHECK_EQ_INT(shoal_gelu_backward_bf16_cuda(&gpu, bacc, bg, bx, n), SHOAL_OK);
    got = bf16_to_host(bacc, n);
    expect_delta("gelu_backward_bf16", got, acc, acc0, n, TOL_BF16);
    free(got);
    cudaMemset(bo, 0xff, n * 2);
    CHECK_EQ_INT(SHOAL_OP(&cpu, residual_forward, ref, x, g, n), SHOAL_OK);
    CHECK_EQ_INT(shoal_residual_forward_bf16_cuda(&gpu, bo, bx, bg, n), SHOAL_OK);
    got = bf16_to_host(bo, n);
    EXPECT_REL("residual_forward_bf16", got, ref, n, TOL_BF16);
    free(got);
    memcpy(acc, acc0, n * 4);
    float *acc2 = hcopy(acc0, n);
    shoal_bf16 *bacc2 = dup_bf16(acc0, n);
    cudaMemcpy(bacc, bacc2, n * 2, cudaMemcpyDeviceToDevice);
    CHECK_EQ_INT(SHOAL_OP(&cpu, residual_backward, acc, acc2, g, n), SHOAL_OK);
    CHECK_EQ_INT(shoal_residual_backward_bf16_cuda(&gpu, bacc, bacc2, bg, n), SHOAL_OK);
    got = bf16_to_host(bacc, n);
    expect_delta("residual_backward_bf16 da", got, acc, acc0, n, TOL_BF16);
    free(got);
    got = bf16_to_host(bacc2, n);
    expect_delta("residual_backward_bf16 db", got, acc2, acc0, n, TOL_BF16);
    free(got);

    /* cross-entropy on bf16 logits (V = 50257: GPT-2's vocabulary, not a multiple of anything) */
    int NV = 17, VV = 50257;
    size_t nl = (size_t)NV * VV;
    float *logits = hrand(nl, -8, 8), *loss = malloc(NV * 4), *lse = malloc(NV * 4);
    bf16_round(logits, nl);
    int32_t *tg = malloc(NV * 4);
    uint8_t *mask = malloc(NV);
    for (int i = 0; i < NV; i++) {
        tg[i] = i % 4 == 0 ? -1 : (int32_t)(rnd() % VV);
        mask[i] = (uint8_t)(i % 3 != 0);
    }
    shoal_bf16 *bl = dup_bf16(logits, nl), *bdl = dmalloc(nl * 2);
    int32_t *dtg = dup_bytes(tg, NV * 4);
    uint8_t *dmask = dup_bytes(mask, NV);
    float *dloss = poisoned(NV), *dlse = poisoned(NV), *grad = malloc(nl * 4);
    CHECK_EQ_INT(SHOAL_OP(&cpu, crossentropy_forward, loss, lse, logits, tg, NV, VV), SHOAL_OK);
    CHECK_EQ_INT(shoal_crossentropy_forward_bf16_cuda(&gpu, dloss, dlse, bl, dtg, NV, VV),
                 SHOAL_OK);
    expect_dev("crossentropy_forward_bf16 losses", dloss, loss, NV, TOL_F32);
    expect_dev("crossentropy_forward_bf16 lse", dlse, lse, NV, TOL_F32);
    cudaMemset(bdl, 0xff, nl * 2);
    CHECK_EQ_INT(SHOAL_OP(&cpu, crossentropy_backward, grad, logits, lse, tg, mask, 0.1f, NV, VV),
                 SHOAL_OK);
    CHECK_EQ_INT(
        shoal_crossentropy_backward_bf16_cuda(&gpu, bdl, bl, dlse, dtg, dmask, 0.1f, NV, VV),
        SHOAL_OK);
    got = bf16_to_host(bdl, nl);
    EXPECT_REL("crossentropy_backward_bf16", got, grad, nl, TOL_BF16);
    free(got);

    free(tok);
    free(wte);
    free(wpe);
    free(ref);
    free(g);
    free(x);
    free(w);
    free(b);
    free(mean);
    free(rstd);
    free(gi);
    free(gw);
    free(gb);
    free(gi0);
    free(acc);
    free(acc0);
    free(acc2);
    free(logits);
    free(loss);
    free(lse);
    free(tg);
    free(mask);
    free(grad);
    cudaFree(dtok);
    cudaFree(dwte);
    cudaFree(dwpe);
    cudaFree(bo);
    cudaFree(bg);
    cudaFree(bx);
    cudaFree(bw);
    cudaFree(bb);
    cudaFree(dmean);
    cudaFree(drstd);
    cudaFree(bgi);
    cudaFree(dgw);
    cudaFree(dgb);
    cudaFree(dm);
    cudaFree(dr);
    cudaFree(bacc);
    cudaFree(bacc2);
    cudaFree(bl);
    cudaFree(bdl);
    cudaFree(dtg);
    cudaFree(dmask);
    cudaFree(dloss);
    cudaFree(dlse);
}

/* argv[1], when given, runs only the cases whose name contains it (memcheck.sh passes
 * "attention": compute-sanitizer is slow). */
static const char *only;
#define RUN_IF(fn)                                                                                 \
    do {                                                                                           \
        if (!only || strstr(#fn, only)) TEST_RUN(fn);                                              \
    } while (0)

int main(int argc, char **argv) {
    only = argc > 1 ? argv[1] : NULL;
    if (shoal_cuda_device_count() == 0) TEST_SKIP("no CUDA device");
    const char *s = getenv("SHOAL_TEST_SEED");
    rng_state = s ? strtoull(s, NULL, 10) : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
    if (rng_state == 0) rng_state = 88172645463325252ull;
    printf("seed %llu (SHOAL_TEST_SEED repeats it)\n", (unsigned long long)rng_state);
    if (shoal_ctx_init_cpu(&cpu, 0) != SHOAL_OK || shoal_ctx_init_cuda(&gpu, 0) != SHOAL_OK) {
        fprintf(stderr, "context setup failed\n");
        return 1;
    }
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) printf("device: %s\n", prop.name);
    RUN_IF(test_encoder);
    RUN_IF(test_layernorm);
    RUN_IF(test_matmul);
    RUN_IF(test_attention);
    RUN_IF(test_attention_fp32_determinism);
    RUN_IF(test_attention_decode);
    RUN_IF(test_pointwise);
    RUN_IF(test_crossentropy);
    RUN_IF(test_optimizer);
    RUN_IF(test_bf16_training_ops);
    shoal_ctx_free_cuda(&gpu);
    shoal_ctx_free(&cpu);
    return TEST_EXIT();
}
