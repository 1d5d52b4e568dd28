/* clip.h: L2 norms and clipping for DP-SGD and federated updates.
 *
 * What it is: a numerically safe L2 norm of a float vector of any length, in-place clipping
 * to a maximum norm, and the per-example helpers a DP-SGD trainer calls: clip factors from
 * per-example norms (computed by ghost norms or book-keeping elsewhere), clipping of
 * materialised per-example gradients, and clip-and-sum.
 *
 * Why shaped so: squares of floats are accumulated in double, which cannot overflow or
 * underflow for any float input (FLT_MAX² ≈ 1.2e77, and 2^40 of them stay far below
 * DBL_MAX; the smallest subnormal float squared ≈ 2e-90 is a normal double), so no scaling
 * pass is needed; summation is pairwise over blocks (error O(log n · 2^-53) instead of
 * O(n · 2^-53)). A non-finite input is an error, never a NaN clip factor. The clip factor
 * carries a 2^-22 relative safety margin, so that after rounding to float the clipped vector's
 * norm is <= C, which is what the sensitivity analysis assumes.
 *
 * Tested by tests/privacy/test_clip.c (against a long-double reference, huge and tiny values,
 * zero norm, all/none clipped, per-example helpers).
 */
#ifndef SHOAL_PRIVACY_CLIP_H
#define SHOAL_PRIVACY_CLIP_H

#include <stddef.h>

#include "common/status.h"

/* Relative margin kept below C when clipping (see above). */
#define SHOAL_DP_CLIP_MARGIN 0x1p-22

/* ||x||_2 of x[n] into *norm. INVALID_ARG (naming the index) on a NaN or infinite element. */
shoal_status shoal_dp_l2_norm(const float *x, size_t n, double *norm);

/* Scale x[n] in place so that ||x|| <= max_norm (> 0); vectors already within it are left
 * bit-for-bit unchanged, a zero vector stays zero. *norm_before and *clipped may be NULL. */
shoal_status shoal_dp_clip_l2(float *x, size_t n, double max_norm, double *norm_before,
                              int *clipped);

/* factors[b] = min(1, max_norm / norms[b]) (with the margin), 1 for a zero norm: the scale
 * each example's gradient gets before summation. norms must be finite and >= 0.
 * *n_clipped (may be NULL) counts factors < 1. */
shoal_status shoal_dp_clip_factors(const double *norms, size_t batch, double max_norm,
                                   float *factors, size_t *n_clipped);

/* Clip each row of g (batch, dim) in place; norms[batch] (may be NULL) gets the norms before
 * clipping, *n_clipped (may be NULL) the number of rows scaled down. */
shoal_status shoal_dp_clip_rows(float *g, size_t batch, size_t dim, double max_norm, double *norms,
                                size_t *n_clipped);

/* sum[dim] += Σ_b clip(g[b, :]) without modifying g (batch, dim): brute-force per-example
 * clipping, the reference the ghost-norm path is tested against. */
shoal_status shoal_dp_clip_sum(const float *g, size_t batch, size_t dim, double max_norm,
                               float *sum, size_t *n_clipped);

#endif
