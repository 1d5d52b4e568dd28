/* cmd_privacy.c: `shoal privacy epsilon|noise`, the DP-SGD calculator (like TF-Privacy's
 * compute_dp_sgd_privacy).
 *
 *   shoal privacy epsilon --noise σ --sample-rate q (--steps T | --epochs E) --delta δ
 *       prints ε and the optimal RDP order for T steps of the Poisson-subsampled Gaussian;
 *   shoal privacy noise --epsilon ε --sample-rate q (--steps T | --epochs E) --delta δ
 *       prints the smallest noise multiplier σ that meets ε.
 * --epochs E means ceil(E / q) steps (TF-Privacy's convention). Output is "key: value" lines
 * for scripts. Every number is parsed strictly (whole argument, finite, in range); bad input
 * names the option and exits 2; an impossible request (no σ reaches ε) exits 1.
 * The math lives in privacy/rdp.h. Tested by tests/privacy/test_privacy_cli.sh.
 */
#define SHOAL_LOG_SUBSYS "cli"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "privacy/rdp.h"

static const char *usage_text =
    "usage: shoal privacy epsilon --noise SIGMA --sample-rate Q (--steps T | --epochs E) "
    "--delta D\n"
    "       shoal privacy noise --epsilon EPS --sample-rate Q (--steps T | --epochs E) "
    "--delta D\n"
    "\n"
    "RDP accounting of DP-SGD with Poisson sampling (rate Q) and Gaussian noise (multiplier\n"
    "SIGMA = noise std / clip norm), converted to (epsilon, delta). --epochs E counts\n"
    "ceil(E / Q) steps. See docs/privacy.md.\n";

static int bad(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "shoal privacy: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    return 2;
}

/* Whole-string finite double. */
static int parse_num(const char *s, double *out) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int parse_steps(const char *s, uint64_t *out) {
    if (!s || !*s) return 0;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno == ERANGE || v == 0 || v > (1ull << 53)) return 0;
    *out = v;
    return 1;
}

int shoal_cmd_privacy(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *mode = argv[1];
    int want_eps = strcmp(mode, "epsilon") == 0, want_noise = strcmp(mode, "noise") == 0;
    if (!want_eps && !want_noise)
        return bad("unknown subcommand '%s'%s (expected 'epsilon' or 'noise')", mode, "");
    const char *s_noise = NULL, *s_q = NULL, *s_steps = NULL, *s_epochs = NULL, *s_delta = NULL,
               *s_eps = NULL;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        const char **slot = NULL;
        if (strcmp(o, "--noise") == 0 && want_eps)
            slot = &s_noise;
        else if (strcmp(o, "--epsilon") == 0 && want_noise)
            slot = &s_eps;
        else if (strcmp(o, "--sample-rate") == 0)
            slot = &s_q;
        else if (strcmp(o, "--steps") == 0)
            slot = &s_steps;
        else if (strcmp(o, "--epochs") == 0)
            slot = &s_epochs;
        else if (strcmp(o, "--delta") == 0)
            slot = &s_delta;
        else
            return bad("unknown option '%s' for 'privacy %s'", o, mode);
        if (i + 1 >= argc) return bad("option %s needs a value%s", o, "");
        if (*slot) return bad("option %s given twice%s", o, "");
        *slot = argv[++i];
    }
    double q, delta, sigma = 0, target = 0, epochs;
    uint64_t steps = 0;
    if (want_eps && !s_noise) return bad("missing --noise SIGMA%s%s", "", "");
    if (want_noise && !s_eps) return bad("missing --epsilon EPS%s%s", "", "");
    if (!s_q) return bad("missing --sample-rate Q%s%s", "", "");
    if (!s_delta) return bad("missing --delta D%s%s", "", "");
    if (!s_steps == !s_epochs)
        return bad("give exactly one of --steps T or --epochs E%s%s", "", "");
    if (!parse_num(s_q, &q) || q <= 0.0 || q > 1.0)
        return bad("--sample-rate '%s': expected a number in (0, 1]%s", s_q, "");
    if (!parse_num(s_delta, &delta) || delta <= 0.0 || delta >= 1.0)
        return bad("--delta '%s': expected a number in (0, 1)%s", s_delta, "");
    if (want_eps && (!parse_num(s_noise, &sigma) || sigma <= 0.0 || sigma > SHOAL_DP_MAX_SIGMA))
        return bad("--noise '%s': expected a number in (0, 1e6]%s", s_noise, "");
    if (want_noise && (!parse_num(s_eps, &target) || target <= 0.0))
        return bad("--epsilon '%s': expected a positive number%s", s_eps, "");
    if (s_steps && !parse_steps(s_steps, &steps))
        return bad("--steps '%s': expected a whole number in [1, 2^53]%s", s_steps, "");
    if (s_epochs) {
        if (!parse_num(s_epochs, &epochs) || epochs <= 0.0 || ceil(epochs / q) > 0x1p53)
            return bad("--epochs '%s': expected a positive number (at most 2^53 steps)%s", s_epochs,
                       "");
        steps = (uint64_t)ceil(epochs / q);
    }
    if (want_eps) {
        double eps, order;
        if (shoal_dp_epsilon(q, sigma, steps, delta, &eps, &order) != SHOAL_OK) return 1;
        printf("epsilon: %.6g\noptimal_order: %g\nsteps: %llu\n", eps, order,
               (unsigned long long)steps);
        const double *orders;
        size_t n = shoal_dp_default_orders(&orders);
        if (order == orders[0] || order == orders[n - 1])
            printf("note: the optimal order is at the edge of the order grid; epsilon may be "
                   "loose\n");
    } else {
        if (shoal_dp_noise_for_epsilon(target, q, steps, delta, &sigma) != SHOAL_OK) {
            fprintf(stderr, "shoal privacy: no noise multiplier reaches epsilon %s\n", s_eps);
            return 1;
        }
        double eps, order;
        if (shoal_dp_epsilon(q, sigma, steps, delta, &eps, &order) != SHOAL_OK) return 1;
        printf("noise_multiplier: %.6f\nepsilon: %.6g\noptimal_order: %g\nsteps: %llu\n",
               ceil(sigma * 1e6) / 1e6, eps, order, (unsigned long long)steps);
    }
    return 0;
}
