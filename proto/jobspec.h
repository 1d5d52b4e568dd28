/* jobspec.h: the plain-C job spec (what `shoal submit job.json` sends), its JSON form and its
 * validation.
 *
 * What: shoal_job_spec mirrors shoal.v1.JobSpec (proto/shoal.proto); enum values are the proto
 * numbers. It is parsed from the user's job.json (or from the JSON the store keeps), checked
 * field by field (ranges, string lengths and characters, enum names, absolute paths) and
 * written back as canonical JSON.
 * Why shaped so: the coordinator, store and launchers see only this validated struct, never a
 * json_t or a protobuf message, so one function (shoal_job_spec_validate) decides what is a
 * legal job whichever way it arrived. Strings are heap-owned by the struct (free with
 * shoal_job_spec_free). Unknown JSON fields are refused: a typo such as "lerning_rate" must
 * not silently fall back to a default.
 * Tested by tests/coordinator/test_jobspec.c (valid specs, round trip, one malformed input per
 * rule) and tests/fuzz/fuzz_jobspec.c (seeds in tests/data/jobspec).
 */
#ifndef SHOAL_PROTO_JOBSPEC_H
#define SHOAL_PROTO_JOBSPEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* Same numbers as shoal.v1.JobKind. */
typedef enum {
    SHOAL_JOB_KIND_UNSPECIFIED = 0,
    SHOAL_JOB_KIND_FINETUNE = 1,
    SHOAL_JOB_KIND_COMMAND = 2,
    SHOAL_JOB_KIND_FEDERATED = 3,
    SHOAL_JOB_KIND_SERVE = 4,
} shoal_job_kind;

/* Same numbers as shoal.v1.LauncherKind. DEFAULT: whatever the coordinator was started with. */
typedef enum {
    SHOAL_LAUNCHER_DEFAULT = 0,
    SHOAL_LAUNCHER_LOCAL = 1,
    SHOAL_LAUNCHER_HOSTFILE = 2,
    SHOAL_LAUNCHER_SLURM = 3,
} shoal_launcher_kind;

typedef enum {
    SHOAL_LR_DEFAULT = 0,
    SHOAL_LR_COSINE = 1,
    SHOAL_LR_LINEAR = 2,
    SHOAL_LR_CONSTANT = 3,
} shoal_lr_schedule;

/* Zero in any field means "the trainer's default". */
typedef struct {
    double learning_rate;   /* (0, 10] */
    double weight_decay;    /* [0, 10] */
    int64_t warmup_steps;   /* [0, 1e9] */
    int64_t max_steps;      /* [0, 1e12] */
    int32_t batch_size;     /* [0, 65536] sequences per rank per micro-step */
    int32_t grad_accum_steps; /* [0, 65536] */
    int32_t seq_len;        /* [0, 1048576] */
    int32_t lora_rank;      /* [0, 4096]; 0 = full fine-tuning */
    double lora_alpha;      /* [0, 1e6] */
    int64_t seed;           /* [0, 2^53] */
    int32_t checkpoint_every; /* [0, 1e9] steps */
    shoal_lr_schedule lr_schedule;
} shoal_hyper;

typedef struct {
    int enabled;
    double noise_multiplier; /* [0, 1000] sigma */
    double max_grad_norm;    /* (0, 1e6] when enabled */
    double target_epsilon;   /* [0, 1e6]; 0 = none */
    double target_delta;     /* [0, 1) */
} shoal_dp_sgd;

typedef struct {
    char *name;               /* 1..SHOAL_MAX_JOB_NAME bytes of [A-Za-z0-9._-] */
    shoal_job_kind kind;
    int32_t priority;         /* [-100, 100], higher first */
    int32_t ranks;            /* [1, SHOAL_MAX_JOB_RANKS] */
    int32_t gpus_per_rank;    /* [0, SHOAL_MAX_GPUS_PER_RANK] */
    shoal_launcher_kind launcher;
    char *output_dir;         /* absolute path or NULL (command jobs) */
    int32_t max_retries;      /* [0, SHOAL_MAX_JOB_RETRIES] */
    int64_t time_limit_s;     /* [0, 366 days]; 0 = none */
    char *workdir;            /* absolute path or NULL */
    /* kind == FINETUNE */
    char *base_model_dir;     /* absolute */
    char *dataset_dir;        /* absolute */
    shoal_hyper hyper;
    shoal_dp_sgd dp;
    /* kind == COMMAND */
    char **argv;              /* argc entries, argv[0] non-empty */
    int argc;                 /* [1, SHOAL_MAX_JOB_ARGS] */
    char **env;               /* "KEY=VALUE" entries */
    int nenv;                 /* [0, SHOAL_MAX_JOB_ENV] */
} shoal_job_spec;

/* Zero the struct and set defaults (ranks 1, name "job"'s absence, no strings). */
void shoal_job_spec_init(shoal_job_spec *s);
/* Free the strings the struct owns and re-init it. NULL and repeated calls are no-ops. */
void shoal_job_spec_free(shoal_job_spec *s);
/* Deep copy src into dst (dst is overwritten, not freed). NOMEM on allocation failure. */
shoal_status shoal_job_spec_copy(shoal_job_spec *dst, const shoal_job_spec *src);

/* Parse the JSON form (see docs/architecture.md and the files in tests/data/jobspec). Relative paths are
 * resolved against base_dir when it is non-NULL and refused otherwise. `what` names the
 * document in errors. On success *out is filled and validated; on error *out is left freed
 * (init state) and the log names the field and value. FORMAT for wrong types/unknown fields,
 * INVALID_ARG for values out of range, UNSUPPORTED for federated/serve kinds (not yet). */
shoal_status shoal_job_spec_from_json(const json_t *doc, const char *base_dir, const char *what,
                                      shoal_job_spec *out);
shoal_status shoal_job_spec_parse(const char *buf, size_t len, const char *base_dir,
                                  const char *what, shoal_job_spec *out);
/* Read job.json (at most SHOAL_LIMIT_JOB_SPEC_BYTES); relative paths are resolved against the
 * directory that holds the file. */
shoal_status shoal_job_spec_load_file(const char *path, shoal_job_spec *out);

/* Check every field of an already-built spec (e.g. one decoded from protobuf). */
shoal_status shoal_job_spec_validate(const shoal_job_spec *s, const char *what);

/* Canonical JSON form (only non-default fields); caller json_decref()s *out. Parsing it back
 * with shoal_job_spec_from_json gives an equal spec. */
shoal_status shoal_job_spec_to_json(const shoal_job_spec *s, json_t **out);
/* Same, as a compact NUL-terminated string the caller free()s. */
shoal_status shoal_job_spec_to_string(const shoal_job_spec *s, char **out);

/* The message of the last error a jobspec function of this thread reported (also logged),
 * "" if none yet. For handing to a peer as an error detail. */
const char *shoal_job_spec_last_error(void);

/* 1 if a and b describe the same job (every field), else 0. */
int shoal_job_spec_equal(const shoal_job_spec *a, const shoal_job_spec *b);

/* Names used in JSON, tables and logs ("finetune", "local", "cosine"); "?" if out of range. */
const char *shoal_job_kind_str(shoal_job_kind k);
const char *shoal_launcher_kind_str(shoal_launcher_kind k);
const char *shoal_lr_schedule_str(shoal_lr_schedule k);
/* Parse a name; INVALID_ARG (logged with the accepted names) when unknown. */
shoal_status shoal_launcher_kind_parse(const char *s, shoal_launcher_kind *out);

#endif
