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
 * Data parallel (cfg->comm with world > 1): rank r reads rows [r*B, (r+1)*B) of each global
 * batch (loader.h), so the global batch is world x B x grad_accum sequences. Parameters are
 * broadcast from rank 0 at start; each rank sums its micro-batch gradients, the sums are
 * all-reduced (SUM, in buckets of SHOAL_LIMIT_GRAD_BUCKET_ELEMS) and divided by the number of
 * micro-batches used over all ranks, so 2 ranks at B equal 1 rank at B with accumulation 2 and
 * 1 rank at 2B up to float rounding (backward accumulates into the gradient inside its matmuls,
 * so the sums round differently). eval_batches counts global batches. The step loss and validation loss are the
 * global ones (sums and counts all-reduced). zero=1 (ZeRO stage 1): the AdamW moments are
 * sharded by shoal_comm_shard(); the gradient is reduce-scattered, the global norm for clipping
 * all-reduced from the shards' squared norms, each rank updates its parameter block and the
 * blocks are all-gathered. Backward has no per-tensor hook yet, so the buckets go after the
 * last backward instead of overlapping it.
 *
 * Checkpoint: out_dir/checkpoints/step-NNNNNNNN/: rank 0 writes trainer.safetensors atomically
 * (temp, fsync, rename): tensors "params" (and "adam_m", "adam_v" without ZeRO; F32, the model's
 * one parameter block layout) and "loader" (U8, the loader position), with metadata: the step,
 * the model config, the dataset's sha256 and the run geometry (B, T, grad_accum, world, zero,
 * seed); with ZeRO each rank writes optim-rank-RRRRR.safetensors (its moments block). Then a
 * barrier, then rank 0 writes DONE: a directory without DONE is incomplete and never resumed
 * from. The output directory must be shared by all ranks (NFS, Lustre, one host). There is no other
 * random state: the data order is a function of (seed, epoch), the LR a function of the step,
 * so a run resumed from step k produces bit-for-bit the parameters of a run that never stopped
 * (same thread count). A checkpoint from another model, dataset or geometry is refused with a
 * message naming the field.
 * At the end the model is saved to out_dir as a Hugging Face directory (worker/model/gpt.h)
 * with provenance (data sha256, steps, losses) in shoal.json.
 * Devices: the model may live on a CUDA context (shoal_gpt_create_on / shoal_gpt_to_device,
 * fp32 or bf16): the AdamW moments are allocated on the model's context, the update runs
 * through shoal_gpt_adamw_update (fused mixed-precision update in bf16), and checkpoints and
 * the saved model are copied to the host from the fp32 masters. With ranks, a device model
 * needs a device communicator (NCCL, ordered after the compute stream); the few scalar
 * reductions (losses, counts, agreement) are staged through device memory. DP-SGD stays CPU.
 * Tested by tests/train/test_trainer.c (loss falls, exact resume, accumulation equivalence,
 * refused checkpoints) and, with ranks, tests/dist/test_train_ddp.sh (label mpi: equivalence
 * of 2 ranks / 2B / accumulation with and without ZeRO, resume across ranks, kill -9 of a rank).
 */
#ifndef SHOAL_TRAIN_TRAINER_H
#define SHOAL_TRAIN_TRAINER_H

#include <stdint.h>
#include <stdio.h>

#include "common/status.h"
#include "worker/dist/comm.h"
#include "worker/model/gpt.h"

#define SHOAL_TRAINER_CKPT_DIR "checkpoints"

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
    int resume;           /* continue from the newest complete out_dir/checkpoints/<step> */
    const char *resume_from; /* a checkpoint directory to continue from (must hold DONE) */
    shoal_comm *comm;     /* data-parallel communicator (host buffers); NULL: one rank */
    int zero;             /* 1: shard the optimizer state over the ranks (ZeRO stage 1) */
    int64_t grad_bucket;  /* gradient all-reduce bucket in floats; 0: 1M (4 MB) */
    int no_overlap;       /* 1: all-reduce the gradient buckets after the whole backward;
                           * 0 (default): start each bucket during the last micro-batch's
                           * backward as soon as its layers are done (world > 1, zero 0) */
    int save_model;       /* write the HF model directory at the end (1 by default) */
    FILE *progress;       /* progress bar / lines; NULL: quiet (used on rank 0 only) */
    FILE *metrics;        /* "step N loss X lr Y" / "step N val_loss X" lines; rank 0 only */
    /* Rank 0 only, may be NULL: after each step, and after each complete checkpoint (dir holds
     * DONE). They run on the training thread and must not call the communicator. */
    void (*on_step)(void *arg, int64_t step, int64_t total, float loss, double tokens_per_s);
    void (*on_checkpoint)(void *arg, int64_t step, const char *dir);
    void *cb_arg;
    /* DP-SGD (worker/train/dpsgd.h), on when dp_clip > 0. The examples are the train split's
     * N windows; every step takes a Poisson batch at q = B*grad_accum / N (so B*grad_accum is
     * the EXPECTED batch), processed B examples at a time, clipped per example to dp_clip,
     * noised (σ = dp_noise) and divided by q*N; grad_clip is not used. dp_noise = 0 with
     * dp_epsilon > 0 solves σ for `steps` steps; dp_epsilon > 0 is also a budget: a run whose
     * plan (resumed steps included) exceeds it refuses to start. The accountant's state is
     * saved in each checkpoint directory (dp_accountant.json, before DONE) and continued on resume;
     * ε so far is in the progress line and shoal.json ("dp"). DP runs draw fresh secure
     * randomness after a resume, so they are not bit-exact across resumes. One rank only. */
    double dp_clip, dp_noise, dp_delta, dp_epsilon;
    int dp_noise_fast;     /* FAST noise instead of EXACT (see docs/privacy.md) */
    uint64_t dp_test_seed; /* TEST ONLY: deterministic sampling and noise (not private) */
    int dp_noise_threads;  /* > 0: of the model's threads, this many draw the next step's noise
                              ahead while the rest run the model (fewer than the model's
                              threads); 0: all do both, noise drawn as shoal_dpsgd decides */
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

/* The newest complete checkpoint directory (one holding DONE) under out_dir/checkpoints, by
 * step number. NOT_FOUND when there is none. */
shoal_status shoal_trainer_find_checkpoint(const char *out_dir, char *out, size_t cap);

#endif
