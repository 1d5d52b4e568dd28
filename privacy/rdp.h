/* rdp.h: Rényi-DP of the Poisson-subsampled Gaussian mechanism and its conversion to (ε, δ).
 *
 * What it is: the pure functions behind the accountant (privacy/accountant.h) and
 * `shoal privacy epsilon|noise`. RDP at order α of one step of DP-SGD with sampling rate q and
 * noise multiplier σ is log(A_α)/(α-1) (Mironov, Talwar, Zhang 2019, "Rényi Differential
 * Privacy of the Sampled Gaussian Mechanism", arXiv:1908.10530, Sec. 3.3): a finite binomial
 * sum for integer α (exact), an infinite series of erfc terms for fractional α. Composition
 * over steps is additive in RDP (Mironov 2017, Prop. 1). The conversion to (ε, δ) is the
 * tighter one of Balle et al. 2020 ("Hypothesis testing interpretations and Rényi DP",
 * arXiv:1905.09982, Thm. 21) as stated in Canonne, Kamath, Steinke 2020 (arXiv:2004.00010,
 * Prop. 12): ε = r + log1p(-1/α) - log(δ·α)/(α-1), minimised over the order grid.
 *
 * Why shaped so: everything is computed in log space (log-sum-exp, log_erfc with an
 * asymptotic tail) so that orders up to 1024, q down to 1e-12 and q = 1 neither overflow nor
 * cancel. The fractional-order series has two conventions in the wild; both are here so the
 * published vectors of both can be matched (see shoal_dp_series). Pure functions, no state,
 * thread-safe (lgamma_r, no signgam).
 *
 * Tested by tests/privacy/test_rdp.c (published vectors of dp_accounting, TF-Privacy, Opacus,
 * Abadi et al. 2016; monotonicity and ε↔δ round-trip properties).
 */
#ifndef SHOAL_PRIVACY_RDP_H
#define SHOAL_PRIVACY_RDP_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* How the fractional-order series of Mironov-Talwar-Zhang is summed.
 * MAGNITUDE (default): dp_accounting's convention (google/differential-privacy,
 *   python/dp_accounting/dp_accounting/rdp/rdp_privacy_accountant.py, _compute_log_a_frac):
 *   every term is added with the magnitude of its binomial coefficient, which can only
 *   over-estimate A_α, so the RDP is a conservative upper bound (up to the dropped tail,
 *   < e^-30 of the total); the loop stops once both halves decrease and are 30 nats below
 *   the running total, or gives up (order excluded, RDP = +inf) after 1000 terms.
 * SIGNED: Opacus / legacy TF-Privacy convention (opacus/accountants/analysis/rdp.py): terms
 *   are added or subtracted with the sign of binom(α, i) and the loop stops when both terms
 *   are below e^-30 in absolute terms. Closer to the true value, not a guaranteed bound; kept
 *   to reproduce Opacus' published numbers. Integer orders are identical in both. */
typedef enum { SHOAL_DP_SERIES_MAGNITUDE = 0, SHOAL_DP_SERIES_SIGNED = 1 } shoal_dp_series;

/* Largest noise multiplier accepted anywhere: beyond it ε is 0 to double precision for any
 * practical plan, and σ² stays far from overflow in the series. */
#define SHOAL_DP_MAX_SIGMA 1e6

/* The default order grid, dp_accounting's DEFAULT_RDP_ORDERS: 1.1, 1.2, ..., 10.9, 11, ...,
 * 63, 128, 256, 512, 1024 (156 orders). *orders points at static storage. */
size_t shoal_dp_default_orders(const double **orders);

/* RDP of one step of the Poisson-subsampled Gaussian at each of n orders (> 1) into rdp[n].
 * q in [0, 1], sigma in [0, SHOAL_DP_MAX_SIGMA] (noise std over L2 sensitivity). q = 0 gives 0;
 * sigma = 0 or an infinite order gives +inf; q = 1 gives α/(2σ²) (plain Gaussian, Mironov 2017
 * Prop. 7). An order whose series does not converge gets +inf (it is then never the optimum).
 * INVALID_ARG on out-of-range q, sigma, an order <= 1 or NaN. */
shoal_status shoal_dp_rdp_subsampled_gaussian(double q, double sigma, const double *orders,
                                              size_t n, shoal_dp_series series, double *rdp);

/* Smallest ε over the orders for the given δ in (0, 1); *opt_order gets the minimising order
 * (may be NULL). δ = 0 gives ε = 0 if every RDP is 0, +inf otherwise (order 0). An order
 * whose RDP is +inf is skipped; ε = +inf when all are. Mirrors dp_accounting's
 * compute_epsilon, including its KL shortcut (ε = 0 when δ² > 1 - e^-r) and α > 1.01. */
shoal_status shoal_dp_rdp_to_epsilon(const double *orders, const double *rdp, size_t n,
                                     double delta, double *eps, double *opt_order);

/* Smallest δ over the orders for the given ε >= 0 (CKS 2020 Prop. 12, and the KL bound
 * δ <= sqrt(1 - e^-r)); mirrors dp_accounting's compute_delta. δ is capped at 1. */
shoal_status shoal_dp_rdp_to_delta(const double *orders, const double *rdp, size_t n, double eps,
                                   double *delta, double *opt_order);

/* ε after `steps` steps at (q, sigma) with the default orders and MAGNITUDE series. */
shoal_status shoal_dp_epsilon(double q, double sigma, uint64_t steps, double delta, double *eps,
                              double *opt_order);

/* The smallest noise multiplier σ (to relative precision 1e-10) whose ε after `steps` steps at
 * rate q is <= target_eps at δ; the returned σ always meets the target (bisection keeps the
 * feasible end). Default orders, MAGNITUDE series. INVALID_ARG on bad input; LIMIT when no
 * σ <= 1e6 reaches the target (e.g. a target ε of 1e-9). */
shoal_status shoal_dp_noise_for_epsilon(double target_eps, double q, uint64_t steps, double delta,
                                        double *sigma);

#endif
