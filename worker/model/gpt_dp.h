/* gpt_dp.h: per-example gradient norms and exact per-example clipping for DP-SGD on the GPT,
 * without materialising per-example gradients of the linear layers.
 *
 * What it is. After a forward with targets over (B, T), example b's loss is
 *   L_b = mean over b's counted tokens (target >= 0, mask != 0) of the token loss
 * (0 with a zero gradient when b counts no token) — what a forward of example b alone gives.
 * Two calls then replace shoal_gpt_backward:
 *  1. shoal_gpt_per_example_grad_norms: one backward pass that computes activation gradients
 *     only (no parameter gradient is written) and, layer by layer, ||∇L_b||² summed over every
 *     parameter tensor:
 *       - linear layers (c_attn, c_proj, c_fc, mlp.c_proj, the lm_head): with a the layer input
 *         (T, IC) and g the output gradient (T, OC) of one example, the weight gradient is a^T g
 *         and ||a^T g||_F² = Σ_{t,s} (a_t·a_s)(g_t·g_s) ("ghost norm", Goodfellow 2015; Li et
 *         al. 2021): two T×T Gram matrices, cost T²(IC+OC); or a^T g materialised (T·IC·OC)
 *         when that is cheaper (mixed ghost clipping, Bu, Mao, Xu 2022); in AUTO mode, when
 *         every linear layer's per-example gradients fit in SHOAL_MAX_DP_KEEP_FLOATS, all are
 *         materialised and kept for call 2; bias gradients Σ_t g_t exactly;
 *       - layernorm weights and biases: Σ_t dout_t∘x̂_t and Σ_t dout_t exactly;
 *       - wpe: one row per position, so Σ_t ||dx_t||²;
 *       - wte, tied to the lm_head: its gradient is the SUM of the embedding part E (rows
 *         Σ_{t: tok_t = v} dx_t) and the head part H = dlogits^T lnf, so
 *         ||E + H||² = ||E||² + ||H||² + 2<E, H> with ||E||² = Σ_{t,s: tok_t = tok_s} dx_t·dx_s
 *         and <E, H> = Σ_t Σ_s dlogits[s, tok_t] (lnf_s·dx_t), all exact.
 *  2. shoal_gpt_dp_backward_weighted: ADDS Σ_b factors[b]·∇L_b to the gradient buffer, from
 *     what call 1 left (book-keeping, Bu et al. 2022): kept per-example weight gradients are
 *     summed with the factors; for the other layers the stored per-example output gradients
 *     are scaled by the factors and one GEMM per layer forms the weight gradient.
 *
 * What must be valid, and when: call 1 needs the activations of the last shoal_gpt_forward
 * with targets (encoded, ln1/ln2/lnf with their mean/rstd, qkv, att, atty, res2, res3, fch,
 * logits, lse; tokens, targets, mask), and consumes it as shoal_gpt_backward would (a plain
 * backward after it is refused). Call 1 overwrites the logits buffer with the per-example
 * dlogits, which call 2 reads; call 2 is valid once per call 1, until the next forward (or
 * decode/generate, which run a forward). Both use the model's scratch only.
 *
 * Why shaped so: norms need, per layer, a per-example input and output gradient that the
 * batched backward already computes; walking the layers here (the same op sequence as
 * gpt.c's backward) lets the first pass skip every weight-gradient GEMM, so DP-SGD costs a
 * forward and ~1.5 backwards instead of B backwards. CPU contexts only (the Gram reductions
 * read activations on the host): other backends get UNSUPPORTED.
 *
 * Tested by tests/dp/test_gpt_dp.c: norms and the clipped sum against B separate
 * one-example forward/backward passes on the tiny fixture model (loss mask, ignored targets,
 * repeated tokens, both ghost and materialised linear norms), to 1e-5 relative.
 */
#ifndef SHOAL_WORKER_MODEL_GPT_DP_H
#define SHOAL_WORKER_MODEL_GPT_DP_H

#include "common/status.h"
#include "worker/model/gpt.h"

typedef enum {
    SHOAL_GPT_NORM_AUTO = 0,       /* per layer, the cheaper of ghost and materialised */
    SHOAL_GPT_NORM_GHOST = 1,      /* always Gram matrices (tests) */
    SHOAL_GPT_NORM_MATERIALISE = 2 /* always a^T g per example (tests) */
} shoal_gpt_norm_mode;

/* norms[b] = ||∇L_b|| (L2 over all parameters, the tied wte counted once with both of its
 * contributions) for the B examples of the last forward with targets. Writes no parameter
 * gradient. INVALID_ARG without such a forward, when it was already consumed, or when
 * m/norms is NULL; UNSUPPORTED on a non-CPU context; NOMEM. */
shoal_status shoal_gpt_per_example_grad_norms(shoal_gpt *m, double *norms);
shoal_status shoal_gpt_per_example_grad_norms_ex(shoal_gpt *m, shoal_gpt_norm_mode mode,
                                                 double *norms);

/* After shoal_gpt_per_example_grad_norms: grads += Σ_b factors[b]·∇L_b (factors: B finite
 * values, usually the clip factors min(1, C/norms[b]) of privacy/clip.h). INVALID_ARG when
 * no norms pass precedes it for the current forward, or on a non-finite factor. */
shoal_status shoal_gpt_dp_backward_weighted(shoal_gpt *m, const float *factors);

#endif
