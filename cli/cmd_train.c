/* cmd_train.c: `shoal train`: fine-tune (or pre-train) a GPT on a prepared dataset, on one rank
 * or data-parallel under mpirun/srun.
 *
 * Argument parsing, model set-up and the communicator only: the loop is worker/train/trainer.h,
 * DP-SGD worker/train/dpsgd.h (one rank), the collectives worker/dist/comm.h. Settings come from the coordinator's job spec
 * (--spec FILE.json, proto/jobspec.h) when given, then from flags, which override it. Every rank
 * runs this same command; rank 0 prints and writes the model, the others stay quiet except for
 * errors. Exit codes: 0 done, 1 training failed (bad data, model or checkpoint: the message
 * names it), 2 usage, 75 (SHOAL_COMM_EXIT_LOST) a rank was lost or a collective hung:
 * relaunching with --resume auto continues from the last complete checkpoint.
 * Tested by tests/dist/test_train_ddp.sh (flags, errors, ranks, resume, kill -9),
 * tests/dist/test_train_slurm.sh, tests/dist/test_train_coordinator.sh and (DP-SGD)
 * tests/dp/test_train_dp_cli.sh.
 */
#define SHOAL_LOG_SUBSYS "train"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "common/fileio.h"
#include "common/limits.h"
#include "common/log.h"
#include "privacy/noise.h"
#include "worker/dist/comm.h"
#include "worker/model/gpt.h"
#include "worker/train/trainer.h"
#ifdef SHOAL_WITH_JOBSPEC
#include "proto/jobspec.h"
#endif
#ifdef SHOAL_WITH_COORDINATOR
#include "common/timeutil.h"
#include "coordinator/api.h"
#include "coordinator/client.h"
#endif

static const char *usage =
    "usage: shoal train (--model DIR | --init-config FILE.json) --data DIR --out DIR [options]\n"
    "       shoal train --spec JOB.json [options]\n\n"
    "Trains with AdamW, warmup + cosine LR, gradient accumulation and clipping; checkpoints go\n"
    "to OUT/checkpoints/step-N (complete when DONE is there) and the model to OUT. Under\n"
    "mpirun/srun every rank runs this command: the global batch is ranks x --batch x\n"
    "--grad-accum sequences of --seq tokens.\n\n"
    "  --model DIR          start from a Hugging Face GPT-2 directory\n"
    "  --init-config FILE   start from random weights of this config.json (seeded by --seed)\n"
    "  --data DIR           prepared by `shoal data prepare`\n"
    "  --out DIR            output model directory (checkpoints inside)\n"
    "  --spec FILE          the coordinator's job spec (finetune section); flags override it\n"
    "  --steps N (100)  --batch B (8)  --seq T (64)  --grad-accum K (1)\n"
    "  --lr X (3e-4)  --warmup N (10)  --min-lr-ratio X (0.1)  --weight-decay X (0.1)\n"
    "  --clip X (1.0; 0 = none)  --eval-every N (50)  --eval-batches N (20; 0 = all)\n"
    "  --ckpt-every N (100; 0 = at the end only)  --seed N (1)  --threads N (cores / ranks)\n"
    "  --zero 0|1           1: shard the optimizer state over the ranks (ZeRO stage 1)\n"
    "  --grad-bucket N      gradient all-reduce bucket in floats (1048576)\n"
    "  --no-overlap         all-reduce gradients after backward, not overlapped with it\n"
    "  --comm auto|single|mpi|nccl  the communicator (auto: mpi under mpirun/srun; nccl there\n"
    "                       when --device is cuda and the build has NCCL)\n"
    "  --device cpu|cuda|auto  where to train (cpu; cuda for a --spec with gpus_per_rank > 0);\n"
    "                       auto = cuda when a CUDA device is visible, else cpu. Under mpirun\n"
    "                       each rank takes device local_rank % count\n"
    "  --precision fp32|bf16  bf16 (cuda default): bf16 weights copy and activations with fp32\n"
    "                       master weights, gradients and AdamW state; fp32 (cpu default, the\n"
    "                       only one on cpu)\n"
    "  --resume DIR|auto    continue from a checkpoint directory, or the newest complete one\n"
    "  --stop-after N       stop (with a checkpoint) after step N\n"
    "  --init-seed N        seed of --init-config's random weights (default: --seed)\n"
    "  DP-SGD (one rank): --dp-clip C (--dp-noise SIGMA | --dp-epsilon EPS) --dp-delta DELTA\n"
    "                     [--dp-noise-mode exact|fast] [--dp-noise-threads N]\n"
    "    every step takes a Poisson sample of the training windows with rate q = batch*accum/N,\n"
    "    clips each example's gradient to C, adds Gaussian noise of std SIGMA*C (EXACT discrete\n"
    "    Gaussian by default) and divides by q*N. --dp-epsilon solves SIGMA for the planned\n"
    "    steps, and with --dp-noise is a budget the plan must fit. Epsilon so far is in the\n"
    "    progress line and OUT/shoal.json (\"dp\"); see docs/privacy.md. --dp-noise-threads N\n"
    "    gives N of the --threads to drawing the next step's noise while the others run the\n"
    "    model (0, the default: every thread does both, drawing after the clipping pass when no\n"
    "    CPU is spare); pays on small models whose threads do not scale (docs/training.md).\n"
    "  Aliases: --config (--init-config), --accum (--grad-accum), --grad-clip (--clip),\n"
    "  --resume with no value (--resume auto).\n\n"
    "Exit codes: 0 done, 1 training failed, 2 usage, 75 a rank was lost or a collective hung\n"
    "(relaunch with --resume auto).\n";

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int parse_f64(const char *s, double lo, double hi, double *out) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

typedef struct {
    const char *model_dir, *init_config, *spec, *resume, *dp_mode, *device, *precision;
    int threads;
    int64_t init_seed; /* -1: --seed */
    shoal_comm_backend backend;
    char *owned[3]; /* strings copied out of the spec */
} train_args;

#ifdef SHOAL_WITH_JOBSPEC
/* Settings of a finetune job spec; what this trainer cannot do is refused by name. */
static int apply_spec(const char *path, train_args *a, shoal_trainer_config *c) {
    shoal_job_spec sp;
    shoal_job_spec_init(&sp);
    if (shoal_job_spec_load_file(path, &sp) != SHOAL_OK) {
        fprintf(stderr, "shoal train: %s: %s\n", path, shoal_job_spec_last_error());
        shoal_job_spec_free(&sp);
        return 2;
    }
    int rc = 2;
    const shoal_hyper *h = &sp.hyper;
    if (sp.kind != SHOAL_JOB_KIND_FINETUNE || !sp.output_dir || !sp.base_model_dir ||
        !sp.dataset_dir) {
        fprintf(stderr, "shoal train: %s: not a finetune job with output_dir\n", path);
    } else if (h->lora_rank > 0) {
        fprintf(stderr, "shoal train: %s: finetune.lora_rank %d: LoRA is not in this build; "
                "use 0 (full fine-tuning)\n", path, h->lora_rank);
    } else if (h->lr_schedule == SHOAL_LR_LINEAR) {
        fprintf(stderr, "shoal train: %s: finetune.lr_schedule linear is not supported; use "
                "cosine or constant\n", path);
    } else {
        a->owned[0] = strdup(sp.base_model_dir);
        a->owned[1] = strdup(sp.dataset_dir);
        a->owned[2] = strdup(sp.output_dir);
        if (!a->owned[0] || !a->owned[1] || !a->owned[2]) {
            fprintf(stderr, "shoal train: out of memory\n");
            rc = 1;
        } else {
            a->model_dir = a->owned[0];
            c->data_dir = a->owned[1];
            c->out_dir = a->owned[2];
            if (h->learning_rate > 0) c->lr = h->learning_rate;
            if (h->weight_decay > 0) c->weight_decay = (float)h->weight_decay;
            if (h->warmup_steps > 0) c->warmup_steps = h->warmup_steps;
            if (h->max_steps > 0) c->steps = h->max_steps;
            if (h->batch_size > 0) c->B = h->batch_size;
            if (h->grad_accum_steps > 0) c->grad_accum = h->grad_accum_steps;
            if (h->seq_len > 0) c->T = h->seq_len;
            if (h->seed > 0) c->seed = (uint64_t)h->seed;
            if (h->checkpoint_every > 0) c->ckpt_every = h->checkpoint_every;
            if (h->lr_schedule == SHOAL_LR_CONSTANT) c->min_lr_ratio = 1.0;
            if (sp.dp.enabled) {
                c->dp_clip = sp.dp.max_grad_norm;
                c->dp_noise = sp.dp.noise_multiplier;
                c->dp_epsilon = sp.dp.target_epsilon;
                c->dp_delta = sp.dp.target_delta;
            }
            a->resume = "auto"; /* a retried attempt continues; --resume overrides */
            /* ranks placed with GPUs train on them (bf16 by default); --device overrides */
            if (sp.gpus_per_rank > 0) a->device = "cuda";
            rc = 0;
        }
    }
    shoal_job_spec_free(&sp);
    return rc;
}
#endif

/* Flags into a and c; 0 ok, 2 usage error (printed), -1 --help printed. */
static int parse_flags(int argc, char **argv, train_args *a, shoal_trainer_config *c) {
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            fputs(usage, stdout);
            return -1;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(f, "--no-overlap") == 0) {
            c->no_overlap = 1;
            continue;
        }
        if (strcmp(f, "--resume") == 0 && (!v || strncmp(v, "--", 2) == 0)) {
            a->resume = "auto";
            continue;
        }
        if (!v || strncmp(f, "--", 2) != 0) {
            fprintf(stderr, "shoal train: %s '%s'%s\n\n%s",
                    strncmp(f, "--", 2) == 0 ? "option" : "unexpected argument", f,
                    strncmp(f, "--", 2) == 0 ? " needs a value" : "", usage);
            return 2;
        }
        i++;
        int64_t n = 0;
        double x = 0;
        int ok = 1;
        if (strcmp(f, "--spec") == 0) {
            a->spec = v; /* applied before the other flags */
        } else if (strcmp(f, "--model") == 0) {
            a->model_dir = v;
            a->init_config = NULL;
        } else if (strcmp(f, "--init-config") == 0 || strcmp(f, "--config") == 0) {
            a->init_config = v;
            a->model_dir = NULL;
        } else if (strcmp(f, "--data") == 0) {
            c->data_dir = v;
        } else if (strcmp(f, "--out") == 0) {
            c->out_dir = v;
        } else if (strcmp(f, "--resume") == 0) {
            a->resume = v;
        } else if (strcmp(f, "--steps") == 0) {
            ok = parse_i64(v, 1, (1ll << 31) - 1, &c->steps);
        } else if (strcmp(f, "--batch") == 0) {
            ok = parse_i64(v, 1, 65536, &n);
            c->B = (int)n;
        } else if (strcmp(f, "--seq") == 0) {
            ok = parse_i64(v, 1, 1 << 20, &n);
            c->T = (int)n;
        } else if (strcmp(f, "--grad-accum") == 0 || strcmp(f, "--accum") == 0) {
            ok = parse_i64(v, 1, 65536, &n);
            c->grad_accum = (int)n;
        } else if (strcmp(f, "--lr") == 0) {
            ok = parse_f64(v, 1e-12, 10, &c->lr);
        } else if (strcmp(f, "--warmup") == 0) {
            ok = parse_i64(v, 0, (1ll << 31) - 1, &c->warmup_steps);
        } else if (strcmp(f, "--min-lr-ratio") == 0) {
            ok = parse_f64(v, 0, 1, &c->min_lr_ratio);
        } else if (strcmp(f, "--weight-decay") == 0) {
            ok = parse_f64(v, 0, 10, &x);
            c->weight_decay = (float)x;
        } else if (strcmp(f, "--clip") == 0 || strcmp(f, "--grad-clip") == 0) {
            ok = parse_f64(v, 0, 1e6, &x);
            c->grad_clip = (float)x;
        } else if (strcmp(f, "--eval-every") == 0) {
            ok = parse_i64(v, 0, INT64_MAX, &c->eval_every);
        } else if (strcmp(f, "--eval-batches") == 0) {
            ok = parse_i64(v, 0, INT64_MAX, &c->eval_batches);
        } else if (strcmp(f, "--ckpt-every") == 0) {
            ok = parse_i64(v, 0, INT64_MAX, &c->ckpt_every);
        } else if (strcmp(f, "--stop-after") == 0) {
            ok = parse_i64(v, 0, INT64_MAX, &c->stop_after);
        } else if (strcmp(f, "--seed") == 0) {
            ok = parse_i64(v, 0, INT64_MAX, &n);
            c->seed = (uint64_t)n;
        } else if (strcmp(f, "--threads") == 0) {
            ok = parse_i64(v, 1, 4096, &n);
            a->threads = (int)n;
        } else if (strcmp(f, "--zero") == 0) {
            ok = parse_i64(v, 0, 1, &n);
            c->zero = (int)n;
        } else if (strcmp(f, "--grad-bucket") == 0) {
            ok = parse_i64(v, 1, INT64_C(1) << 30, &c->grad_bucket);
        } else if (strcmp(f, "--init-seed") == 0) {
            ok = parse_i64(v, 0, INT64_MAX, &a->init_seed);
        } else if (strcmp(f, "--dp-clip") == 0) {
            ok = parse_f64(v, 1e-12, 1e6, &c->dp_clip);
        } else if (strcmp(f, "--dp-noise") == 0) {
            ok = parse_f64(v, 0, 1e6, &c->dp_noise);
        } else if (strcmp(f, "--dp-epsilon") == 0) {
            ok = parse_f64(v, 0, 1e6, &c->dp_epsilon);
        } else if (strcmp(f, "--dp-delta") == 0) {
            ok = parse_f64(v, 0, 1, &c->dp_delta);
        } else if (strcmp(f, "--dp-noise-mode") == 0) {
            shoal_dp_noise_mode nm = SHOAL_DP_NOISE_EXACT;
            ok = shoal_dp_noise_mode_parse(v, &nm) == SHOAL_OK;
            c->dp_noise_fast = nm == SHOAL_DP_NOISE_FAST;
            a->dp_mode = v;
        } else if (strcmp(f, "--dp-noise-threads") == 0) {
            ok = parse_i64(v, 1, SHOAL_MAX_DP_NOISE_THREADS, &n);
            c->dp_noise_threads = (int)n;
        } else if (strcmp(f, "--comm") == 0) {
            ok = shoal_comm_backend_parse(v, &a->backend) == SHOAL_OK;
        } else if (strcmp(f, "--device") == 0) {
            ok = strcmp(v, "cpu") == 0 || strcmp(v, "cuda") == 0 || strcmp(v, "auto") == 0;
            a->device = v;
        } else if (strcmp(f, "--precision") == 0) {
            ok = strcmp(v, "fp32") == 0 || strcmp(v, "bf16") == 0;
            a->precision = v;
        } else {
            fprintf(stderr, "shoal train: unknown option '%s'\n\n%s", f, usage);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "shoal train: %s '%s' is not valid (see --help for the range)\n", f,
                    v);
            return 2;
        }
    }
    return 0;
}

/* ---- reports to the coordinator (RunService), when it launched us ----
 * Only when SHOAL_COORDINATOR, SHOAL_RUN_TOKEN, SHOAL_JOB_ID and SHOAL_ATTEMPT are all set and
 * this build has the RPC client; a failed report is logged once and training goes on (the
 * launcher's view of the exit and the DONE markers are authoritative anyway). */
typedef struct {
#ifdef SHOAL_WITH_COORDINATOR
    shoal_rpc_client *cli;
    Shoal__V1__RunIdentity id;
    double last_progress;
    int warned;
#endif
    int on;
} reporter;

#ifdef SHOAL_WITH_COORDINATOR
static void rep_warn(reporter *r, const char *what, shoal_status st) {
    if (r->warned++) return;
    SHOAL_LOG_WARN("could not report %s to the coordinator (%s); training goes on", what,
                   shoal_status_str(st));
}

static void rep_step(void *arg, int64_t step, int64_t total, float loss, double tps) {
    reporter *r = arg;
    double now = shoal_now_s();
    if (step != total && now - r->last_progress < 1.0) return; /* at most once a second */
    r->last_progress = now;
    Shoal__V1__Progress p = SHOAL__V1__PROGRESS__INIT;
    p.step = step;
    p.total_steps = total;
    p.loss = loss;
    p.tokens_per_s = tps;
    p.updated_at = shoal_wall_s();
    Shoal__V1__ReportProgressRequest req = SHOAL__V1__REPORT_PROGRESS_REQUEST__INIT;
    req.run = &r->id;
    req.progress = &p;
    ProtobufCMessage *resp = NULL;
    shoal_rpc_result res;
    shoal_status st = shoal_rpc_client_unary(r->cli, &shoal_api_report_progress, &req.base, 5000,
                                             &resp, &res);
    if (st != SHOAL_OK) rep_warn(r, "progress", st);
    shoal_rpc_msg_free(resp);
}

static void rep_checkpoint(void *arg, int64_t step, const char *dir) {
    reporter *r = arg;
    char abs[SHOAL_MAX_PATH];
    if (!realpath(dir, abs)) return;
    Shoal__V1__ReportCheckpointRequest req = SHOAL__V1__REPORT_CHECKPOINT_REQUEST__INIT;
    req.run = &r->id;
    req.step = step;
    req.path = abs;
    ProtobufCMessage *resp = NULL;
    shoal_rpc_result res;
    shoal_status st = shoal_rpc_client_unary(r->cli, &shoal_api_report_checkpoint, &req.base,
                                             5000, &resp, &res);
    if (st != SHOAL_OK) rep_warn(r, "a checkpoint", st);
    shoal_rpc_msg_free(resp);
}
#endif

static void rep_start(reporter *r, int rank, shoal_trainer_config *c) {
    memset(r, 0, sizeof *r);
#ifdef SHOAL_WITH_COORDINATOR
    const char *job = getenv("SHOAL_JOB_ID"), *att = getenv("SHOAL_ATTEMPT");
    const char *tok = getenv("SHOAL_RUN_TOKEN");
    int64_t job_id = 0, attempt = 0;
    if (!getenv("SHOAL_COORDINATOR") || !tok || !parse_i64(job, 1, INT64_MAX, &job_id) ||
        !parse_i64(att, 0, INT32_MAX, &attempt))
        return;
    shoal_client_conf cc;
    int ac = 1;
    char *av[] = {"train", NULL};
    if (shoal_client_conf_resolve(&ac, av, &cc) != SHOAL_OK ||
        shoal_client_connect(&cc, &r->cli) != SHOAL_OK) {
        SHOAL_LOG_WARN("SHOAL_COORDINATOR is set but no connection can be set up; no reports");
        return;
    }
    shoal__v1__run_identity__init(&r->id);
    r->id.job_id = (uint64_t)job_id;
    r->id.attempt = (int32_t)attempt;
    r->id.rank = rank;
    r->id.run_token = (char *)tok;
    r->on = 1;
    if (rank == 0) {
        c->on_step = rep_step;
        c->on_checkpoint = rep_checkpoint;
        c->cb_arg = r;
    }
#else
    (void)rank;
    (void)c;
#endif
}

static void rep_exit(reporter *r, int code, const char *msg, const char *model_dir) {
#ifdef SHOAL_WITH_COORDINATOR
    if (r->on) {
        char abs[SHOAL_MAX_PATH] = "";
        if (model_dir && !realpath(model_dir, abs)) abs[0] = 0;
        Shoal__V1__ReportExitRequest req = SHOAL__V1__REPORT_EXIT_REQUEST__INIT;
        req.run = &r->id;
        req.exit_code = code;
        req.message = (char *)msg;
        req.model_dir = abs;
        ProtobufCMessage *resp = NULL;
        shoal_rpc_result res;
        shoal_status st = shoal_rpc_client_unary(r->cli, &shoal_api_report_exit, &req.base, 5000,
                                                 &resp, &res);
        if (st != SHOAL_OK) rep_warn(r, "the exit", st);
        shoal_rpc_msg_free(resp);
    }
    shoal_rpc_client_free(r->cli);
#else
    (void)r;
    (void)code;
    (void)msg;
    (void)model_dir;
#endif
}

/* The same launcher test as the communicator's AUTO (worker/dist/comm.c). */
static int launched_by_mpi(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

/* --device / --precision -> dev (device index chosen later, from the local rank). 0 or an exit
 * code after a message naming why. */
static int pick_device(const train_args *a, shoal_gpt_device *dev) {
    const char *want = a->device ? a->device : "cpu";
    int count = shoal_gpt_cuda_device_count();
    dev->backend = SHOAL_BACKEND_CPU;
    if (strcmp(want, "cuda") == 0) {
        if (!shoal_gpt_cuda_built()) {
            fprintf(stderr, "shoal train: --device cuda: this shoal was built without CUDA "
                            "(configure with -DSHOAL_CUDA=ON where the CUDA toolkit is)\n");
            return 1;
        }
        if (count == 0) {
            fprintf(stderr, "shoal train: --device cuda: no CUDA device is visible (no driver, "
                            "no GPU, or CUDA_VISIBLE_DEVICES hides them)\n");
            return 1;
        }
        dev->backend = SHOAL_BACKEND_CUDA;
    } else if (strcmp(want, "auto") == 0) {
        if (count > 0) {
            dev->backend = SHOAL_BACKEND_CUDA;
        } else {
            SHOAL_LOG_INFO("--device auto: %s; training on the CPU",
                           shoal_gpt_cuda_built() ? "no CUDA device is visible"
                                                  : "this build has no CUDA backend");
        }
    }
    int cuda = dev->backend == SHOAL_BACKEND_CUDA;
    const char *prec = a->precision ? a->precision : cuda ? "bf16" : "fp32";
    if (shoal_precision_parse(prec, &dev->precision) != SHOAL_OK) return 2;
    if (!cuda && dev->precision != SHOAL_PRECISION_FP32) {
        fprintf(stderr, "shoal train: --precision %s needs a CUDA device; the CPU backend trains "
                        "in fp32 (drop --precision or use --device cuda)\n", prec);
        return 1;
    }
    return 0;
}

static int exit_code(shoal_status st) {
    if (st == SHOAL_OK) return 0;
    return st == SHOAL_ERR_COMM || st == SHOAL_ERR_TIMEOUT ? SHOAL_COMM_EXIT_LOST : 1;
}

int shoal_cmd_train(int argc, char **argv) {
    shoal_trainer_config c;
    shoal_trainer_config_default(&c);
    train_args a = {0};
    a.backend = SHOAL_COMM_AUTO;
    a.init_seed = -1;
    /* pass 1 finds --spec, pass 2 lets the other flags override it */
    int rc = parse_flags(argc, argv, &a, &c);
    if (rc) return rc < 0 ? 0 : rc;
    if (a.spec) {
#ifdef SHOAL_WITH_JOBSPEC
        rc = apply_spec(a.spec, &a, &c);
        if (rc) goto out;
        const char *spec = a.spec;
        rc = parse_flags(argc, argv, &a, &c);
        a.spec = spec;
        if (rc) goto out;
#else
        fprintf(stderr, "shoal train: --spec needs the coordinator's job spec, not in this "
                "build\n");
        return 2;
#endif
    }
    if ((!a.model_dir && !a.init_config) || !c.data_dir || !c.out_dir) {
        fprintf(stderr, "shoal train: --model or --init-config, --data and --out are required "
                "(or --spec)\n\n%s", usage);
        rc = 2;
        goto out;
    }
    if (c.dp_clip == 0 && (c.dp_noise != 0 || c.dp_epsilon != 0 || c.dp_delta != 0 || a.dp_mode ||
                           c.dp_noise_threads != 0)) {
        fprintf(stderr, "shoal train: --dp-noise/--dp-epsilon/--dp-delta/--dp-noise-mode/"
                "--dp-noise-threads need "
                "--dp-clip\n\n%s", usage);
        rc = 2;
        goto out;
    }
    if (a.resume && strcmp(a.resume, "auto") == 0)
        c.resume = 1;
    else if (a.resume)
        c.resume_from = a.resume;

    shoal_comm *comm = NULL;
    shoal_gpt *m = NULL;
    FILE *metrics = NULL;
    reporter rep = {0};
    shoal_trainer_result r = {0};
    shoal_gpt_device dev = {SHOAL_BACKEND_CPU, 0, SHOAL_PRECISION_FP32, 0};
    if ((rc = pick_device(&a, &dev)) != 0) goto out;
    /* GPUs reduce device buffers: NCCL under a launcher unless --comm says otherwise */
    if (dev.backend == SHOAL_BACKEND_CUDA && a.backend == SHOAL_COMM_AUTO && launched_by_mpi() &&
        shoal_comm_backend_built(SHOAL_COMM_NCCL))
        a.backend = SHOAL_COMM_NCCL;
    shoal_comm_options co = {.backend = a.backend};
    shoal_status st = shoal_comm_init(&comm, &co);
    if (st != SHOAL_OK) {
        fprintf(stderr, "shoal train: cannot start the %s communicator: %s\n",
                shoal_comm_backend_name(a.backend), shoal_status_str(st));
        rc = exit_code(st) == 0 ? 1 : exit_code(st);
        goto out;
    }
    int rank = shoal_comm_rank(comm), world = shoal_comm_world_size(comm);
    if (world > 1) {
        char role[32];
        snprintf(role, sizeof role, "rank %d", rank);
        shoal_log_set_role(role);
    }
    if (a.model_dir) {
        st = shoal_gpt_load_dir(a.model_dir, &m);
    } else {
        shoal_gpt_config mc;
        st = shoal_gpt_config_load(a.init_config, &mc);
        if (st == SHOAL_OK) st = shoal_gpt_create(&mc, &m);
        if (st == SHOAL_OK)
            st = shoal_gpt_init_random(m, a.init_seed >= 0 ? (uint64_t)a.init_seed : c.seed);
    }
    if (st != SHOAL_OK) {
        fprintf(stderr, "shoal train: cannot load the model from %s: %s\n",
                a.model_dir ? a.model_dir : a.init_config, shoal_status_str(st));
        goto done;
    }
    int threads = a.threads;
    if (threads <= 0 && !getenv("OMP_NUM_THREADS")) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        int local = shoal_comm_local_size(comm);
        threads = cores > 0 ? (int)(cores / (local > 0 ? local : 1)) : 1;
        if (threads < 1) threads = 1;
    }
    if (threads > 0 && (st = shoal_gpt_set_threads(m, threads)) != SHOAL_OK) goto done;
    if (dev.backend == SHOAL_BACKEND_CUDA) {
        int count = shoal_gpt_cuda_device_count();
        dev.device = count > 0 ? shoal_comm_local_rank(comm) % count : 0;
        if ((st = shoal_gpt_to_device(m, &dev)) != SHOAL_OK) {
            fprintf(stderr, "shoal train: cannot put the model on CUDA device %d (%s): %s\n",
                    dev.device, shoal_precision_name(dev.precision), shoal_status_str(st));
            goto done;
        }
    }
    if (rank == 0) {
        long long g = (long long)world * c.B * c.grad_accum;
        printf("shoal train: %d rank%s (%s) x micro-batch %d x accumulation %d = global batch %lld "
               "sequences of %d tokens (%lld tokens/step), %lld steps, zero %d\n",
               world, world == 1 ? "" : "s", shoal_comm_backend_name(shoal_comm_backend_of(comm)),
               c.B, c.grad_accum, g, c.T, g * c.T, (long long)c.steps, world > 1 && c.zero);
        if (dev.backend == SHOAL_BACKEND_CUDA)
            printf("device: cuda:%d (rank 0), precision %s\n", dev.device,
                   shoal_precision_name(dev.precision));
        else
            printf("device: cpu, precision fp32\n");
        fflush(stdout);
        char path[SHOAL_MAX_PATH];
        if ((st = shoal_mkdir_p(c.out_dir)) != SHOAL_OK ||
            (st = shoal_path_join(path, sizeof path, c.out_dir, "train_log.txt")) != SHOAL_OK)
            goto done;
        metrics = fopen(path, "a");
        if (!metrics) SHOAL_LOG_WARN("%s: cannot open: %s (no loss log)", path, strerror(errno));
        c.progress = stderr;
        c.metrics = metrics;
    }
    c.comm = comm;
    rep_start(&rep, rank, &c);
    st = shoal_trainer_run(m, &c, &r);
    if (st == SHOAL_OK && rank == 0) {
        printf("steps: %lld..%lld\nfinal_train_loss: %.4f\nfirst_train_loss: %.4f\n"
               "val_loss: %.4f\ntokens_per_s: %.0f\n",
               (long long)r.start_step, (long long)r.end_step, r.last_loss, r.first_loss,
               r.val_loss, r.tokens_per_s);
        if (c.dp_clip > 0)
            printf("dp_epsilon: %.6g\ndp_delta: %g\ndp_noise_multiplier: %.6g\n"
                   "dp_sample_rate: %.6g\n",
                   r.dp_epsilon, c.dp_delta, r.dp_sigma, r.dp_q);
        if (r.end_step == c.steps) printf("wrote %s\n", c.out_dir);
    }
done:
    if (st != SHOAL_OK)
        fprintf(stderr, "shoal train: failed: %s%s\n", shoal_status_str(st),
                exit_code(st) == SHOAL_COMM_EXIT_LOST
                    ? " (a rank was lost; relaunch with --resume auto)"
                    : "");
    rc = exit_code(st);
    rep_exit(&rep, rc, st == SHOAL_OK ? "done" : shoal_status_str(st),
             st == SHOAL_OK && rank == 0 && r.end_step == c.steps ? c.out_dir : NULL);
    if (metrics) fclose(metrics);
    shoal_gpt_free(m);
    shoal_comm_free(comm);
out:
    for (int i = 0; i < 3; i++)
        free(a.owned[i]);
    return rc;
}
