/* trainer.h: the training loop: AdamW over a GPT on a prepared dataset, with warmup + cosine
 * LR, gradient accumulation, global-norm clipping, periodic validation loss, atomic
 * checkpoints and exact resume, and a progress bar.
 *
 * One optimizer step = grad_accum micro-batches of B x T from the train loader
 * (worker/train/loader.h); the gradient is the mean of the micro-batch mean losses' gradients
 * (a micro-batch whose mask selects no token is skipped and not counted), clipped to
 * grad_clip, then AdamW with weight decay on the tensors the model marks for decay (matmul
 * weights, embeddings) and none on biases and layernorms, as GPT-2 practice does.
 *
 * Checkpoint: out_dir/checkpoint/trainer.safetensors, written atomically (temp, fsync,
 * rename): tensors "params", "adam_m", "adam_v" (F32, the model's one parameter block layout)
 * and "loader" (U8, the loader position), with metadata: the step, the model config, the
 * dataset's sha256 and the run geometry (B, T, grad_accum, world, seed). There is no other
 * random state: the data order is a function of (seed, epoch), the LR a function of the step,
 * so a run resumed from step k produces bit-for-bit the parameters of a run that never stopped
 * (same thread count). A checkpoint from another model, dataset or geometry is refused with a
 * message naming the field.
 * At the end the model is saved to out_dir as a Hugging Face directory (worker/model/gpt.h)
 * with provenance (data sha256, steps, losses) in shoal.json.
 * CPU contexts only for now (checkpoints read the parameter block directly).
 * Tested by tests/train/test_trainer.c (loss falls, exact resume, accumulation equivalence,
 * refused checkpoints).
 */
#ifndef SHOAL_TRAIN_TRAINER_H
#define SHOAL_TRAIN_TRAINER_H

#include <stdint.h>
#include <stdio.h>

#include "common/status.h"
#include "worker/model/gpt.h"

typedef struct {
    const char *data_dir; /* prepared by `shoal data prepare` */
    const char *out_dir;  /* model directory written at the end; checkpoint/ inside */
    int B, T, grad_accum;
    int64_t steps; /* optimizer steps in total (a resumed run continues to this) */
    double lr, min_lr_ratio;
    int64_t warmup_steps;
    float weight_decay, beta1, beta2, eps, grad_clip; /* grad_clip <= 0: no clipping */
    int64_t eval_every;   /* steps between validation passes; 0: never (except at the end) */
    int64_t eval_batches; /* batches per validation pass; 0: the whole split */
    int64_t ckpt_every;   /* steps between checkpoints; 0: only at the end */
    int64_t stop_after;   /* stop (with a checkpoint) once this step is done; 0: run to steps */
    uint64_t seed;        /* data order */
    int resume;           /* continue from out_dir/checkpoint when it exists */
    int save_model;       /* write the HF model directory at the end (1 by default) */
    FILE *progress;       /* progress bar / lines; NULL: quiet */
    /* DP-SGD (worker/train/dpsgd.h), on when dp_clip > 0. The examples are the train split's
     * N windows; every step takes a Poisson batch at q = B*grad_accum / N (so B*grad_accum is
     * the EXPECTED batch), processed B examples at a time, clipped per example to dp_clip,
     * noised (σ = dp_noise) and divided by q*N; grad_clip is not used. dp_noise = 0 with
     * dp_epsilon > 0 solves σ for `steps` steps; dp_epsilon > 0 is also a budget: a run whose
     * plan (resumed steps included) exceeds it refuses to start. The accountant's state is
     * saved beside each checkpoint (checkpoint/dp_accountant.json) and continued on resume;
     * ε so far is in the progress line and shoal.json ("dp"). DP runs draw fresh secure
     * randomness after a resume, so they are not bit-exact across resumes. */
    double dp_clip, dp_noise, dp_delta, dp_epsilon;
    int dp_noise_fast;     /* FAST noise instead of EXACT (see docs/privacy.md) */
    uint64_t dp_test_seed; /* TEST ONLY: deterministic sampling and noise (not private) */
} shoal_trainer_config;

typedef struct {
    int64_t start_step, end_step;
    float first_loss, last_loss;    /* train loss of the first and last step of this run */
    float first_val_loss, val_loss; /* first and last validation loss; NAN when none */
    double tokens_per_s;
    uint64_t tokens; /* tokens processed by this run */
    double dp_epsilon, dp_sigma, dp_q; /* DP runs: ε so far (at dp_delta), σ used, q; else 0 */
} shoal_trainer_result;

/* GPT-2-style defaults: B 8, T 64, accumulation 1, 100 steps, lr 3e-4 -> 10%, warmup 10,
 * weight decay 0.1, betas 0.9/0.95, eps 1e-8, clip 1.0, eval every 50 steps over 20 batches,
 * checkpoint every 100, seed 1, save_model 1. */
void shoal_trainer_config_default(shoal_trainer_config *c);

/* Train m in place (blocking). On error the message says what was wrong; checkpoints already
 * written stay valid. res may be NULL. */
shoal_status shoal_trainer_run(shoal_gpt *m, const shoal_trainer_config *cfg,
                               shoal_trainer_result *res);

#endif
