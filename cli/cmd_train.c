/* cmd_train.c: `shoal train`: fine-tune (or train from a random init) a GPT on a prepared
 * dataset, optionally with DP-SGD.
 *
 * Argument parsing only: the loop is worker/train/trainer.h, DP-SGD worker/train/dpsgd.h.
 * Exit codes: 0 done, 1 the run failed (the message says why: bad data, refused checkpoint,
 * a DP plan over its --dp-epsilon budget...), 2 usage. Tested by tests/dp/test_train_dp_cli.sh.
 */
#define SHOAL_LOG_SUBSYS "train"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "common/log.h"
#include "privacy/noise.h"
#include "worker/model/gpt.h"
#include "worker/train/trainer.h"

static const char *usage =
    "usage: shoal train (--model DIR | --config config.json [--init-seed N]) --data DIR --out DIR\n"
    "                   [--steps N] [--batch B] [--seq T] [--accum N] [--lr X] [--warmup N]\n"
    "                   [--weight-decay X] [--grad-clip X] [--eval-every N] [--eval-batches N]\n"
    "                   [--ckpt-every N] [--stop-after N] [--seed N] [--threads N] [--resume]\n"
    "                   [--dp-clip C (--dp-noise SIGMA | --dp-epsilon EPS) --dp-delta DELTA\n"
    "                    [--dp-noise-mode exact|fast]]\n\n"
    "Trains the model on DIR prepared by `shoal data prepare` and writes the result to --out as\n"
    "a Hugging Face directory (checkpoints in --out/checkpoint; --resume continues from them).\n"
    "DP-SGD (--dp-clip): every step takes a Poisson sample of the training windows with rate\n"
    "q = batch*accum / N, clips each example's gradient to C, adds Gaussian noise of std\n"
    "SIGMA*C (EXACT discrete Gaussian by default) and divides by q*N. --dp-epsilon solves\n"
    "SIGMA for the planned steps, and with --dp-noise is a budget the plan must fit. Epsilon\n"
    "so far is shown in the progress line and written to --out/shoal.json (\"dp\"); see\n"
    "docs/privacy.md.\n";

static int num(const char *s, double *out) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int bad(const char *what, const char *value) {
    fprintf(stderr, "shoal train: %s '%s'\n\n%s", what, value ? value : "", usage);
    return 2;
}

int shoal_cmd_train(int argc, char **argv) {
    shoal_trainer_config c;
    shoal_trainer_config_default(&c);
    c.progress = stderr;
    const char *model = NULL, *config = NULL, *mode = NULL;
    double init_seed = 1, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(o, "--resume")) {
            c.resume = 1;
            continue;
        }
        if (i + 1 >= argc) return bad("missing value after", o);
        const char *v = argv[++i];
        double x = 0;
        int is_num = num(v, &x), whole = is_num && x == floor(x) && x >= 0 && x < 9e15;
#define INT_OPT(name, field)                                                                       \
    if (!strcmp(o, name)) {                                                                        \
        if (!whole) return bad("expected a whole number for " name ", got", v);                    \
        field = x;                                                                                 \
        continue;                                                                                  \
    }
#define NUM_OPT(name, field)                                                                       \
    if (!strcmp(o, name)) {                                                                        \
        if (!is_num) return bad("expected a number for " name ", got", v);                         \
        field = x;                                                                                 \
        continue;                                                                                  \
    }
        if (!strcmp(o, "--model")) {
            model = v;
            continue;
        }
        if (!strcmp(o, "--config")) {
            config = v;
            continue;
        }
        if (!strcmp(o, "--data")) {
            c.data_dir = v;
            continue;
        }
        if (!strcmp(o, "--out")) {
            c.out_dir = v;
            continue;
        }
        if (!strcmp(o, "--dp-noise-mode")) {
            mode = v;
            continue;
        }
        INT_OPT("--steps", c.steps)
        INT_OPT("--batch", c.B)
        INT_OPT("--seq", c.T)
        INT_OPT("--accum", c.grad_accum)
        INT_OPT("--warmup", c.warmup_steps)
        INT_OPT("--eval-every", c.eval_every)
        INT_OPT("--eval-batches", c.eval_batches)
        INT_OPT("--ckpt-every", c.ckpt_every)
        INT_OPT("--stop-after", c.stop_after)
        INT_OPT("--seed", c.seed)
        INT_OPT("--init-seed", init_seed)
        INT_OPT("--threads", threads)
        NUM_OPT("--lr", c.lr)
        NUM_OPT("--weight-decay", c.weight_decay)
        NUM_OPT("--grad-clip", c.grad_clip)
        NUM_OPT("--dp-clip", c.dp_clip)
        NUM_OPT("--dp-noise", c.dp_noise)
        NUM_OPT("--dp-epsilon", c.dp_epsilon)
        NUM_OPT("--dp-delta", c.dp_delta)
#undef INT_OPT
#undef NUM_OPT
        return bad("unknown option", o);
    }
    if (!c.data_dir || !c.out_dir) return bad("--data and --out are required;", "");
    if (!model == !config) return bad("give exactly one of --model DIR or --config FILE;", "");
    if (mode) {
        shoal_dp_noise_mode nm;
        if (shoal_dp_noise_mode_parse(mode, &nm) != SHOAL_OK)
            return bad("--dp-noise-mode must be exact or fast, got", mode);
        c.dp_noise_fast = nm == SHOAL_DP_NOISE_FAST;
    }
    if (c.dp_clip == 0 && (c.dp_noise != 0 || c.dp_epsilon != 0 || c.dp_delta != 0 || mode))
        return bad("--dp-noise/--dp-epsilon/--dp-delta/--dp-noise-mode need", "--dp-clip");
    shoal_gpt *m = NULL;
    if (model) {
        if (shoal_gpt_load_dir(model, &m) != SHOAL_OK) return 1;
    } else {
        shoal_gpt_config mc;
        if (shoal_gpt_config_load(config, &mc) != SHOAL_OK ||
            shoal_gpt_create(&mc, &m) != SHOAL_OK ||
            shoal_gpt_init_random(m, (uint64_t)init_seed) != SHOAL_OK) {
            shoal_gpt_free(m);
            return 1;
        }
    }
    if (threads > 0 && shoal_gpt_set_threads(m, (int)threads) != SHOAL_OK) {
        shoal_gpt_free(m);
        return 1;
    }
    shoal_trainer_result r;
    shoal_status st = shoal_trainer_run(m, &c, &r);
    shoal_gpt_free(m);
    if (st != SHOAL_OK) {
        fprintf(stderr, "shoal train: failed (%s)\n", shoal_status_str(st));
        return 1;
    }
    printf("steps: %lld..%lld\nfinal_train_loss: %.4f\n", (long long)r.start_step,
           (long long)r.end_step, r.last_loss);
    if (c.dp_clip > 0)
        printf("dp_epsilon: %.6g\ndp_delta: %g\ndp_noise_multiplier: %.6g\ndp_sample_rate: %.6g\n",
               r.dp_epsilon, c.dp_delta, r.dp_sigma, r.dp_q);
    return 0;
}
