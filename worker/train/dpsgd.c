/* dpsgd.c: the DP-SGD step (dpsgd.h): Poisson sampler, micro-batched ghost clipping, threaded
 * secure noise, scaling by the expected batch size, accountant.
 *
 * Noise is drawn on noise_threads generators, each over a contiguous slice of the gradient,
 * so a run's noise is one draw of independent per-coordinate samples whatever the split; in
 * test mode generator i is seeded with test_seed + i. When drawing ahead (noise_draw AHEAD, or
 * AUTO with a spare CPU per drawing thread; never for models over SHOAL_MAX_DP_PREDRAW_PARAMS),
 * each step starts those draws on threads of their own before its forward pass and adds them
 * once the clipped sum is ready: the noise does not depend on the data, the draw is fresh for
 * every step and used once (then wiped), and the samples are the same as drawing afterwards,
 * so only the wall time changes. The sampler's
 * geometric gaps use a 53-bit CSPRNG uniform; the rounding of log() moves each inclusion
 * probability by a relative ~1e-16, far below anything the accountant resolves. Tested by
 * tests/dp/test_dpsgd.c.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#define SHOAL_LOG_SUBSYS "dpsgd"
#include "worker/train/dpsgd.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/limits.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "privacy/clip.h"
#include "privacy/rdp.h"
#include "privacy/rng.h"
#include "worker/model/gpt_dp.h"

/* One generator's share of a step's noise, drawn on a thread of its own. */
struct noise_job {
    shoal_dp_rng *rng;
    shoal_dp_noise_mode mode;
    int64_t *k;
    size_t n;
    shoal_status st;
};

struct shoal_dpsgd {
    shoal_dpsgd_config cfg;
    uint64_t d; /* parameters */
    double sigma_eff;
    shoal_dp_accountant *acct;
    shoal_dp_rng **rngs; /* cfg.noise_threads generators; rngs[0] also samples batches */
    int drawn;           /* a batch was drawn and not yet used by a step */
    size_t drawn_n;
    int not_poisson;        /* some step used a batch that was not drawn here */
    uint64_t steps;         /* steps of this object (the accountant may hold more, resumed) */
    int64_t *pre;           /* (d) noise drawn ahead for the current step, or NULL: drawn after */
    pthread_t *tids;        /* (noise_threads) drawing threads of the current step */
    struct noise_job *jobs; /* (noise_threads) */
    double *norms;          /* (micro_batch) */
    float *factors;         /* (micro_batch) */
};

void shoal_dpsgd_config_default(shoal_dpsgd_config *c) {
    memset(c, 0, sizeof *c);
    c->clip = 1.0;
    c->noise = 1.0;
    c->sample_rate = 0.01;
    c->n_examples = 1;
    c->delta = 1e-5;
    c->noise_mode = SHOAL_DP_NOISE_EXACT;
    c->micro_batch = 8;
}

/* CPUs this process may run on (its affinity mask, which Slurm and taskset narrow), else the
 * online count. */
static int usable_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static shoal_status check_config(const shoal_dpsgd_config *c) {
    SHOAL_REQUIRE(c->noise_draw == SHOAL_DP_DRAW_AUTO || c->noise_draw == SHOAL_DP_DRAW_AFTER ||
                      c->noise_draw == SHOAL_DP_DRAW_AHEAD,
                  SHOAL_ERR_INVALID_ARG, "dp-sgd: noise_draw %d is not AUTO, AFTER or AHEAD",
                  (int)c->noise_draw);
    SHOAL_REQUIRE(isfinite(c->clip) && c->clip > 0, SHOAL_ERR_INVALID_ARG,
                  "dp-sgd: clip norm C=%g must be finite and > 0", c->clip);
    SHOAL_REQUIRE(isfinite(c->noise) && c->noise > 0 && c->noise <= SHOAL_DP_MAX_SIGMA,
                  SHOAL_ERR_INVALID_ARG, "dp-sgd: noise multiplier %g must be in (0, %g]", c->noise,
                  SHOAL_DP_MAX_SIGMA);
    SHOAL_REQUIRE(c->sample_rate > 0 && c->sample_rate <= 1, SHOAL_ERR_INVALID_ARG,
                  "dp-sgd: sample rate q=%g must be in (0, 1]", c->sample_rate);
    SHOAL_REQUIRE(c->n_examples >= 1 && c->n_examples <= ((uint64_t)1 << 53), SHOAL_ERR_INVALID_ARG,
                  "dp-sgd: %llu training examples (need 1 .. 2^53)",
                  (unsigned long long)c->n_examples);
    SHOAL_REQUIRE(c->delta > 0 && c->delta < 1, SHOAL_ERR_INVALID_ARG,
                  "dp-sgd: delta=%g must be in (0, 1)", c->delta);
    SHOAL_REQUIRE(c->noise_mode == SHOAL_DP_NOISE_EXACT || c->noise_mode == SHOAL_DP_NOISE_FAST,
                  SHOAL_ERR_INVALID_ARG, "dp-sgd: unknown noise mode %d", (int)c->noise_mode);
    SHOAL_REQUIRE(c->micro_batch >= 1 && c->micro_batch <= SHOAL_MAX_DP_MICRO_BATCH,
                  SHOAL_ERR_INVALID_ARG, "dp-sgd: micro batch %d must be in [1, %d]",
                  c->micro_batch, SHOAL_MAX_DP_MICRO_BATCH);
    SHOAL_REQUIRE(c->noise_threads <= SHOAL_MAX_DP_NOISE_THREADS, SHOAL_ERR_INVALID_ARG,
                  "dp-sgd: %d noise threads (at most %d)", c->noise_threads,
                  SHOAL_MAX_DP_NOISE_THREADS);
    return SHOAL_OK;
}

shoal_status shoal_dpsgd_init(const shoal_dpsgd_config *cfg, const shoal_gpt *m,
                              shoal_dp_accountant *acct, shoal_dpsgd **out) {
    shoal_status st = SHOAL_OK;
    shoal_dpsgd *dp = NULL;
    SHOAL_REQUIRE_GOTO(cfg && m && out, SHOAL_ERR_INVALID_ARG, "shoal_dpsgd_init: NULL argument");
    *out = NULL;
    SHOAL_CHECK_GOTO(check_config(cfg));
    dp = calloc(1, sizeof *dp);
    SHOAL_REQUIRE_GOTO(dp != NULL, SHOAL_ERR_NOMEM, "dp-sgd: out of memory");
    dp->cfg = *cfg;
    if (dp->cfg.noise_threads <= 0) {
        dp->cfg.noise_threads = shoal_gpt_ctx((shoal_gpt *)m)->n_threads;
        if (dp->cfg.noise_threads < 1) dp->cfg.noise_threads = 1;
        if (dp->cfg.noise_threads > SHOAL_MAX_DP_NOISE_THREADS)
            dp->cfg.noise_threads = SHOAL_MAX_DP_NOISE_THREADS;
    }
    dp->d = shoal_gpt_num_params(m);
    dp->sigma_eff = shoal_dp_effective_noise_multiplier(cfg->noise, dp->d);
    dp->acct = acct;
    acct = NULL;
    if (!dp->acct)
        SHOAL_CHECK_GOTO(shoal_dp_accountant_init(&dp->acct, NULL, 0, SHOAL_DP_SERIES_MAGNITUDE));
    dp->rngs = calloc((size_t)dp->cfg.noise_threads, sizeof *dp->rngs);
    dp->norms = calloc((size_t)cfg->micro_batch, sizeof *dp->norms);
    dp->factors = calloc((size_t)cfg->micro_batch, sizeof *dp->factors);
    dp->tids = calloc((size_t)dp->cfg.noise_threads, sizeof *dp->tids);
    dp->jobs = calloc((size_t)dp->cfg.noise_threads, sizeof *dp->jobs);
    int model_threads = shoal_gpt_ctx((shoal_gpt *)m)->n_threads;
    int ahead = dp->d <= SHOAL_MAX_DP_PREDRAW_PARAMS &&
                (cfg->noise_draw == SHOAL_DP_DRAW_AHEAD ||
                 (cfg->noise_draw == SHOAL_DP_DRAW_AUTO &&
                  usable_cpus() >= model_threads + dp->cfg.noise_threads));
    if (ahead) dp->pre = malloc((size_t)dp->d * sizeof *dp->pre);
    SHOAL_REQUIRE_GOTO(dp->rngs && dp->norms && dp->factors && dp->tids && dp->jobs &&
                           (dp->pre || !ahead),
                       SHOAL_ERR_NOMEM, "dp-sgd: out of memory");
    SHOAL_LOG_INFO("dp-sgd on %d model thread(s), noise drawn %s on %d thread(s)", model_threads,
                   ahead ? "ahead" : "after the clipping pass", dp->cfg.noise_threads);
    for (int i = 0; i < dp->cfg.noise_threads; i++) {
        if (cfg->test_seed)
            SHOAL_CHECK_GOTO(shoal_dp_rng_init_deterministic(&dp->rngs[i], cfg->test_seed + i));
        else
            SHOAL_CHECK_GOTO(shoal_dp_rng_init(&dp->rngs[i]));
    }
    if (cfg->test_seed) SHOAL_LOG_WARN("dp-sgd: deterministic test generators: NOT private");
    *out = dp;
    return SHOAL_OK;
cleanup:
    shoal_dp_accountant_free(acct);
    shoal_dpsgd_free(dp);
    return st;
}

int shoal_dpsgd_draws_ahead(const shoal_dpsgd *dp) {
    return dp && dp->pre != NULL;
}

void shoal_dpsgd_free(shoal_dpsgd *dp) {
    if (!dp) return;
    if (dp->rngs)
        for (int i = 0; i < dp->cfg.noise_threads; i++)
            shoal_dp_rng_free(dp->rngs[i]);
    free(dp->rngs);
    if (dp->pre) memset(dp->pre, 0, (size_t)dp->d * sizeof *dp->pre); /* noise is secret */
    free(dp->pre);
    free(dp->tids);
    free(dp->jobs);
    free(dp->norms);
    free(dp->factors);
    shoal_dp_accountant_free(dp->acct);
    free(dp);
}

shoal_status shoal_dpsgd_sample(shoal_dpsgd *dp, uint64_t *idx, size_t cap, size_t *n) {
    SHOAL_REQUIRE(dp && n && (idx || cap == 0), SHOAL_ERR_INVALID_ARG,
                  "shoal_dpsgd_sample: NULL argument");
    *n = 0;
    dp->drawn = 0;
    uint64_t N = dp->cfg.n_examples;
    double q = dp->cfg.sample_rate, log1mq = log1p(-q);
    size_t k = 0;
    uint64_t i = 0;
    for (;;) {
        uint64_t gap = 0;
        if (q < 1.0) {
            double u = ((double)(shoal_dp_rng_u64(dp->rngs[0]) >> 11) + 1.0) * 0x1.0p-53;
            double g = floor(log(u) / log1mq); /* P(gap >= j) = (1-q)^j */
            if (!(g < (double)N)) break;       /* past the end (also catches +inf) */
            gap = (uint64_t)g;
        }
        if (gap >= N - i) break;
        i += gap;
        SHOAL_REQUIRE(k < cap, SHOAL_ERR_LIMIT,
                      "dp-sgd: the Poisson batch has more than %zu examples (expected %.1f); "
                      "draw discarded, retry with a larger buffer",
                      cap, q * (double)N);
        idx[k++] = i;
        if (++i >= N) break;
    }
    *n = k;
    dp->drawn = 1;
    dp->drawn_n = k;
    return SHOAL_OK;
}

/* Noise on noise_threads slices of x[n], one generator each. */
static shoal_status add_noise(shoal_dpsgd *dp, float *x, size_t n) {
    int nt = dp->cfg.noise_threads;
    double stddev = dp->cfg.noise * dp->cfg.clip;
    shoal_status sts[SHOAL_MAX_DP_NOISE_THREADS];
#pragma omp parallel for num_threads(nt) schedule(static, 1)
    for (int i = 0; i < nt; i++) {
        size_t lo = n * (size_t)i / (size_t)nt, hi = n * (size_t)(i + 1) / (size_t)nt;
        sts[i] = hi > lo
                     ? shoal_dp_add_noise(dp->rngs[i], dp->cfg.noise_mode, stddev, x + lo, hi - lo)
                     : SHOAL_OK;
    }
    for (int i = 0; i < nt; i++)
        SHOAL_CHECK(sts[i]);
    return SHOAL_OK;
}

static void *draw_job(void *arg) {
    struct noise_job *j = arg;
    j->st = shoal_dp_gaussian_int(j->rng, j->mode, 1u << SHOAL_DP_GRID_BITS, j->k, j->n);
    return NULL;
}

/* Start drawing this step's noise into dp->pre on noise_threads threads, generator i over
 * slice i (the same samples, in the same order, as add_noise would draw): the noise does not
 * depend on the data, so it is drawn while the forward and clipping pass run. started[i]
 * says whether thread i runs (else its share was drawn here, synchronously). */
static void start_draw(shoal_dpsgd *dp, int *started) {
    int nt = dp->cfg.noise_threads;
    size_t n = (size_t)dp->d;
    for (int i = 0; i < nt; i++) {
        size_t lo = n * (size_t)i / (size_t)nt, hi = n * (size_t)(i + 1) / (size_t)nt;
        dp->jobs[i] =
            (struct noise_job){dp->rngs[i], dp->cfg.noise_mode, dp->pre + lo, hi - lo, SHOAL_OK};
        started[i] = pthread_create(&dp->tids[i], NULL, draw_job, &dp->jobs[i]) == 0;
        if (!started[i]) draw_job(&dp->jobs[i]);
    }
}

/* Wait for the drawing threads; then add the drawn noise to x (when x is not NULL) and wipe
 * it, so every draw is used for one release only. */
static shoal_status finish_draw(shoal_dpsgd *dp, const int *started, float *x) {
    int nt = dp->cfg.noise_threads;
    size_t n = (size_t)dp->d;
    for (int i = 0; i < nt; i++)
        if (started[i]) pthread_join(dp->tids[i], NULL);
    shoal_status st = SHOAL_OK;
    for (int i = 0; i < nt && st == SHOAL_OK; i++)
        st = dp->jobs[i].st;
    if (st == SHOAL_OK && x) {
        double stddev = dp->cfg.noise * dp->cfg.clip;
        shoal_status sts[SHOAL_MAX_DP_NOISE_THREADS];
#pragma omp parallel for num_threads(nt) schedule(static, 1)
        for (int i = 0; i < nt; i++) {
            size_t lo = n * (size_t)i / (size_t)nt, hi = n * (size_t)(i + 1) / (size_t)nt;
            sts[i] = shoal_dp_add_noise_drawn(stddev, dp->pre + lo, x + lo, hi - lo);
        }
        for (int i = 0; i < nt && st == SHOAL_OK; i++)
            st = sts[i];
    }
    memset(dp->pre, 0, n * sizeof *dp->pre);
    return st;
}

typedef struct {
    size_t clipped, loss_n;
    double norm_sum, loss_sum;
} pass_totals;

/* Forward, per-example norms and the clipped, summed backward over the micro-batches. */
static shoal_status clip_pass(shoal_dpsgd *dp, shoal_gpt *m, const int32_t *tokens,
                              const int32_t *targets, const uint8_t *mask, size_t n, int T,
                              pass_totals *tot) {
    shoal_gpt_zero_grad(m);
    int mb = dp->cfg.micro_batch;
    const float *tl = NULL;
    for (size_t b0 = 0; b0 < n; b0 += (size_t)mb) {
        int nb = (int)(n - b0 < (size_t)mb ? n - b0 : (size_t)mb);
        size_t off = b0 * (size_t)T, cnt = (size_t)nb * (size_t)T, counted = 0;
        for (size_t i = 0; i < cnt; i++)
            counted += targets[off + i] >= 0 && (!mask || mask[off + i]);
        if (counted == 0) continue; /* every example here has a zero gradient */
        SHOAL_CHECK(shoal_gpt_forward(m, tokens + off, targets + off, mask ? mask + off : NULL, nb,
                                      T, NULL));
        tl = shoal_gpt_token_losses(m);
        for (int b = 0; b < nb; b++) {
            double s = 0.0;
            int c = 0;
            for (int t = 0; t < T; t++) {
                size_t i = off + (size_t)b * T + t;
                if (targets[i] >= 0 && (!mask || mask[i])) {
                    s += tl[(size_t)b * T + t];
                    c++;
                }
            }
            if (c) {
                tot->loss_sum += s / c;
                tot->loss_n++;
            }
        }
        SHOAL_CHECK(shoal_gpt_per_example_grad_norms(m, dp->norms));
        size_t nc = 0;
        SHOAL_CHECK(shoal_dp_clip_factors(dp->norms, (size_t)nb, dp->cfg.clip, dp->factors, &nc));
        SHOAL_CHECK(shoal_gpt_dp_backward_weighted(m, dp->factors));
        tot->clipped += nc;
        for (int b = 0; b < nb; b++)
            tot->norm_sum += dp->norms[b];
    }
    return SHOAL_OK;
}

shoal_status shoal_dpsgd_step(shoal_dpsgd *dp, shoal_gpt *m, const int32_t *tokens,
                              const int32_t *targets, const uint8_t *mask, size_t n, int T,
                              shoal_dpsgd_step_info *info) {
    SHOAL_REQUIRE(dp && m && (n == 0 || (tokens && targets)), SHOAL_ERR_INVALID_ARG,
                  "shoal_dpsgd_step: NULL argument");
    SHOAL_REQUIRE(T >= 1, SHOAL_ERR_INVALID_ARG, "dp-sgd step: T=%d must be >= 1", T);
    SHOAL_REQUIRE(shoal_gpt_num_params(m) == dp->d, SHOAL_ERR_INVALID_ARG,
                  "dp-sgd step: model has %zu parameters, the DP state was made for %llu",
                  shoal_gpt_num_params(m), (unsigned long long)dp->d);
    int poisson = dp->drawn && dp->drawn_n == n;
    dp->drawn = 0;
    double t0 = shoal_now_s();
    int started[SHOAL_MAX_DP_NOISE_THREADS];
    if (dp->pre) start_draw(dp, started);
    pass_totals tot = {0, 0, 0.0, 0.0};
    shoal_status st = clip_pass(dp, m, tokens, targets, mask, n, T, &tot);
    float *g = shoal_gpt_grads(m);
    double t1 = shoal_now_s();
    if (dp->pre) {
        shoal_status st2 = finish_draw(dp, started, st == SHOAL_OK ? g : NULL);
        SHOAL_CHECK(st);
        SHOAL_CHECK(st2);
    } else {
        SHOAL_CHECK(st);
        SHOAL_CHECK(add_noise(dp, g, dp->d));
    }
    double t2 = shoal_now_s();
    double expected = dp->cfg.sample_rate * (double)dp->cfg.n_examples;
    SHOAL_CHECK(SHOAL_OP(shoal_gpt_ctx(m), scale, g, dp->d, (float)(1.0 / expected)));
    if (!poisson && !dp->not_poisson)
        SHOAL_LOG_WARN("dp-sgd: a step's batch was not drawn by the Poisson sampler: "
                       "epsilon will not be reported for this run");
    if (!poisson) dp->not_poisson = 1;
    if (!dp->not_poisson)
        SHOAL_CHECK(shoal_dp_accountant_step(dp->acct, dp->cfg.sample_rate, dp->sigma_eff, 1));
    dp->steps++;
    if (info) {
        info->batch = n;
        info->clipped = tot.clipped;
        info->mean_norm = n ? tot.norm_sum / (double)n : 0.0;
        info->mean_loss = tot.loss_n ? tot.loss_sum / (double)tot.loss_n : NAN;
        double eps = NAN;
        if (!dp->not_poisson &&
            shoal_dp_accountant_epsilon(dp->acct, dp->cfg.delta, &eps, NULL) != SHOAL_OK)
            eps = NAN;
        info->epsilon = eps;
        info->clip_s = t1 - t0;
        info->noise_s = t2 - t1;
    }
    return SHOAL_OK;
}

shoal_status shoal_dpsgd_epsilon(const shoal_dpsgd *dp, double *eps, double *opt_order) {
    SHOAL_REQUIRE(dp && eps, SHOAL_ERR_INVALID_ARG, "shoal_dpsgd_epsilon: NULL argument");
    SHOAL_REQUIRE(!dp->not_poisson, SHOAL_ERR_UNSUPPORTED,
                  "dp-sgd: epsilon is not reported: a step's batch was not Poisson-sampled, "
                  "which the accountant assumes");
    return shoal_dp_accountant_epsilon(dp->acct, dp->cfg.delta, eps, opt_order);
}

const shoal_dp_accountant *shoal_dpsgd_accountant(const shoal_dpsgd *dp) {
    return dp ? dp->acct : NULL;
}

double shoal_dpsgd_accounted_noise(const shoal_dpsgd *dp) {
    return dp ? dp->sigma_eff : NAN;
}

shoal_status shoal_dpsgd_plan_epsilon(const shoal_dp_accountant *acct, double q, double sigma,
                                      uint64_t d, uint64_t steps, double delta, double *eps) {
    SHOAL_REQUIRE(eps != NULL, SHOAL_ERR_INVALID_ARG, "shoal_dpsgd_plan_epsilon: eps NULL");
    SHOAL_REQUIRE(isfinite(sigma) && sigma > 0, SHOAL_ERR_INVALID_ARG,
                  "dp-sgd plan: noise multiplier %g must be > 0", sigma);
    shoal_dp_accountant *fresh = NULL;
    if (!acct) {
        SHOAL_CHECK(shoal_dp_accountant_init(&fresh, NULL, 0, SHOAL_DP_SERIES_MAGNITUDE));
        acct = fresh;
    }
    shoal_status st = shoal_dp_accountant_epsilon_if(
        acct, q, shoal_dp_effective_noise_multiplier(sigma, d), steps, delta, eps);
    shoal_dp_accountant_free(fresh);
    return st;
}

shoal_status shoal_dpsgd_noise_for_epsilon(double target_eps, double q, uint64_t d, uint64_t steps,
                                           double delta, double *sigma) {
    SHOAL_REQUIRE(sigma != NULL, SHOAL_ERR_INVALID_ARG, "shoal_dpsgd_noise_for_epsilon: NULL");
    double s_eff = 0.0;
    SHOAL_CHECK(shoal_dp_noise_for_epsilon(target_eps, q, steps, delta, &s_eff));
    /* invert σ_eff = σ / (1 + σ·k), k = sqrt(d)·2^-24 (privacy/noise.h) */
    double k = sqrt((double)d) * 0x1.0p-24;
    SHOAL_REQUIRE(s_eff * k < 0.5, SHOAL_ERR_LIMIT,
                  "dp-sgd: the noise multiplier %g needed for epsilon %g is too large for the "
                  "noise grid on %llu parameters",
                  s_eff, target_eps, (unsigned long long)d);
    double s = s_eff / (1.0 - s_eff * k);
    for (int i = 0; i < 60; i++) { /* guard the rounding of the inversion: meet the target */
        double e = 0.0;
        SHOAL_CHECK(shoal_dpsgd_plan_epsilon(NULL, q, s, d, steps, delta, &e));
        if (e <= target_eps) {
            *sigma = s;
            return SHOAL_OK;
        }
        s *= 1.0 + 1e-12 * (double)(1 << (i < 30 ? i : 30));
    }
    SHOAL_LOG_ERROR("dp-sgd: could not meet epsilon %g with the noise grid's correction",
                    target_eps);
    return SHOAL_ERR_INTERNAL;
}

shoal_status shoal_dpsgd_provenance(const shoal_dpsgd *dp, json_t **out) {
    SHOAL_REQUIRE(dp && out, SHOAL_ERR_INVALID_ARG, "shoal_dpsgd_provenance: NULL argument");
    *out = NULL;
    double eps = NAN;
    if (!dp->not_poisson)
        SHOAL_CHECK(shoal_dp_accountant_epsilon(dp->acct, dp->cfg.delta, &eps, NULL));
    json_t *acct = json_pack("{s:s, s:i, s:s}", "format", SHOAL_DP_ACCOUNTANT_FORMAT, "version",
                             SHOAL_DP_ACCOUNTANT_VERSION, "series", "magnitude");
    json_t *j = json_pack("{s:o, s:f, s:f, s:f, s:f, s:f, s:I, s:f, s:I, s:s, s:s, s:o}", "epsilon",
                          isfinite(eps) ? json_real(eps) : json_null(), "delta", dp->cfg.delta,
                          "noise_multiplier", dp->cfg.noise, "accounted_noise_multiplier",
                          dp->sigma_eff, "clip", dp->cfg.clip, "sample_rate", dp->cfg.sample_rate,
                          "examples", (json_int_t)dp->cfg.n_examples, "expected_batch",
                          dp->cfg.sample_rate * (double)dp->cfg.n_examples, "steps",
                          (json_int_t)shoal_dp_accountant_total_steps(dp->acct), "sampler",
                          dp->not_poisson ? "not poisson" : "poisson", "noise_mode",
                          shoal_dp_noise_mode_name(dp->cfg.noise_mode), "accountant", acct);
    SHOAL_REQUIRE(j != NULL, SHOAL_ERR_NOMEM, "dp-sgd: out of memory building provenance");
    *out = j;
    return SHOAL_OK;
}
