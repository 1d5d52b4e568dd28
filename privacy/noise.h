/* noise.h: Gaussian noise for DP that is not open to the floating-point attack.
 *
 * What it is: integer-valued Gaussian noise on a fine grid, from the CSPRNG of rng.h, in two
 * modes, and helpers that add it to a float vector (a clipped gradient sum, an aggregate).
 *   EXACT: the discrete Gaussian N_Z(0, s²) sampled exactly with the algorithm of Canonne,
 *     Kamath, Steinke 2020 ("The Discrete Gaussian for Differential Privacy", NeurIPS,
 *     arXiv:2004.00010, Algorithms 1-3): Bernoulli(exp(-γ)) for rational γ, a discrete
 *     Laplace proposal and rejection, all in integer arithmetic (128-bit where needed).
 *   FAST: round(s·Z) with Z from the ziggurat method (Marsaglia & Tsang 2000, Doornik's
 *     ZIGNOR layout) and Marsaglia's exact tail method over uniforms that keep 53 bits of
 *     relative precision down to 2^-1074 (tails reach ~38 s); integer output.
 * The security argument of both, and their limits, are in docs/privacy.md.
 *
 * Why shaped so: Mironov 2012 ("On significance of the least significant bits for
 * differential privacy", CCS) showed that textbook float samplers leak the data through the
 * low bits of f(D) + noise. Here the noise is an integer K drawn without looking at the data
 * and the data is rounded to the grid before K is added in exact integer arithmetic, so the
 * released value is a post-processing of round(f(D)/γ) + K; nothing data-dependent happens
 * in floating point after the noise is drawn.
 *
 * Grid: noise std in grid units is s = 2^SHOAL_DP_GRID_BITS, so the grid step is
 * γ = stddev / 2^24. Rounding the data to that grid can move two neighbouring sums apart by up
 * to γ·sqrt(d) more than the clip norm C; shoal_dp_effective_noise_multiplier() gives the σ
 * the accountant must use to cover that (a relative change of sqrt(d)·σ·2^-24: 7e-4 for
 * GPT-2's 124M parameters at σ = 1).
 *
 * Tested by tests/privacy/test_noise.c: fixed-seed moments, Kolmogorov-Smirnov against the
 * normal CDF, tail frequencies, exact pmf of the discrete Gaussian at small s (chi-square).
 */
#ifndef SHOAL_PRIVACY_NOISE_H
#define SHOAL_PRIVACY_NOISE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "privacy/rng.h"

typedef enum { SHOAL_DP_NOISE_EXACT = 0, SHOAL_DP_NOISE_FAST = 1 } shoal_dp_noise_mode;

#define SHOAL_DP_GRID_BITS 24
/* Largest integer std the samplers accept: keeps (|Y|·t - s²)² of the exact sampler in 128
 * bits with a wide margin. */
#define SHOAL_DP_MAX_SIGMA_INT (1u << 26)

/* Parse "exact" / "fast"; INVALID_ARG otherwise. */
shoal_status shoal_dp_noise_mode_parse(const char *s, shoal_dp_noise_mode *out);
const char *shoal_dp_noise_mode_name(shoal_dp_noise_mode m);

/* n integer samples with std sigma_int (1 .. SHOAL_DP_MAX_SIGMA_INT) into out[n]: the
 * discrete Gaussian exactly (EXACT), or the rounded continuous Gaussian (FAST). Cannot fail
 * past argument checks. */
shoal_status shoal_dp_gaussian_int(shoal_dp_rng *r, shoal_dp_noise_mode mode, uint32_t sigma_int,
                                   int64_t *out, size_t n);

/* n real samples with the given std (> 0, finite) into out[n]: γ·K with γ = stddev/2^24 and K
 * from shoal_dp_gaussian_int(2^24). */
shoal_status shoal_dp_gaussian(shoal_dp_rng *r, shoal_dp_noise_mode mode, double stddev,
                               double *out, size_t n);

/* x[i] <- γ·(round(x[i]/γ) + K_i), K_i integer Gaussian with std 2^24, γ = stddev/2^24: the
 * noise step of DP-SGD (stddev = σ·C) and of federated aggregation. INVALID_ARG on a
 * non-finite x[i] or bad stddev, LIMIT when |x[i]|/γ >= 2^62; x is unchanged on error
 * (checked before any noise is drawn). Blocks only for CPU time (~n / 20M s in FAST mode). */
shoal_status shoal_dp_add_noise(shoal_dp_rng *r, shoal_dp_noise_mode mode, double stddev, float *x,
                                size_t n);

/* The same noise step with K drawn beforehand: x[i] <- γ·(round(x[i]/γ) + k[i]), k[i] from
 * shoal_dp_gaussian_int(.., 2^SHOAL_DP_GRID_BITS, ..), γ = stddev/2^24. Lets a caller draw
 * the noise (which does not depend on the data) while the data is being computed; the caller
 * must use each draw once, for one release. Same errors as shoal_dp_add_noise; x unchanged on
 * error. */
shoal_status shoal_dp_add_noise_drawn(double stddev, const int64_t *k, float *x, size_t n);

/* The noise multiplier the accountant must use when a d-dimensional sum with clip norm C gets
 * noise of std sigma·C through shoal_dp_add_noise: sigma / (1 + sigma·sqrt(d)·2^-24),
 * covering the grid rounding of the data (see above). */
double shoal_dp_effective_noise_multiplier(double sigma, uint64_t d);

/* Upper bound on the ε to add, per step, to what the accountant reports, for the distance
 * between this sampler's K and the rounded continuous Gaussian round(s·Z) that the
 * accountant analyses (rounding is post-processing of the continuous Gaussian on grid-valued
 * data, so the MTZ19 subsampled-Gaussian RDP applies to it exactly). d is the dimension,
 * sigma the noise multiplier (noise std / L2 sensitivity). Derivations in docs/privacy.md,
 * "The sampler":
 *   EXACT: the discrete/rounded pmf ratio is 1 - (z²-1)/(24 s²) + O(s^-4) (Euler-Maclaurin),
 *          smooth in z, so between neighbours it moves the privacy loss by at most
 *          (2·||z||·||Δ|| + ||Δ||²)/(24 s²) with ||Δ|| <= 1/sigma in sd units and
 *          ||z|| <= sqrt(d) + 10 except with probability e^-50 (a δ term); doubled for the
 *          higher-order terms. ~7e-12 per step for GPT-2 at sigma = 1.
 *   FAST:  each cell's probability is off by a relative η <= 2^-26 (53-bit ziggurat abscissa,
 *          ~2^28/3.7 representable values per cell), not smoothly: 2·d·η per step.
 * Multiply by the number of steps for a run. */
double shoal_dp_noise_epsilon_slack(shoal_dp_noise_mode mode, uint64_t d, double sigma);

#endif
