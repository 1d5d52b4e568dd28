/* limits.h: every limit shoal enforces, in one place, each with why it is what it is.
 *
 * Shaped after SQLite's sqliteLimit.h: each limit has a default (what a process uses unless
 * configured) and a hard ceiling (what configuration may raise it to, never beyond). Code
 * reads a limit through shoal_limit(); configuration lowers or raises it with
 * shoal_limit_set(), which refuses anything above the ceiling. Fixed-size buffers use the
 * SHOAL_MAX_* compile-time constants directly.
 * Tested by tests/common/test_limits.c.
 */
#ifndef SHOAL_COMMON_LIMITS_H
#define SHOAL_COMMON_LIMITS_H

#include <stdint.h>

#include "common/status.h"

/* ---- compile-time constants (sizes of fixed buffers) ---- */

/* Longest tensor name we accept. HF names are < 100 bytes; 256 leaves room for prefixes
 * such as "base_model.model.transformer.h.11.attn.c_attn.lora_A.weight". */
#define SHOAL_MAX_TENSOR_NAME 256
/* Tensor rank. Transformers use <= 4; 8 matches safetensors' practical use and our kernels. */
#define SHOAL_MAX_TENSOR_DIMS 8
/* Longest path we build (PATH_MAX on Linux is 4096). */
#define SHOAL_MAX_PATH 4096
/* Job names (shown in `shoal jobs`, used in Slurm job names): short labels, like Slurm's. */
#define SHOAL_MAX_JOB_NAME 64
/* Ranks of one job. Gang scheduling reserves them all at once; 4096 ranks is far beyond what
 * a small-model fine-tune uses (tens), and keeps a hostfile/sbatch script small. */
#define SHOAL_MAX_JOB_RANKS 4096
/* GPUs one rank may ask for: an 8- or 16-GPU node is the largest single host we expect. */
#define SHOAL_MAX_GPUS_PER_RANK 16
/* argv entries and environment entries of a generic command job, and bytes of each; Linux's
 * own limit (MAX_ARG_STRLEN) is 128 KiB per string, a job spec needs far less. */
#define SHOAL_MAX_JOB_ARGS 256
#define SHOAL_MAX_JOB_ENV 128
#define SHOAL_MAX_JOB_ARG_BYTES 4096
/* Relaunches of a failed job: each resumes from its last checkpoint; past 100 it is broken. */
#define SHOAL_MAX_JOB_RETRIES 100
/* Largest vocabulary a token shard may declare. Real tokenizers stay under 2^18 (GPT-2 50,257,
 * Gemma 256,000); 2^24 leaves room and keeps every id an exact float and a positive int32. */
#define SHOAL_MAX_VOCAB (1u << 24)
/* privacy/: RDP orders one accountant tracks. dp_accounting's default grid has 156; 1024
 * leaves room for dense custom grids while bounding the per-step cost and the state file. */
#define SHOAL_MAX_DP_ORDERS 1024
/* privacy/: largest RDP order accepted. Integer orders cost one term per unit of the order;
 * useful optima lie below a few thousand even at ε < 0.01, so 1e4 bounds the work per order. */
#define SHOAL_MAX_DP_ORDER 10000.0
/* privacy/: distinct (q, σ) phases in one accountant. A phase is a run of steps with the
 * same rate and noise; schedules change them a few times, not per step. Each costs one RDP
 * vector (8 bytes x orders), so 65536 phases x 156 orders = 80 MB at most. */
#define SHOAL_MAX_DP_PHASES 65536
/* worker/train/dpsgd: generators drawing DP noise in parallel, one per thread; a fixed array
 * of their statuses is kept per step. 256 is beyond any CPU this runs on. */
#define SHOAL_MAX_DP_NOISE_THREADS 256
/* worker/train/dpsgd: examples per forward/backward of a DP-SGD step (the Poisson batch is
 * cut into these). Activations and the stored output gradients grow linearly with it; 65536
 * rows is far past what fits in memory at any useful T, so it only rejects nonsense. */
#define SHOAL_MAX_DP_MICRO_BATCH 65536
/* worker/train/dpsgd: largest model (parameters) whose DP noise is drawn ahead, while the
 * step's forward and clipping pass run: the draw is kept as one int64 per parameter, so
 * 2^24 parameters cost 128 MB. Larger models draw their noise after the clipping pass. */
#define SHOAL_MAX_DP_PREDRAW_PARAMS ((uint64_t)1 << 24)
/* worker/model/gpt_dp: per-example weight gradients (floats, all linear layers of one
 * micro-batch) the norms pass may keep so that the clipped sum is a weighted sum of them
 * instead of a second GEMM per layer: B x (linear weights) floats, 4 MB for the tiny model at
 * B = 8. 2^25 floats (128 MB) keeps GPT-2-sized models (680 M floats at B = 8) on the ghost
 * path, which needs no such buffer. */
#define SHOAL_MAX_DP_KEEP_FLOATS ((size_t)1 << 25)
/* Longest bearer token accepted in an `authorization` header. Our tokens are 64 hex chars;
 * JWT-style tokens from other issuers stay under 2 KiB. Longer is refused unread. */
#define SHOAL_MAX_RPC_TOKEN 2048
/* Longest peer certificate CN or principal name handed to RPC handlers (X.509 caps CN at 64;
 * 256 leaves room for principals such as "token:submitter-ci"). Longer is refused, never cut. */
#define SHOAL_MAX_RPC_PRINCIPAL 256
/* Status details kept per RPC (what the peer sees as the error message). */
#define SHOAL_MAX_RPC_DETAILS 512

/* GPT config.json ranges (worker/model). Far above any "small language model" (GPT-2 XL has
 * 48 layers, 25 heads, 1600 channels, 50257 tokens, 1024 positions) yet small enough that no
 * product of two of them overflows an int and a hostile config cannot ask for absurd buffers. */
#define SHOAL_MAX_GPT_LAYERS 256
#define SHOAL_MAX_GPT_HEADS 256
#define SHOAL_MAX_GPT_EMBD 32768
#define SHOAL_MAX_GPT_VOCAB (1 << 22)
#define SHOAL_MAX_GPT_POSITIONS 65536

/* ---- runtime limits: default and ceiling ---- */
typedef enum {
    /* safetensors header JSON. The reference implementation caps it at 100 MB to stop a
     * header-length DoS; real GPT-2-class headers are a few tens of KB. */
    SHOAL_LIMIT_SAFETENSORS_HEADER_BYTES,
    /* Tensors in one safetensors file. GPT-2 XL has ~580; sharded 70B models ~1,000 per file. */
    SHOAL_LIMIT_SAFETENSORS_TENSORS,
    /* Elements in one tensor: 2^36 (256 GiB of fp32) is beyond any small model on one file. */
    SHOAL_LIMIT_TENSOR_ELEMENTS,
    /* A JSON document read from disk (config.json, job specs, manifests). Config files are
     * kilobytes; tokenizer.json for GPT-2 is ~1.4 MB, so 64 MB default. */
    SHOAL_LIMIT_JSON_FILE_BYTES,
    /* Any whole file we read into memory rather than mmap. */
    SHOAL_LIMIT_READ_FILE_BYTES,
    /* Tokens in one token shard (worker/train/shard.h). `shoal data prepare` starts a new
     * shard past this; readers refuse more. 2^28 tokens is ~768 MB of u16 tokens + mask, a
     * size that maps and validates in about a second; the ceiling 2^36 bounds offsets. */
    SHOAL_LIMIT_SHARD_TOKENS,
    /* Shards per split listed in a dataset manifest (dataset.json). 4096 shards of 2^28
     * tokens is 10^12 tokens, past any fine-tuning set. */
    SHOAL_LIMIT_DATASET_SHARDS,
    /* One JSONL line given to `shoal data prepare`. A fine-tuning example is a few KB; 1 MiB
     * allows long documents while bounding the line buffer (a file with no newline cannot
     * make us read it whole into memory). */
    SHOAL_LIMIT_JSONL_LINE_BYTES,
    /* Longest a rank may wait inside one collective (or communicator set-up) before it calls
     * the collective hung, aborts it and exits with an error: a hung collective is a bug. A dead
     * peer is noticed at once by worker/dist's liveness ring; this catches peers that are alive
     * but stuck. 30 s is far above any step's all-reduce here (512 MB over loopback TCP takes
     * ~1.5 s); the ceiling (1 day) lets a slow checkpoint barrier be allowed for explicitly. */
    SHOAL_LIMIT_COMM_TIMEOUT_MS,
    /* Ranks in one communicator. Rank tables (host, pid, liveness address) are allocated per
     * rank; 4096 covers any cluster a small-model job uses, 65536 is NCCL-scale. */
    SHOAL_LIMIT_COMM_RANKS,
    /* One tokenizer file (vocab.json, merges.txt, encoder.json, vocab.bpe, tokenizer.json).
     * GPT-2's are 0.5-1.4 MB and 250k-token vocabularies ~20 MB, so 64 MB default, 1 GB
     * ceiling. */
    SHOAL_LIMIT_TOKENIZER_FILE_BYTES,
    /* Tokens in a vocabulary: GPT-2 has 50,257, the largest public BPE vocabularies ~256k;
     * ids are int32 and tables are sized from this, so 1M default, 16M ceiling. */
    SHOAL_LIMIT_TOKENIZER_VOCAB,
    /* BPE merge rules: at most one per non-byte token, so the same bounds as the vocabulary. */
    SHOAL_LIMIT_TOKENIZER_MERGES,
    /* One gRPC message, each direction (send and receive are both set explicitly). gRPC's own
     * default is 4 MiB; tensors move as ~1 MiB chunks, so 16 MiB leaves room for big job specs
     * and manifests. The ceiling (1 GiB) stays far below gRPC's int32 length. Per-method
     * request caps (shoal_rpc_method.max_request_bytes) may be lower. */
    SHOAL_LIMIT_RPC_MESSAGE_BYTES,
    /* Server calls in flight at once (accepted, not yet finished). Past it a new call gets
     * RESOURCE_EXHAUSTED at once instead of queueing without bound. */
    SHOAL_LIMIT_RPC_INFLIGHT_CALLS,
    /* Handler threads of one RPC server's worker pool. Long streams (WatchJob) hold a thread
     * each, so the pool grows on demand up to this; calls beyond it wait in the queue. */
    SHOAL_LIMIT_RPC_HANDLER_THREADS,
    /* A PEM file (certificate chain, key, CA bundle). Real ones are a few KB; a 1 MiB CA
     * bundle is already unusual. */
    SHOAL_LIMIT_PEM_FILE_BYTES,
    /* Parameters of one model held in memory (fp32 params + grads + AdamW state = 16 bytes
     * each). 2^32 (16 GiB of fp32 weights) by default, so a bad config.json fails fast instead
     * of swapping; the ceiling 2^36 is beyond any model one node trains. */
    SHOAL_LIMIT_MODEL_PARAMS,
    /* A job spec (job.json or its JSON form in the store): real ones are < 4 KB; 256 KB
     * default leaves room for long argv lists, 4 MB ceiling keeps one submit cheap. */
    SHOAL_LIMIT_JOB_SPEC_BYTES,
    /* Log lines kept per job in the coordinator's store; older lines are dropped first, like
     * a bounded journal. 20,000 lines ~ a few MB per job; ceiling 10M lines. */
    SHOAL_LIMIT_JOB_LOG_LINES,
    /* Bytes of one captured log line; longer lines are split. A progress bar or a traceback
     * line fits in 4 KB; ceiling 1 MB. */
    SHOAL_LIMIT_JOB_LOG_LINE_BYTES,
    /* Jobs not yet finished (QUEUED/STARTING/RUNNING) the coordinator accepts before refusing
     * submissions with LIMIT: keeps scheduling passes bounded. Default 100k, ceiling 10M. */
    SHOAL_LIMIT_PENDING_JOBS,
    /* Threads polling one RPC server's completion queue (accept, decode, inline handlers,
     * final statuses). 1 by default: on the 2-core coordinator host a second one cost ~30% of
     * GetJob throughput with 64 calls in flight (docs/BENCHMARKS.md); bigger hosts may raise
     * it, so a preempted poller no longer stalls every call. Ceiling 64. */
    SHOAL_LIMIT_RPC_CQ_THREADS,
    SHOAL_LIMIT_COUNT
} shoal_limit_id;

typedef struct {
    const char *name;  /* e.g. "safetensors_header_bytes", for config keys and messages */
    uint64_t def;      /* default value */
    uint64_t ceiling;  /* no configuration may exceed this */
} shoal_limit_info;

/* The current value of a limit. Thread-safe to read. */
uint64_t shoal_limit(shoal_limit_id id);
/* Static description of a limit; NULL for an out-of-range id. */
const shoal_limit_info *shoal_limit_describe(shoal_limit_id id);
/* Set a limit: SHOAL_ERR_LIMIT if value is above the ceiling, INVALID_ARG if 0 or bad id. */
shoal_status shoal_limit_set(shoal_limit_id id, uint64_t value);
/* Look a limit up by name; SHOAL_ERR_NOT_FOUND if unknown. */
shoal_status shoal_limit_find(const char *name, shoal_limit_id *id);

#endif
