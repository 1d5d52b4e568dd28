/* test_flash_tiling.c: the tile schedule of the flash-attention kernels, replayed on the CPU
 * (label unit; runs in CI without a GPU).
 *
 * attention_bf16.cu's three kernels are replayed here loop for loop in plain C: the same
 * 64 x 64 tiles, the same tile ranges (shoal_plan_fa_kv_tiles_dev, _first_q_tile_dev), the same
 * masks (key > query or past T gives -inf / p = 0), the online softmax in the log2 domain with
 * the scale folded in, the -inf guard for fully masked rows, the LSE as m*ln2 + log(l), Di as
 * rowsum(dO*O), the dQ pass over key tiles and the dK/dV pass over query tiles. Only the
 * arithmetic precision differs (fp32 here, bf16 operands there). The result must match a naive
 * double-precision attention forward and backward at odd and round T, so a wrong tile range,
 * mask, or rescale in the schedule fails here before any GPU sees it.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_plan.h"
#include "test.h"

enum { BQ = SHOAL_FA_BQ, BK = SHOAL_FA_BK };
static const float LOG2E = 1.4426950408889634f, LN2 = 0.6931471805599453f;

/* x (T, D) for one head: q, k, v, dout as separate row-major arrays */
static void flash_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                          int T, int D) {
    const float scale_log2 = (1.0f / sqrtf((float)D)) * LOG2E;
    int nq = shoal_plan_ceil_div_dev(T, BQ);
    float *O = malloc(sizeof(float) * BQ * D), m[BQ], l[BQ], S[BQ][BK];
    for (int blk = 0; blk < nq; blk++) {
        int qi = nq - 1 - blk, q0 = qi * BQ; /* the kernel's launch order */
        memset(O, 0, sizeof(float) * BQ * D);
        for (int r = 0; r < BQ; r++)
            m[r] = -INFINITY, l[r] = 0.0f;
        int nkv = shoal_plan_fa_kv_tiles_dev(T, qi);
        for (int kj = 0; kj < nkv; kj++) {
            int k0 = kj * BK;
            for (int r = 0; r < BQ; r++)
                for (int c = 0; c < BK; c++) { /* rows past T are zero tiles */
                    float s = 0;
                    if (q0 + r < T && k0 + c < T)
                        for (int d = 0; d < D; d++)
                            s += q[(q0 + r) * D + d] * k[(k0 + c) * D + d];
                    S[r][c] = s;
                }
            for (int r = 0; r < BQ; r++) {
                int qidx = q0 + r;
                float p[BK], mx = -INFINITY;
                for (int c = 0; c < BK; c++) {
                    int key = k0 + c;
                    float s = S[r][c] * scale_log2;
                    if (key > qidx || key >= T) s = -INFINITY;
                    p[c] = s;
                    mx = fmaxf(mx, s);
                }
                float m_new = fmaxf(m[r], mx);
                float base = m_new == -INFINITY ? 0.0f : m_new;
                float alpha = exp2f(m[r] - base), sum = 0;
                for (int c = 0; c < BK; c++) {
                    p[c] = exp2f(p[c] - base);
                    sum += p[c];
                }
                for (int d = 0; d < D; d++) {
                    float acc = O[r * D + d] * alpha;
                    for (int c = 0; c < BK; c++)
                        if (k0 + c < T) acc += p[c] * v[(k0 + c) * D + d];
                    O[r * D + d] = acc;
                }
                m[r] = m_new;
                l[r] = l[r] * alpha + sum;
            }
        }
        for (int r = 0; r < BQ && q0 + r < T; r++) {
            for (int d = 0; d < D; d++)
                out[(q0 + r) * D + d] = O[r * D + d] / l[r];
            lse[q0 + r] = m[r] * LN2 + logf(l[r]);
        }
    }
    free(O);
}

/* p and ds of one (query row, key) pair as bwd_scores computes them. */
static void pair(float *p, float *ds, const float *q, const float *k, const float *v,
                 const float *dout, const float *lse, const float *Dv, int qidx, int key, int T,
                 int D) {
    const float scale_log2 = (1.0f / sqrtf((float)D)) * LOG2E;
    int vis = qidx < T && key < T && key <= qidx;
    float s = 0, dp = 0;
    if (qidx < T && key < T)
        for (int d = 0; d < D; d++) {
            s += q[qidx * D + d] * k[key * D + d];
            dp += dout[qidx * D + d] * v[key * D + d];
        }
    float L = qidx < T ? lse[qidx] * LOG2E : 0.0f, Di = qidx < T ? Dv[qidx] : 0.0f;
    *p = vis ? exp2f(s * scale_log2 - L) : 0.0f;
    *ds = *p * (dp - Di);
}

static void flash_backward(float *dq, float *dk, float *dv, const float *q, const float *k,
                           const float *v, const float *out, const float *dout, const float *lse,
                           int T, int D) {
    const float scale = 1.0f / sqrtf((float)D);
    int nq = shoal_plan_ceil_div_dev(T, BQ);
    float *Dv = malloc(sizeof(float) * T);
    for (int t = 0; t < T; t++) {
        float s = 0;
        for (int d = 0; d < D; d++)
            s += dout[t * D + d] * out[t * D + d];
        Dv[t] = s;
    }
    /* dQ kernel: one block per query tile, key tiles 0 .. nkv-1 */
    for (int qi = 0; qi < nq; qi++) {
        int q0 = qi * BQ, nkv = shoal_plan_fa_kv_tiles_dev(T, qi);
        for (int r = 0; r < BQ && q0 + r < T; r++)
            for (int kj = 0; kj < nkv; kj++)
                for (int c = 0; c < BK; c++) {
                    float p, ds;
                    pair(&p, &ds, q, k, v, dout, lse, Dv, q0 + r, kj * BK + c, T, D);
                    if (kj * BK + c < T)
                        for (int d = 0; d < D; d++)
                            dq[(q0 + r) * D + d] += scale * ds * k[(kj * BK + c) * D + d];
                }
    }
    /* dK/dV kernel: one block per key tile, query tiles first_q_tile .. nq-1 */
    for (int kj = 0; kj < nq; kj++) {
        int k0 = kj * BK;
        for (int qi = shoal_plan_fa_first_q_tile_dev(kj); qi < nq; qi++)
            for (int r = 0; r < BQ; r++)
                for (int c = 0; c < BK && k0 + c < T; c++) {
                    int qidx = qi * BQ + r;
                    float p, ds;
                    pair(&p, &ds, q, k, v, dout, lse, Dv, qidx, k0 + c, T, D);
                    if (qidx < T)
                        for (int d = 0; d < D; d++) {
                            dv[(k0 + c) * D + d] += p * dout[qidx * D + d];
                            dk[(k0 + c) * D + d] += scale * ds * q[qidx * D + d];
                        }
                }
    }
    free(Dv);
}

/* Naive double-precision causal attention, forward and backward, for one head. */
static void naive(double *out, double *lse, double *dq, double *dk, double *dv, const float *q,
                  const float *k, const float *v, const float *dout, int T, int D) {
    double sc = 1.0 / sqrt((double)D);
    double *P = calloc((size_t)T * T, sizeof(double));
    for (int i = 0; i < T; i++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j <= i; j++) {
            double s = 0;
            for (int d = 0; d < D; d++)
                s += (double)q[i * D + d] * k[j * D + d];
            P[i * T + j] = s * sc;
            if (s * sc > mx) mx = s * sc;
        }
        for (int j = 0; j <= i; j++)
            sum += exp(P[i * T + j] - mx);
        lse[i] = mx + log(sum);
        for (int j = 0; j <= i; j++)
            P[i * T + j] = exp(P[i * T + j] - lse[i]);
        for (int d = 0; d < D; d++) {
            double o = 0;
            for (int j = 0; j <= i; j++)
                o += P[i * T + j] * v[j * D + d];
            out[i * D + d] = o;
        }
    }
    for (int i = 0; i < T; i++) {
        double Di = 0;
        double *dp = malloc(sizeof(double) * (i + 1));
        for (int j = 0; j <= i; j++) {
            double s = 0;
            for (int d = 0; d < D; d++)
                s += (double)dout[i * D + d] * v[j * D + d];
            dp[j] = s;
            Di += P[i * T + j] * s;
        }
        for (int j = 0; j <= i; j++) {
            double ds = P[i * T + j] * (dp[j] - Di);
            for (int d = 0; d < D; d++) {
                dq[i * D + d] += sc * ds * k[j * D + d];
                dk[j * D + d] += sc * ds * q[i * D + d];
                dv[j * D + d] += P[i * T + j] * dout[i * D + d];
            }
        }
        free(dp);
    }
    free(P);
}

static double rel(const float *a, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        num += (a[i] - ref[i]) * (a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static unsigned seed = 1234567u;
static float frand(void) {
    seed = seed * 1664525u + 1013904223u;
    return (float)(seed >> 8) / 16777216.0f * 4.0f - 2.0f;
}

static void run_case(int T, int D) {
    size_t n = (size_t)T * D;
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4), *g = malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        q[i] = frand(), k[i] = frand(), v[i] = frand(), g[i] = frand();
    float *out = malloc(n * 4), *lse = malloc(T * 4);
    float *dq = calloc(n, 4), *dk = calloc(n, 4), *dv = calloc(n, 4);
    for (size_t i = 0; i < n; i++)
        out[i] = NAN; /* poison: every row must be written */
    for (int t = 0; t < T; t++)
        lse[t] = NAN;
    double *rout = malloc(n * 8), *rlse = malloc(T * 8);
    double *rdq = calloc(n, 8), *rdk = calloc(n, 8), *rdv = calloc(n, 8);
    flash_forward(out, lse, q, k, v, T, D);
    flash_backward(dq, dk, dv, q, k, v, out, g, lse, T, D);
    naive(rout, rlse, rdq, rdk, rdv, q, k, v, g, T, D);
    double e[5] = {rel(out, rout, n), rel(lse, rlse, T), rel(dq, rdq, n), rel(dk, rdk, n),
                   rel(dv, rdv, n)};
    for (int i = 0; i < 5; i++) {
        if (!(e[i] < 1e-5))
            fprintf(stderr, "  T=%d D=%d: %s rel err %.3g\n", T, D,
                    (const char *[]){"out", "lse", "dq", "dk", "dv"}[i], e[i]);
        CHECK(e[i] < 1e-5);
    }
    free(q);
    free(k);
    free(v);
    free(g);
    free(out);
    free(lse);
    free(dq);
    free(dk);
    free(dv);
    free(rout);
    free(rlse);
    free(rdq);
    free(rdk);
    free(rdv);
}

static void test_schedule_matches_naive(void) {
    static const int Ts[] = {1, 2, 17, 63, 64, 65, 130, 200};
    for (size_t i = 0; i < sizeof(Ts) / sizeof(Ts[0]); i++)
        run_case(Ts[i], 8);
    run_case(129, 64);
}

int main(void) {
    TEST_RUN(test_schedule_matches_naive);
    return TEST_EXIT();
}
