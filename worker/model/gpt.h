/* gpt.h: the GPT-2 model: config, one contiguous parameter block, forward, backward, KV-cache
 * decoding, and Hugging Face model directories in and out.
 *
 * Why this shape (llm.c's train_gpt2.c, HF's modeling_gpt2.py): parameters live in ONE fp32
 * buffer and their gradients in another of the same layout, so data-parallel training is one
 * all-reduce and the optimizer one loop. Tensors inside it keep Hugging Face's names and
 * layouts (Conv1D weights stored (in, out); lm_head tied to wte), listed by a parameter table
 * (name, shape, offset) that trainers, optimizers and the shard planner iterate. All compute
 * goes through kernels/ops.h on the model's context, so another backend can run the model.
 * Activations are sized lazily for (B, T) at the first forward and grown when a later forward
 * is larger.
 *
 * Devices: the model runs on the backend of its context (CPU, or CUDA through
 * shoal_gpt_create_on / shoal_gpt_to_device). Every buffer ops see is backend memory from the
 * context's allocator; host-side paths (init, load, save, token upload, losses and logits,
 * decoding) go through explicit copies. Precision: FP32 runs the op table on fp32 buffers;
 * BF16 (CUDA only) keeps fp32 master weights and gradients, a bf16 copy of the weights and bf16
 * activations, through the bf16 entry points of kernels/cuda/ops_cuda.h; the AdamW state the
 * caller keeps stays fp32.
 * Threading: a model is used by one thread at a time; ops inside run multi-threaded.
 * Errors: every fallible call returns shoal_status and logs what was wrong (file, tensor,
 * field, value); nothing from outside (config, checkpoint, token ids) can abort the process.
 * Tested by tests/model/test_gpt.c (shapes, gradients, decode, I/O, bad input) and
 * tests/model/test_gpt_ref.c (logits, loss, every gradient and 5 AdamW steps against PyTorch).
 */
#ifndef SHOAL_WORKER_MODEL_GPT_H
#define SHOAL_WORKER_MODEL_GPT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/dtype.h"
#include "common/status.h"
#include "kernels/ops.h"

typedef struct {
    int n_layer, n_head, n_embd, vocab_size, n_positions;
    float ln_eps;
} shoal_gpt_config;

typedef struct shoal_gpt shoal_gpt;

/* One tensor of the parameter block. name is the HF name ("transformer.h.0.attn.c_attn.weight");
 * shape as HF stores it; offset and numel in floats into shoal_gpt_params()/grads(). decay is 1
 * for tensors that take weight decay in GPT-2 practice (2-D: matmul weights and embeddings),
 * 0 for biases and layernorm parameters. */
typedef struct {
    char name[64];
    int ndim;
    int64_t shape[2];
    size_t offset;
    size_t numel;
    int decay;
} shoal_gpt_tensor;

/* ---- config ---- */

/* Read n_layer, n_head, n_embd, vocab_size, n_positions (or n_ctx), layer_norm_epsilon
 * (default 1e-5) from an HF config.json, range-checked against common/limits.h. Rejects
 * model_type other than "gpt2", activation functions other than GPT-2's tanh GELU, and n_inner
 * other than 4*n_embd, with UNSUPPORTED. Errors name the file and field. */
shoal_status shoal_gpt_config_load(const char *config_json_path, shoal_gpt_config *cfg);
/* The same checks on an already-parsed object; `what` names it in messages. */
shoal_status shoal_gpt_config_from_json(const json_t *obj, const char *what,
                                        shoal_gpt_config *cfg);
/* Validate a config built in code (ranges, n_embd % n_head, parameter count limit). */
shoal_status shoal_gpt_config_check(const shoal_gpt_config *cfg, const char *what);

/* ---- lifetime ---- */

typedef enum { SHOAL_PRECISION_FP32 = 0, SHOAL_PRECISION_BF16 = 1 } shoal_precision;

/* Where and how a model runs. backend CPU: n_threads as shoal_gpt_set_threads (device
 * ignored); CUDA: device index (n_threads ignored). */
typedef struct {
    shoal_backend backend;
    int device;
    shoal_precision precision;
    int n_threads;
} shoal_gpt_device;

/* CUDA devices a model can use: 0 in a build without CUDA or without a driver/device. */
int shoal_gpt_cuda_device_count(void);
/* 1 when this build has the CUDA backend. */
int shoal_gpt_cuda_built(void);

/* "fp32" / "bf16" ("invalid" otherwise); parse returns INVALID_ARG for other names. */
const char *shoal_precision_name(shoal_precision p);
shoal_status shoal_precision_parse(const char *name, shoal_precision *out);

/* Allocate a model with zeroed parameters and gradients, running on a CPU context with
 * OMP_NUM_THREADS (or all CPUs) threads. *out is NULL on error. */
shoal_status shoal_gpt_create(const shoal_gpt_config *cfg, shoal_gpt **out);
/* The same on a chosen device and precision. UNSUPPORTED (with the reason) for CUDA in a build
 * without it, BF16 on a CPU backend, or BF16 with a head dimension other than 64 or 128 (the
 * bf16 flash attention's); INVALID_ARG for a device index out of range. */
shoal_status shoal_gpt_create_on(const shoal_gpt_config *cfg, const shoal_gpt_device *dev,
                                 shoal_gpt **out);
/* The same on a context the caller made (tests: a guarded CPU table); the model takes
 * ownership of *ctx (released with the model, also on error) and runs fp32. */
shoal_status shoal_gpt_create_with_ctx(const shoal_gpt_config *cfg, shoal_ctx *ctx,
                                       shoal_gpt **out);
/* Move m to another device/precision, keeping its parameters (the fp32 values), loaded
 * config.json, and backward hook; activations, gradients (zeroed) and the KV cache are
 * reallocated. On error m is unchanged. */
shoal_status shoal_gpt_to_device(shoal_gpt *m, const shoal_gpt_device *dev);
shoal_precision shoal_gpt_precision(const shoal_gpt *m);
void shoal_gpt_free(shoal_gpt *m);
/* Use n threads for every op (n <= 0: OMP_NUM_THREADS or all CPUs). No-op on CUDA. */
shoal_status shoal_gpt_set_threads(shoal_gpt *m, int n_threads);
/* The context ops run on (owned by the model). */
shoal_ctx *shoal_gpt_ctx(shoal_gpt *m);

/* GPT-2 initialisation (HF _init_weights): weights and embeddings N(0, 0.02), the two residual
 * projections (attn.c_proj, mlp.c_proj) N(0, 0.02/sqrt(2*n_layer)), biases 0, layernorm 1/0.
 * Deterministic for a seed on every machine. */
shoal_status shoal_gpt_init_random(shoal_gpt *m, uint64_t seed);

/* ---- HF directories ---- */

/* Load dir/config.json and dir/model.safetensors (tensors in F32, F16 or BF16; names with or
 * without the "transformer." prefix; the causal-mask buffers "*.attn.bias"/"*.attn.masked_bias"
 * and an lm_head.weight equal to wte are accepted and ignored). Missing or extra tensors, wrong
 * shapes and unsupported dtypes are errors naming the file and tensor. */
shoal_status shoal_gpt_load_dir(const char *dir, shoal_gpt **out);
/* Copy parameters from a loaded safetensors file into m (same checks as load_dir). `path` names
 * the file in messages. */
shoal_status shoal_gpt_load_safetensors(shoal_gpt *m, const char *path);
/* The same from an opened (validated) safetensors handle; `what` names it in messages. On
 * error the parameters are unchanged. */
struct shoal_safetensors;
shoal_status shoal_gpt_load_tensors(shoal_gpt *m, const struct shoal_safetensors *sf,
                                    const char *what);
/* Write dir/model.safetensors (dtype F32 or BF16; HF GPT-2 names, shapes; metadata
 * {"format":"pt"}; no lm_head: tied), dir/config.json (HF GPT2Config keys; keys of a config the
 * model was loaded with are kept) and dir/shoal.json (provenance). Files are staged in a
 * temporary directory inside dir and renamed into place only when all are written, so an error
 * leaves the previous contents untouched. Other files in dir (tokenizer) are left alone. */
shoal_status shoal_gpt_save_dir(const shoal_gpt *m, const char *dir, shoal_dtype dtype);
/* As save_dir, with extra provenance fields (job, data sha256, steps, DP epsilon/delta, parent
 * model...) merged into shoal.json; provenance may be NULL. */
shoal_status shoal_gpt_save_dir_ex(const shoal_gpt *m, const char *dir, shoal_dtype dtype,
                                   const json_t *provenance);

/* ---- parameters ---- */

const shoal_gpt_config *shoal_gpt_cfg(const shoal_gpt *m);
size_t shoal_gpt_num_params(const shoal_gpt *m);
/* The fp32 parameter (master) and gradient blocks in BACKEND memory: host pointers on the CPU
 * table (shoal_gpt_ctx(m)->k->host_visible), device pointers on CUDA: hand them to ops and
 * device collectives, or copy (the functions below). shoal_gpt_params() assumes the caller
 * writes through it: in BF16 the bf16 copy is refreshed before the next forward. */
float *shoal_gpt_params(shoal_gpt *m);
float *shoal_gpt_grads(shoal_gpt *m);
const float *shoal_gpt_params_const(const shoal_gpt *m);
/* Copies of the whole fp32 parameter / gradient block (n_params floats) to and from host
 * memory, on every backend (blocking). */
shoal_status shoal_gpt_params_to_host(const shoal_gpt *m, float *dst);
shoal_status shoal_gpt_params_from_host(shoal_gpt *m, const float *src);
shoal_status shoal_gpt_grads_to_host(const shoal_gpt *m, float *dst);
/* AdamW (ops.h semantics) on parameters [off, off+n) with their gradients and the caller's
 * fp32 moments ms, vs (n each, backend memory: shoal_ctx_alloc on shoal_gpt_ctx(m)). In BF16
 * the fused mixed update also rewrites the bf16 copy. INVALID_ARG for a range outside the
 * block. */
shoal_status shoal_gpt_adamw_update(shoal_gpt *m, size_t off, size_t n, float *ms, float *vs,
                                    float lr, float beta1, float beta2, float eps,
                                    float weight_decay, int step, float grad_scale);
/* Parameter table, in buffer order: wte, wpe, then per layer ln_1, attn.c_attn, attn.c_proj,
 * ln_2, mlp.c_fc, mlp.c_proj (weight then bias each), then ln_f. */
int shoal_gpt_num_tensors(const shoal_gpt *m);
const shoal_gpt_tensor *shoal_gpt_tensor_at(const shoal_gpt *m, int i);
/* NULL when absent. */
const shoal_gpt_tensor *shoal_gpt_tensor_find(const shoal_gpt *m, const char *name);
/* Number of parameters of a config (0 when it overflows). */
size_t shoal_gpt_config_num_params(const shoal_gpt_config *cfg);

/* ---- training ---- */

/* Forward over tokens (B,T). With targets (B,T): per-token losses (ignored targets < 0 give 0)
 * and *mean_loss = mean over tokens with mask != 0 and target >= 0 (mask NULL = all); the state
 * for backward is kept. targets NULL: logits only, *mean_loss (may be NULL) set to 0.
 * INVALID_ARG for token or target ids >= vocab_size or < 0 (tokens), T > n_positions, B or T
 * < 1, or a mask that selects no token. mask is copied. */
shoal_status shoal_gpt_forward(shoal_gpt *m, const int32_t *tokens, const int32_t *targets,
                               const uint8_t *mask, int B, int T, float *mean_loss);
/* (B,T,V) logits of the last forward, in HOST memory (copied from the device, and from bf16,
 * on the first call after a forward on a non-host backend; NULL when that copy fails);
 * overwritten by backward (it reuses the buffer). */
const float *shoal_gpt_logits(const shoal_gpt *m);
/* (B,T) per-token losses of the last forward with targets, in host memory. */
const float *shoal_gpt_token_losses(const shoal_gpt *m);
void shoal_gpt_zero_grad(shoal_gpt *m);
/* Backward of the last forward (which must have had targets): ADDS d(mean_loss)/d(params) to
 * the gradient buffer, so calls between zero_grad calls accumulate. INVALID_ARG without a
 * forward with targets, or when called twice for one forward. */
shoal_status shoal_gpt_backward(shoal_gpt *m);
/* Optional hook into backward, for overlapping the gradient all-reduce with it. backward calls
 * fn(arg, offset, n) each time gradient elements [offset, offset+n) of shoal_gpt_grads() are
 * final for that backward call (nothing later in it writes them), in this order:
 *   1. ln_f (weight, bias) right after its layernorm backward;
 *   2. layer L-1, then L-2, ..., then 0: each layer's whole block (ln_1 .. mlp.c_proj.bias)
 *      right after that layer's backward;
 *   3. wte and wpe together ([0, (vocab+n_positions)*n_embd)) at the very end: wte is tied to
 *      lm_head, so its gradient has a term from the first step of backward and one from the
 *      last (the embedding).
 * The ranges are disjoint and cover every parameter once per backward call. On a stream
 * backend the kernels producing a range are enqueued, not done, when fn runs; the consumer
 * must order after the compute stream (the NCCL communicator does). A non-OK status from fn
 * stops backward and is returned. fn NULL removes the hook. */
typedef shoal_status (*shoal_gpt_backward_hook)(void *arg, size_t offset, size_t n);
void shoal_gpt_set_backward_hook(shoal_gpt *m, shoal_gpt_backward_hook fn, void *arg);

/* ---- decoding ---- */

typedef struct {
    float temperature; /* <= 0: greedy (argmax) */
    int top_k;         /* keep the k most likely tokens; <= 0: all */
    float top_p;       /* nucleus: smallest set with probability >= top_p; >= 1 or <= 0: all */
    uint64_t seed;     /* same seed, same model, same prompt: same tokens */
} shoal_sampling;

/* Generate up to max_new tokens after prompt (n_prompt >= 1 ids < vocab_size) with a KV cache.
 * out (room for max_new) receives only the new tokens; stops after sampling eot_id (which is
 * not written; eot_id < 0 disables) or when the context reaches n_positions. *n_out = count.
 * s NULL = greedy. INVALID_ARG for bad ids or a prompt longer than n_positions. Runs the prompt
 * through the training activations (see decode_prefill). */
shoal_status shoal_gpt_generate(shoal_gpt *m, const int32_t *prompt, int n_prompt, int max_new,
                                const shoal_sampling *s, int32_t eot_id, int32_t *out,
                                int *n_out);

/* Lower-level decoding, one token at a time (the serving runtime batches on top of this):
 * reset the KV cache for sequences of up to max_T tokens, then feed tokens at positions 0, 1,
 * ... and read the (V) logits of each step. */
shoal_status shoal_gpt_decode_reset(shoal_gpt *m, int max_T);
/* Feed tokens[0..n) at positions 0..n-1 in one batched forward; *logits = the (V) logits after
 * the last one (host memory, as for decode_step; decoding runs the fp32 ops on the fp32
 * weights in both precisions). Uses (and invalidates) the training activations: a backward needs a new
 * forward afterwards. generate() does the same. */
shoal_status shoal_gpt_decode_prefill(shoal_gpt *m, const int32_t *tokens, int n,
                                      const float **logits);
shoal_status shoal_gpt_decode_step(shoal_gpt *m, int32_t token, int pos, const float **logits);
/* Pick the next token from (V) logits (modified in place) with the sampling settings and a
 * caller-held RNG state (seed it with s->seed). */
int32_t shoal_gpt_sample(float *logits, int V, const shoal_sampling *s, uint64_t *rng);

#endif
