/* matmul.c: the GEMMs of the CUDA backend through cuBLASLt: fp32 (ops.h matmul_forward /
 * matmul_backward) and bf16 inputs with fp32 accumulation, bias and GELU epilogues.
 *
 * Why so: cuBLASLt is the fastest GEMM on Hopper we can call from C, and its epilogues fuse the
 * bias add and GELU into the GEMM's store (no extra pass over (N,OC)). Row-major shoal tensors
 * are column-major transposes, so out^T = W^T-ish * inp^T: each call below states its m, n, k
 * and which operand is transposed. fp32 uses CUBLAS_COMPUTE_32F (true fp32, no TF32) so the
 * fp32 path meets the 1e-5 relative bound against the CPU reference. Accumulation (+=) into
 * gradients is beta = 1 with C == D. Bias gradients are deterministic column sums
 * (layernorm.cu), not the BGRAD epilogue (which would overwrite rather than accumulate).
 * Tested by tests/kernels_cuda/test_ops_cuda.c against the CPU table (label gpu).
 */
#include <cublasLt.h>

#include "kernels/cuda/cuda_internal.h"

#define LT_TRY(call)                                                                               \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            SHOAL_LOG_ERROR("%s:%d: %s failed: cuBLAS status %d", __FILE__, __LINE__, #call,       \
                            (int)s_);                                                              \
            st = SHOAL_ERR_CUDA;                                                                   \
            goto cleanup;                                                                          \
        }                                                                                          \
    } while (0)

typedef struct {
    cudaDataType_t ab, cd; /* operand types; C and D share one */
    cublasOperation_t opa, opb;
    int m, n, k; /* D (m x n, col-major) = op(A) (m x k) * op(B) (k x n) */
    const void *a, *b;
    int lda, ldb;
    void *d;
    int ldd;
    float beta;                  /* 0: overwrite, 1: accumulate into D */
    cublasLtEpilogue_t epilogue; /* CUBLASLT_EPILOGUE_DEFAULT, _BIAS, _GELU_AUX_BIAS ... */
    const void *bias;
    cudaDataType_t bias_type;
    void *aux; /* pre-GELU output (same type and shape as D) */
} lt_gemm;

static shoal_status lt_run(shoal_ctx *ctx, const lt_gemm *g) {
    shoal_status st = SHOAL_OK;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtHandle_t h = (cublasLtHandle_t)ctx->blas;
    size_t ws_bytes = ctx->workspace ? SHOAL_CUDA_LT_WORKSPACE : 0;
    float alpha = 1.0f, beta = g->beta;

    LT_TRY(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_TRY(
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &g->opa, sizeof(g->opa)));
    LT_TRY(
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &g->opb, sizeof(g->opb)));
    if (g->epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
        LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &g->epilogue,
                                              sizeof(g->epilogue)));
        if (g->bias) {
            LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g->bias,
                                                  sizeof(g->bias)));
            LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                  &g->bias_type, sizeof(g->bias_type)));
        }
        if (g->aux) {
            int64_t aux_ld = g->ldd;
            LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                                  &g->aux, sizeof(g->aux)));
            LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld,
                                                  sizeof(aux_ld)));
        }
    }
    /* Stored shapes: op N means stored as (rows x cols) = (m x k) for A, (k x n) for B. */
    int a_rows = g->opa == CUBLAS_OP_N ? g->m : g->k, a_cols = g->opa == CUBLAS_OP_N ? g->k : g->m;
    int b_rows = g->opb == CUBLAS_OP_N ? g->k : g->n, b_cols = g->opb == CUBLAS_OP_N ? g->n : g->k;
    LT_TRY(cublasLtMatrixLayoutCreate(&la, g->ab, a_rows, a_cols, g->lda));
    LT_TRY(cublasLtMatrixLayoutCreate(&lb, g->ab, b_rows, b_cols, g->ldb));
    LT_TRY(cublasLtMatrixLayoutCreate(&ld, g->cd, g->m, g->n, g->ldd));
    LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &ws_bytes, sizeof(ws_bytes)));
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    LT_TRY(cublasLtMatmulAlgoGetHeuristic(h, op, la, lb, ld, ld, pref, 1, &heur, &found));
    if (found < 1) {
        SHOAL_LOG_ERROR("cuBLASLt: no algorithm for m=%d n=%d k=%d (epilogue %d)", g->m, g->n, g->k,
                        (int)g->epilogue);
        st = SHOAL_ERR_CUDA;
        goto cleanup;
    }
    LT_TRY(cublasLtMatmul(h, op, &alpha, g->a, la, g->b, lb, &beta, g->d, ld, g->d, ld, &heur.algo,
                          ctx->workspace, ws_bytes, SHOAL_CUDA_STREAM(ctx)));
cleanup:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return st;
}

/* out^T (OC x N) = Wc * inp^T, where Wc (OC x IC) is w stored (OC x IC, ld OC) for IN_OUT and
 * the transpose of w stored (IC x OC, ld IC) for OUT_IN. */
static void gemm_forward(lt_gemm *g, cudaDataType_t ab, cudaDataType_t cd, void *out,
                         const void *inp, const void *w, int N, int IC, int OC,
                         shoal_wlayout layout) {
    g->ab = ab;
    g->cd = cd;
    g->m = OC;
    g->n = N;
    g->k = IC;
    g->opa = layout == SHOAL_W_IN_OUT ? CUBLAS_OP_N : CUBLAS_OP_T;
    g->a = w;
    g->lda = layout == SHOAL_W_IN_OUT ? OC : IC;
    g->opb = CUBLAS_OP_N;
    g->b = inp;
    g->ldb = IC;
    g->d = out;
    g->ldd = OC;
    g->beta = 0.0f;
    g->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
}

/* dinp^T (IC x N) += M * dout^T, M[i,o] = dL/dout-to-inp map: w^T of the forward's Wc. */
static void gemm_dinp(lt_gemm *g, cudaDataType_t ab, cudaDataType_t cd, void *dinp,
                      const void *dout, const void *w, int N, int IC, int OC,
                      shoal_wlayout layout) {
    lt_gemm z = {0};
    *g = z;
    g->ab = ab;
    g->cd = cd;
    g->m = IC;
    g->n = N;
    g->k = OC;
    g->opa = layout == SHOAL_W_IN_OUT ? CUBLAS_OP_T : CUBLAS_OP_N;
    g->a = w;
    g->lda = layout == SHOAL_W_IN_OUT ? OC : IC;
    g->opb = CUBLAS_OP_N;
    g->b = dout;
    g->ldb = OC;
    g->d = dinp;
    g->ldd = IC;
    g->beta = 1.0f;
    g->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
}

/* dw += inp^T @ dout, in w's layout. IN_OUT: dw stored (OC x IC col-major) = dout^T-stored *
 * inp^T; OUT_IN: dw stored (IC x OC) = inp-stored * dout-stored^T. */
static void gemm_dw(lt_gemm *g, cudaDataType_t ab, void *dw, const void *dout, const void *inp,
                    int N, int IC, int OC, shoal_wlayout layout) {
    lt_gemm z = {0};
    *g = z;
    g->ab = ab;
    g->cd = CUDA_R_32F;
    g->k = N;
    g->beta = 1.0f;
    g->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    g->d = dw;
    if (layout == SHOAL_W_IN_OUT) {
        g->m = OC;
        g->n = IC;
        g->opa = CUBLAS_OP_N;
        g->a = dout;
        g->lda = OC;
        g->opb = CUBLAS_OP_T;
        g->b = inp;
        g->ldb = IC;
        g->ldd = OC;
    } else {
        g->m = IC;
        g->n = OC;
        g->opa = CUBLAS_OP_N;
        g->a = inp;
        g->lda = IC;
        g->opb = CUBLAS_OP_T;
        g->b = dout;
        g->ldb = OC;
        g->ldd = IC;
    }
}

static shoal_status check_dims(const char *what, int N, int IC, int OC, shoal_wlayout layout) {
    if (N < 0 || IC < 1 || OC < 1 || (layout != SHOAL_W_IN_OUT && layout != SHOAL_W_OUT_IN)) {
        SHOAL_LOG_ERROR("%s: bad shape N=%d IC=%d OC=%d layout=%d", what, N, IC, OC, (int)layout);
        return SHOAL_ERR_INVALID_ARG;
    }
    return SHOAL_OK;
}

shoal_status shoal_matmul_forward_cuda(shoal_ctx *ctx, float *out, const float *inp, const float *w,
                                       const float *bias, int N, int IC, int OC,
                                       shoal_wlayout layout) {
    SHOAL_CHECK(check_dims("matmul_forward", N, IC, OC, layout));
    if (N == 0) return SHOAL_OK;
    lt_gemm g = {0};
    gemm_forward(&g, CUDA_R_32F, CUDA_R_32F, out, inp, w, N, IC, OC, layout);
    if (bias) {
        g.epilogue = CUBLASLT_EPILOGUE_BIAS;
        g.bias = bias;
        g.bias_type = CUDA_R_32F;
    }
    return lt_run(ctx, &g);
}

shoal_status shoal_matmul_backward_cuda(shoal_ctx *ctx, float *dinp, float *dw, float *dbias,
                                        const float *dout, const float *inp, const float *w, int N,
                                        int IC, int OC, shoal_wlayout layout) {
    SHOAL_CHECK(check_dims("matmul_backward", N, IC, OC, layout));
    if (N == 0) return SHOAL_OK;
    lt_gemm g;
    if (dinp) {
        gemm_dinp(&g, CUDA_R_32F, CUDA_R_32F, dinp, dout, w, N, IC, OC, layout);
        SHOAL_CHECK(lt_run(ctx, &g));
    }
    if (dw) {
        gemm_dw(&g, CUDA_R_32F, dw, dout, inp, N, IC, OC, layout);
        SHOAL_CHECK(lt_run(ctx, &g));
    }
    if (dbias) SHOAL_CHECK(shoal_cuda_colsum_f32(ctx, dbias, dout, N, OC));
    return SHOAL_OK;
}

shoal_status shoal_matmul_forward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *out, shoal_bf16 *pre_gelu,
                                            const shoal_bf16 *inp, const shoal_bf16 *w,
                                            const shoal_bf16 *bias, int N, int IC, int OC,
                                            shoal_wlayout layout, int gelu) {
    SHOAL_CHECK(check_dims("matmul_forward_bf16", N, IC, OC, layout));
    if (N == 0) return SHOAL_OK;
    lt_gemm g = {0};
    gemm_forward(&g, CUDA_R_16BF, CUDA_R_16BF, out, inp, w, N, IC, OC, layout);
    g.bias = bias;
    g.bias_type = CUDA_R_16BF;
    if (gelu) {
        g.aux = pre_gelu;
        if (pre_gelu)
            g.epilogue = bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
        else
            g.epilogue = bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    } else {
        g.epilogue = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    }
    return lt_run(ctx, &g);
}

shoal_status shoal_matmul_backward_bf16_cuda(shoal_ctx *ctx, shoal_bf16 *dinp, float *dw,
                                             float *dbias, const shoal_bf16 *dout,
                                             const shoal_bf16 *inp, const shoal_bf16 *w, int N,
                                             int IC, int OC, shoal_wlayout layout) {
    SHOAL_CHECK(check_dims("matmul_backward_bf16", N, IC, OC, layout));
    if (N == 0) return SHOAL_OK;
    lt_gemm g;
    if (dinp) {
        gemm_dinp(&g, CUDA_R_16BF, CUDA_R_16BF, dinp, dout, w, N, IC, OC, layout);
        SHOAL_CHECK(lt_run(ctx, &g));
    }
    if (dw) {
        gemm_dw(&g, CUDA_R_16BF, dw, dout, inp, N, IC, OC, layout);
        SHOAL_CHECK(lt_run(ctx, &g));
    }
    if (dbias) SHOAL_CHECK(shoal_cuda_colsum_bf16(ctx, dbias, dout, N, OC));
    return SHOAL_OK;
}
