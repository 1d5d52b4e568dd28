/* guarded_ctx.c: TEST ONLY: the guarded CPU table of guarded_ctx.h.
 *
 * Buffers are whole pages from mmap (zeroed), registered in a small table; open_all() makes
 * every registered buffer PROT_READ|PROT_WRITE, close_all() PROT_NONE again. Entries nest (an
 * op may call another through the table: shoal_grad_clip), so only the outermost closes.
 * Tested by tests/model/test_gpt_guarded.c.
 */
#include "guarded_ctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>


enum { MAX_REGIONS = 256 };
static struct {
    void *p;
    size_t len;
} regions[MAX_REGIONS];
static int depth;
static long calls;

static size_t page_round(size_t n) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return (n + pg - 1) / pg * pg;
}

static void protect_all(int prot) {
    for (int i = 0; i < MAX_REGIONS; i++) {
        if (regions[i].p && mprotect(regions[i].p, regions[i].len, prot) != 0) {
            perror("guarded_ctx: mprotect");
            abort(); /* test harness: a broken guard must not pass silently */
        }
    }
}

static void open_all(void) {
    calls++;
    if (depth++ == 0) protect_all(PROT_READ | PROT_WRITE);
}

static void close_all(void) {
    if (--depth == 0) protect_all(PROT_NONE);
}

int test_guarded_live(void) {
    int n = 0;
    for (int i = 0; i < MAX_REGIONS; i++) n += regions[i].p != NULL;
    return n;
}

long test_guarded_calls(void) { return calls; }

static shoal_status g_alloc(shoal_ctx *ctx, void **out, size_t bytes) {
    (void)ctx;
    *out = NULL;
    int slot = -1;
    for (int i = 0; i < MAX_REGIONS && slot < 0; i++)
        if (!regions[i].p) slot = i;
    if (slot < 0) return SHOAL_ERR_NOMEM;
    size_t len = page_round(bytes);
    void *p = mmap(NULL, len, depth > 0 ? PROT_READ | PROT_WRITE : PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return SHOAL_ERR_NOMEM;
    regions[slot].p = p;
    regions[slot].len = len;
    *out = p;
    return SHOAL_OK;
}

static void g_free(shoal_ctx *ctx, void *p) {
    (void)ctx;
    if (!p) return;
    for (int i = 0; i < MAX_REGIONS; i++) {
        if (regions[i].p == p) {
            munmap(p, regions[i].len);
            regions[i].p = NULL;
            regions[i].len = 0;
            return;
        }
    }
    fprintf(stderr, "guarded_ctx: free of %p, which this table did not allocate\n", p);
    abort();
}

static shoal_status g_copy(shoal_ctx *ctx, void *dst, const void *src, size_t bytes) {
    (void)ctx;
    open_all();
    memmove(dst, src, bytes);
    close_all();
    return SHOAL_OK;
}

#define CPU (shoal_kernels_cpu())
#define WRAP(op, params, args)                                                                     \
    static shoal_status g_##op params {                                                            \
        open_all();                                                                                \
        shoal_status st = CPU->op args;                                                            \
        close_all();                                                                               \
        return st;                                                                                 \
    }

WRAP(encoder_forward,
     (shoal_ctx * ctx, float *out, const int32_t *tokens, const float *wte, const float *wpe, int B,
      int T, int C, int pos0),
     (ctx, out, tokens, wte, wpe, B, T, C, pos0))
WRAP(encoder_backward,
     (shoal_ctx * ctx, float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int B,
      int T, int C),
     (ctx, dwte, dwpe, dout, tokens, B, T, C))
WRAP(layernorm_forward,
     (shoal_ctx * ctx, float *out, float *mean, float *rstd, const float *inp, const float *w,
      const float *b, int N, int C, float eps),
     (ctx, out, mean, rstd, inp, w, b, N, C, eps))
WRAP(layernorm_backward,
     (shoal_ctx * ctx, float *dinp, float *dw, float *db, const float *dout, const float *inp,
      const float *w, const float *mean, const float *rstd, int N, int C),
     (ctx, dinp, dw, db, dout, inp, w, mean, rstd, N, C))
WRAP(matmul_forward,
     (shoal_ctx * ctx, float *out, const float *inp, const float *w, const float *bias, int N,
      int IC, int OC, shoal_wlayout layout),
     (ctx, out, inp, w, bias, N, IC, OC, layout))
WRAP(matmul_backward,
     (shoal_ctx * ctx, float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
      const float *w, int N, int IC, int OC, shoal_wlayout layout),
     (ctx, dinp, dw, dbias, dout, inp, w, N, IC, OC, layout))
WRAP(attention_forward,
     (shoal_ctx * ctx, float *out, float *att, const float *qkv, int B, int T, int C, int NH),
     (ctx, out, att, qkv, B, T, C, NH))
WRAP(attention_backward,
     (shoal_ctx * ctx, float *dqkv, const float *dout, const float *qkv, const float *att, int B,
      int T, int C, int NH),
     (ctx, dqkv, dout, qkv, att, B, T, C, NH))
WRAP(attention_decode,
     (shoal_ctx * ctx, float *out, float *kcache, float *vcache, const float *qkv, int pos,
      int Tmax, int B, int C, int NH),
     (ctx, out, kcache, vcache, qkv, pos, Tmax, B, C, NH))
WRAP(gelu_forward, (shoal_ctx * ctx, float *out, const float *inp, size_t n), (ctx, out, inp, n))
WRAP(gelu_backward, (shoal_ctx * ctx, float *dinp, const float *dout, const float *inp, size_t n),
     (ctx, dinp, dout, inp, n))
WRAP(residual_forward, (shoal_ctx * ctx, float *out, const float *a, const float *b, size_t n),
     (ctx, out, a, b, n))
WRAP(residual_backward, (shoal_ctx * ctx, float *da, float *db, const float *dout, size_t n),
     (ctx, da, db, dout, n))
WRAP(crossentropy_forward,
     (shoal_ctx * ctx, float *losses, float *lse, const float *logits, const int32_t *targets,
      int N, int V),
     (ctx, losses, lse, logits, targets, N, V))
WRAP(crossentropy_backward,
     (shoal_ctx * ctx, float *dlogits, const float *logits, const float *lse,
      const int32_t *targets, const uint8_t *mask, float scale, int N, int V),
     (ctx, dlogits, logits, lse, targets, mask, scale, N, V))
WRAP(adamw_update,
     (shoal_ctx * ctx, float *params, const float *grads, float *m, float *v, size_t n, float lr,
      float beta1, float beta2, float eps, float weight_decay, int step, float grad_scale),
     (ctx, params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale))
WRAP(norm_sq, (shoal_ctx * ctx, const float *x, size_t n, double *out), (ctx, x, n, out))
WRAP(scale, (shoal_ctx * ctx, float *x, size_t n, float s), (ctx, x, n, s))
WRAP(zero, (shoal_ctx * ctx, void *p, size_t bytes), (ctx, p, bytes))

static const shoal_kernels guarded_table = {
    .name = "cpu-guarded",
    .encoder_forward = g_encoder_forward,
    .encoder_backward = g_encoder_backward,
    .layernorm_forward = g_layernorm_forward,
    .layernorm_backward = g_layernorm_backward,
    .matmul_forward = g_matmul_forward,
    .matmul_backward = g_matmul_backward,
    .attention_forward = g_attention_forward,
    .attention_backward = g_attention_backward,
    .attention_decode = g_attention_decode,
    .gelu_forward = g_gelu_forward,
    .gelu_backward = g_gelu_backward,
    .residual_forward = g_residual_forward,
    .residual_backward = g_residual_backward,
    .crossentropy_forward = g_crossentropy_forward,
    .crossentropy_backward = g_crossentropy_backward,
    .adamw_update = g_adamw_update,
    .norm_sq = g_norm_sq,
    .scale = g_scale,
    .zero = g_zero,
    .mem_alloc = g_alloc,
    .mem_free = g_free,
    .copy_h2d = g_copy,
    .copy_d2h = g_copy,
    .copy_d2d = g_copy,
    .host_visible = 0,
};

shoal_status test_guarded_ctx_init(shoal_ctx *ctx, int n_threads) {
    shoal_status st = shoal_ctx_init_cpu(ctx, n_threads);
    if (st == SHOAL_OK) ctx->k = &guarded_table;
    return st;
}
