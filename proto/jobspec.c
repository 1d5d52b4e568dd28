/* jobspec.c: see jobspec.h. Parsing extracts fields with their JSON types (and the C type's
 * range, so nothing truncates); shoal_job_spec_validate then applies every semantic rule, so
 * the JSON path and the protobuf path share one set of rules. */
#define SHOAL_LOG_SUBSYS "jobspec"
#include "proto/jobspec.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/json.h"
#include "common/limits.h"

/* The last error message of this thread, for callers that must hand it to a peer (the RPC
 * layer's INVALID_ARGUMENT details) rather than only to the log. */
static _Thread_local char last_error[256];

const char *shoal_job_spec_last_error(void) { return last_error; }

static void js_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void js_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    SHOAL_LOG_ERROR("%s", last_error);
}
#define JS_ERROR(...) js_error(__VA_ARGS__)
#define JS_REQUIRE(cond, code, ...)                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            JS_ERROR(__VA_ARGS__);                                                                 \
            return (code);                                                                         \
        }                                                                                          \
    } while (0)

#define MAX_SEED (1ll << 53) /* exact in a double, so JSON round-trips it in any language */
#define MAX_TIME_LIMIT_S (366ll * 86400)

static const char *const kind_names[] = {"unspecified", "finetune", "command", "federated",
                                         "serve"};
static const char *const launcher_names[] = {"default", "local", "hostfile", "slurm"};
static const char *const lr_names[] = {"default", "cosine", "linear", "constant"};

const char *shoal_job_kind_str(shoal_job_kind k) {
    return (unsigned)k < 5 ? kind_names[k] : "?";
}
const char *shoal_launcher_kind_str(shoal_launcher_kind k) {
    return (unsigned)k < 4 ? launcher_names[k] : "?";
}
const char *shoal_lr_schedule_str(shoal_lr_schedule k) {
    return (unsigned)k < 4 ? lr_names[k] : "?";
}

static int find_name(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

shoal_status shoal_launcher_kind_parse(const char *s, shoal_launcher_kind *out) {
    int i = s ? find_name(s, launcher_names, 4) : -1;
    JS_REQUIRE(i >= 0, SHOAL_ERR_INVALID_ARG,
                  "unknown launcher \"%s\" (expected local, hostfile or slurm)", s ? s : "");
    *out = (shoal_launcher_kind)i;
    return SHOAL_OK;
}

void shoal_job_spec_init(shoal_job_spec *s) {
    memset(s, 0, sizeof *s);
    s->ranks = 1;
}

static void free_strv(char **v, int n) {
    if (!v) return;
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

void shoal_job_spec_free(shoal_job_spec *s) {
    if (!s) return;
    free(s->name);
    free(s->output_dir);
    free(s->workdir);
    free(s->base_model_dir);
    free(s->dataset_dir);
    free_strv(s->argv, s->argc);
    free_strv(s->env, s->nenv);
    shoal_job_spec_init(s);
}

static shoal_status dup_str(char **dst, const char *src) {
    *dst = NULL;
    if (!src) return SHOAL_OK;
    *dst = strdup(src);
    JS_REQUIRE(*dst, SHOAL_ERR_NOMEM, "out of memory copying a job spec string");
    return SHOAL_OK;
}

static shoal_status dup_strv(char ***dst, const char *const *src, int n) {
    *dst = NULL;
    if (n <= 0) return SHOAL_OK;
    char **v = calloc((size_t)n, sizeof *v);
    JS_REQUIRE(v, SHOAL_ERR_NOMEM, "out of memory copying a job spec list");
    for (int i = 0; i < n; i++) {
        if (dup_str(&v[i], src[i]) != SHOAL_OK) {
            free_strv(v, n);
            return SHOAL_ERR_NOMEM;
        }
    }
    *dst = v;
    return SHOAL_OK;
}

shoal_status shoal_job_spec_copy(shoal_job_spec *dst, const shoal_job_spec *src) {
    shoal_status st = SHOAL_OK;
    *dst = *src;
    dst->name = dst->output_dir = dst->workdir = dst->base_model_dir = dst->dataset_dir = NULL;
    dst->argv = dst->env = NULL;
    SHOAL_CHECK_GOTO(dup_str(&dst->name, src->name));
    SHOAL_CHECK_GOTO(dup_str(&dst->output_dir, src->output_dir));
    SHOAL_CHECK_GOTO(dup_str(&dst->workdir, src->workdir));
    SHOAL_CHECK_GOTO(dup_str(&dst->base_model_dir, src->base_model_dir));
    SHOAL_CHECK_GOTO(dup_str(&dst->dataset_dir, src->dataset_dir));
    SHOAL_CHECK_GOTO(dup_strv(&dst->argv, (const char *const *)src->argv, src->argc));
    SHOAL_CHECK_GOTO(dup_strv(&dst->env, (const char *const *)src->env, src->nenv));
cleanup:
    if (st != SHOAL_OK) shoal_job_spec_free(dst);
    return st;
}

/* ---- validation ---------------------------------------------------------------------- */

/* Printable text: no control characters (they would break logs, tables and the generated
 * Slurm script) and at most max bytes. */
static shoal_status check_text(const char *what, const char *field, const char *v, size_t max,
                               int allow_empty) {
    JS_REQUIRE(v, SHOAL_ERR_INVALID_ARG, "%s: field \"%s\" is missing", what, field);
    size_t n = strlen(v);
    JS_REQUIRE(n > 0 || allow_empty, SHOAL_ERR_INVALID_ARG, "%s: field \"%s\" is empty", what,
                  field);
    JS_REQUIRE(n <= max, SHOAL_ERR_INVALID_ARG,
                  "%s: field \"%s\" is %zu bytes long, more than the %zu allowed", what, field, n,
                  max);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        JS_REQUIRE(c >= 0x20 && c != 0x7f, SHOAL_ERR_INVALID_ARG,
                      "%s: field \"%s\" contains a control character (byte 0x%02x at %zu)", what,
                      field, c, i);
    }
    return SHOAL_OK;
}

static shoal_status check_path(const char *what, const char *field, const char *v) {
    SHOAL_CHECK(check_text(what, field, v, SHOAL_MAX_PATH - 1, 0));
    JS_REQUIRE(v[0] == '/', SHOAL_ERR_INVALID_ARG,
                  "%s: field \"%s\"=\"%s\" must be an absolute path (the ranks may run on "
                  "another host)",
                  what, field, v);
    return SHOAL_OK;
}

#define RANGE(cond, field, fmt, val, lo, hi)                                                       \
    JS_REQUIRE(cond, SHOAL_ERR_INVALID_ARG,                                                     \
                  "%s: field \"" field "\"=" fmt " is out of range [" lo ", " hi "]", what, val)

static int finite_in(double x, double lo, double hi) { return isfinite(x) && x >= lo && x <= hi; }

static shoal_status validate_finetune(const shoal_job_spec *s, const char *what) {
    const shoal_hyper *h = &s->hyper;
    const shoal_dp_sgd *dp = &s->dp;
    SHOAL_CHECK(check_path(what, "finetune.base_model_dir", s->base_model_dir));
    SHOAL_CHECK(check_path(what, "finetune.dataset_dir", s->dataset_dir));
    JS_REQUIRE(s->output_dir, SHOAL_ERR_INVALID_ARG,
                  "%s: a finetune job needs \"output_dir\" (where checkpoints and the model go)",
                  what);
    RANGE(finite_in(h->learning_rate, 0, 10), "finetune.learning_rate", "%g", h->learning_rate,
          "0", "10");
    RANGE(finite_in(h->weight_decay, 0, 10), "finetune.weight_decay", "%g", h->weight_decay, "0",
          "10");
    RANGE(h->warmup_steps >= 0 && h->warmup_steps <= 1000000000ll, "finetune.warmup_steps",
          "%lld", (long long)h->warmup_steps, "0", "1e9");
    RANGE(h->max_steps >= 0 && h->max_steps <= 1000000000000ll, "finetune.max_steps", "%lld",
          (long long)h->max_steps, "0", "1e12");
    RANGE(h->batch_size >= 0 && h->batch_size <= 65536, "finetune.batch_size", "%d",
          (int)h->batch_size, "0", "65536");
    RANGE(h->grad_accum_steps >= 0 && h->grad_accum_steps <= 65536, "finetune.grad_accum_steps",
          "%d", (int)h->grad_accum_steps, "0", "65536");
    RANGE(h->seq_len >= 0 && h->seq_len <= 1048576, "finetune.seq_len", "%d", (int)h->seq_len,
          "0", "1048576");
    RANGE(h->lora_rank >= 0 && h->lora_rank <= 4096, "finetune.lora_rank", "%d",
          (int)h->lora_rank, "0", "4096");
    RANGE(finite_in(h->lora_alpha, 0, 1e6), "finetune.lora_alpha", "%g", h->lora_alpha, "0",
          "1e6");
    RANGE(h->seed >= 0 && h->seed <= MAX_SEED, "finetune.seed", "%lld", (long long)h->seed, "0",
          "2^53");
    RANGE(h->checkpoint_every >= 0 && h->checkpoint_every <= 1000000000,
          "finetune.checkpoint_every", "%d", (int)h->checkpoint_every, "0", "1e9");
    JS_REQUIRE((unsigned)h->lr_schedule <= SHOAL_LR_CONSTANT, SHOAL_ERR_INVALID_ARG,
                  "%s: field \"finetune.lr_schedule\" has unknown value %d", what,
                  (int)h->lr_schedule);
    RANGE(finite_in(dp->noise_multiplier, 0, 1000), "finetune.dp.noise_multiplier", "%g",
          dp->noise_multiplier, "0", "1000");
    RANGE(finite_in(dp->max_grad_norm, 0, 1e6), "finetune.dp.max_grad_norm", "%g",
          dp->max_grad_norm, "0", "1e6");
    RANGE(finite_in(dp->target_epsilon, 0, 1e6), "finetune.dp.target_epsilon", "%g",
          dp->target_epsilon, "0", "1e6");
    JS_REQUIRE(isfinite(dp->target_delta) && dp->target_delta >= 0 && dp->target_delta < 1,
                  SHOAL_ERR_INVALID_ARG,
                  "%s: field \"finetune.dp.target_delta\"=%g is out of range [0, 1)", what,
                  dp->target_delta);
    if (dp->enabled) {
        JS_REQUIRE(dp->max_grad_norm > 0, SHOAL_ERR_INVALID_ARG,
                      "%s: DP-SGD is enabled but \"finetune.dp.max_grad_norm\" (the clipping "
                      "bound) is not set",
                      what);
        JS_REQUIRE(dp->noise_multiplier > 0 || dp->target_epsilon > 0, SHOAL_ERR_INVALID_ARG,
                      "%s: DP-SGD is enabled: set \"finetune.dp.noise_multiplier\" or "
                      "\"finetune.dp.target_epsilon\"",
                      what);
        JS_REQUIRE(dp->target_epsilon == 0 || dp->target_delta > 0, SHOAL_ERR_INVALID_ARG,
                      "%s: \"finetune.dp.target_epsilon\" needs \"finetune.dp.target_delta\" "
                      "in (0, 1)",
                      what);
    }
    JS_REQUIRE(!s->argv && !s->env, SHOAL_ERR_INVALID_ARG,
                  "%s: a finetune job has no \"command\" section", what);
    return SHOAL_OK;
}

static shoal_status validate_command(const shoal_job_spec *s, const char *what) {
    char field[48];
    RANGE(s->argc >= 1 && s->argc <= SHOAL_MAX_JOB_ARGS, "command.argv (entries)", "%d", s->argc,
          "1", "256");
    JS_REQUIRE(s->argv, SHOAL_ERR_INVALID_ARG, "%s: \"command.argv\" is missing", what);
    for (int i = 0; i < s->argc; i++) {
        snprintf(field, sizeof field, "command.argv[%d]", i);
        SHOAL_CHECK(check_text(what, field, s->argv[i], SHOAL_MAX_JOB_ARG_BYTES, i > 0));
    }
    RANGE(s->nenv >= 0 && s->nenv <= SHOAL_MAX_JOB_ENV, "command.env (entries)", "%d", s->nenv,
          "0", "128");
    JS_REQUIRE(s->nenv == 0 || s->env, SHOAL_ERR_INVALID_ARG, "%s: \"command.env\" is missing",
                  what);
    for (int i = 0; i < s->nenv; i++) {
        snprintf(field, sizeof field, "command.env[%d]", i);
        const char *e = s->env[i];
        SHOAL_CHECK(check_text(what, field, e, SHOAL_MAX_JOB_ARG_BYTES, 0));
        const char *eq = strchr(e, '=');
        int ok = eq && eq != e && !(e[0] >= '0' && e[0] <= '9');
        for (const char *p = e; ok && p < eq; p++)
            ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                 (*p >= '0' && *p <= '9') || *p == '_';
        JS_REQUIRE(ok, SHOAL_ERR_INVALID_ARG,
                      "%s: field \"%s\"=\"%s\" must look like NAME=value with NAME of "
                      "[A-Za-z0-9_] not starting with a digit",
                      what, field, e);
    }
    JS_REQUIRE(!s->base_model_dir && !s->dataset_dir, SHOAL_ERR_INVALID_ARG,
                  "%s: a command job has no \"finetune\" section", what);
    return SHOAL_OK;
}

shoal_status shoal_job_spec_validate(const shoal_job_spec *s, const char *what) {
    if (!what) what = "job spec";
    JS_REQUIRE(s, SHOAL_ERR_INVALID_ARG, "%s: no spec", what);
    if (s->name) {
        SHOAL_CHECK(check_text(what, "name", s->name, SHOAL_MAX_JOB_NAME, 0));
        for (const char *p = s->name; *p; p++) {
            char c = *p;
            int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '.' || c == '_' || c == '-';
            JS_REQUIRE(ok, SHOAL_ERR_INVALID_ARG,
                          "%s: field \"name\"=\"%s\" may only contain letters, digits, '.', '_' "
                          "and '-'",
                          what, s->name);
        }
    }
    RANGE(s->priority >= -100 && s->priority <= 100, "priority", "%d", (int)s->priority, "-100",
          "100");
    RANGE(s->ranks >= 1 && s->ranks <= SHOAL_MAX_JOB_RANKS, "ranks", "%d", (int)s->ranks, "1",
          "4096");
    RANGE(s->gpus_per_rank >= 0 && s->gpus_per_rank <= SHOAL_MAX_GPUS_PER_RANK, "gpus_per_rank",
          "%d", (int)s->gpus_per_rank, "0", "16");
    JS_REQUIRE((unsigned)s->launcher <= SHOAL_LAUNCHER_SLURM, SHOAL_ERR_INVALID_ARG,
                  "%s: field \"launcher\" has unknown value %d", what, (int)s->launcher);
    if (s->output_dir) SHOAL_CHECK(check_path(what, "output_dir", s->output_dir));
    if (s->workdir) SHOAL_CHECK(check_path(what, "workdir", s->workdir));
    RANGE(s->max_retries >= 0 && s->max_retries <= SHOAL_MAX_JOB_RETRIES, "max_retries", "%d",
          (int)s->max_retries, "0", "100");
    RANGE(s->time_limit_s >= 0 && s->time_limit_s <= MAX_TIME_LIMIT_S, "time_limit_s", "%lld",
          (long long)s->time_limit_s, "0", "31622400");
    switch (s->kind) {
    case SHOAL_JOB_KIND_FINETUNE: return validate_finetune(s, what);
    case SHOAL_JOB_KIND_COMMAND: return validate_command(s, what);
    case SHOAL_JOB_KIND_FEDERATED:
    case SHOAL_JOB_KIND_SERVE:
        JS_ERROR("%s: %s jobs are not supported by this coordinator yet", what,
                        shoal_job_kind_str(s->kind));
        return SHOAL_ERR_UNSUPPORTED;
    default:
        JS_ERROR("%s: field \"kind\" has unknown value %d (expected finetune or command)",
                        what, (int)s->kind);
        return SHOAL_ERR_INVALID_ARG;
    }
}

/* ---- JSON -> struct --------------------------------------------------------------------- */

/* Refuse keys outside `allowed` (NULL-terminated): typos must not become silent defaults. */
static shoal_status check_keys(const json_t *obj, const char *what, const char *section,
                               const char *const *allowed) {
    JS_REQUIRE(json_is_object(obj), SHOAL_ERR_FORMAT, "%s: \"%s\" must be a JSON object", what,
                  section);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        int known = 0;
        for (const char *const *a = allowed; *a && !known; a++) known = strcmp(key, *a) == 0;
        if (!known) {
            if (!section[0])
                JS_ERROR("%s: unknown field \"%s\"", what, key);
            else
                JS_ERROR("%s: unknown field \"%s.%s\"", what, section, key);
            return SHOAL_ERR_FORMAT;
        }
    }
    return SHOAL_OK;
}

static shoal_status get_i32(const json_t *o, const char *key, const char *what, int32_t *out) {
    int64_t v = *out;
    SHOAL_CHECK(shoal_json_get_int(o, key, 0, INT32_MIN, INT32_MAX, what, &v));
    *out = (int32_t)v;
    return SHOAL_OK;
}

static shoal_status get_i64(const json_t *o, const char *key, const char *what, int64_t *out) {
    return shoal_json_get_int(o, key, 0, INT64_MIN, INT64_MAX, what, out);
}

static shoal_status get_f64(const json_t *o, const char *key, const char *what, double *out) {
    return shoal_json_get_num(o, key, 0, -HUGE_VAL, HUGE_VAL, what, out);
}

/* A path field: copied, and joined onto base_dir when relative and base_dir is given. */
static shoal_status get_path(const json_t *o, const char *key, const char *base_dir,
                             const char *what, char **out) {
    const char *v = NULL;
    SHOAL_CHECK(shoal_json_get_str(o, key, 0, what, &v));
    if (!v) return SHOAL_OK;
    if (v[0] != '/' && v[0] && base_dir) {
        size_t n = strlen(base_dir) + 1 + strlen(v) + 1;
        JS_REQUIRE(n <= SHOAL_MAX_PATH, SHOAL_ERR_INVALID_ARG,
                      "%s: field \"%s\": path too long once joined to %s", what, key, base_dir);
        *out = malloc(n);
        JS_REQUIRE(*out, SHOAL_ERR_NOMEM, "out of memory");
        snprintf(*out, n, "%s/%s", base_dir, v);
        return SHOAL_OK;
    }
    return dup_str(out, v);
}

static shoal_status get_strv(const json_t *o, const char *key, int max, const char *what,
                             char ***out, int *n) {
    json_t *a = json_object_get(o, key);
    if (!a) return SHOAL_OK;
    JS_REQUIRE(json_is_array(a), SHOAL_ERR_FORMAT,
                  "%s: field \"%s\" must be an array of strings", what, key);
    size_t len = json_array_size(a);
    JS_REQUIRE(len <= (size_t)max, SHOAL_ERR_INVALID_ARG,
                  "%s: field \"%s\" has %zu entries, more than the %d allowed", what, key, len,
                  max);
    if (len == 0) return SHOAL_OK;
    char **v = calloc(len, sizeof *v);
    JS_REQUIRE(v, SHOAL_ERR_NOMEM, "out of memory");
    *out = v;
    for (size_t i = 0; i < len; i++) {
        json_t *e = json_array_get(a, i);
        JS_REQUIRE(json_is_string(e), SHOAL_ERR_FORMAT, "%s: \"%s[%zu]\" must be a string",
                      what, key, i);
        SHOAL_CHECK(dup_str(&v[i], json_string_value(e)));
        *n = (int)i + 1;
    }
    return SHOAL_OK;
}

static shoal_status get_enum(const json_t *o, const char *key, const char *const *names, int n,
                             const char *accepted, const char *what, int *out) {
    const char *v = NULL;
    SHOAL_CHECK(shoal_json_get_str(o, key, 0, what, &v));
    if (!v) return SHOAL_OK;
    int i = find_name(v, names, n);
    JS_REQUIRE(i > 0, SHOAL_ERR_INVALID_ARG,
                  "%s: field \"%s\"=\"%s\" is not one of %s", what, key, v, accepted);
    *out = i;
    return SHOAL_OK;
}

static const char *const top_keys[] = {"name",         "kind",        "priority", "ranks",
                                       "gpus_per_rank", "launcher",   "output_dir",
                                       "max_retries",  "time_limit_s", "workdir",  "finetune",
                                       "command",      "federated",   "serve",    NULL};
static const char *const ft_keys[] = {
    "base_model_dir", "dataset_dir", "learning_rate", "weight_decay", "warmup_steps",
    "max_steps",      "batch_size",  "grad_accum_steps", "seq_len",   "lora_rank",
    "lora_alpha",     "seed",        "checkpoint_every", "lr_schedule", "dp",
    NULL};
static const char *const dp_keys[] = {"enabled",        "noise_multiplier", "max_grad_norm",
                                      "target_epsilon", "target_delta",     NULL};
static const char *const cmd_keys[] = {"argv", "env", NULL};

static shoal_status parse_finetune(const json_t *ft, const char *base_dir, const char *what,
                                   shoal_job_spec *s) {
    char w[256];
    snprintf(w, sizeof w, "%s: finetune", what);
    shoal_hyper *h = &s->hyper;
    SHOAL_CHECK(check_keys(ft, what, "finetune", ft_keys));
    SHOAL_CHECK(get_path(ft, "base_model_dir", base_dir, w, &s->base_model_dir));
    SHOAL_CHECK(get_path(ft, "dataset_dir", base_dir, w, &s->dataset_dir));
    SHOAL_CHECK(get_f64(ft, "learning_rate", w, &h->learning_rate));
    SHOAL_CHECK(get_f64(ft, "weight_decay", w, &h->weight_decay));
    SHOAL_CHECK(get_i64(ft, "warmup_steps", w, &h->warmup_steps));
    SHOAL_CHECK(get_i64(ft, "max_steps", w, &h->max_steps));
    SHOAL_CHECK(get_i32(ft, "batch_size", w, &h->batch_size));
    SHOAL_CHECK(get_i32(ft, "grad_accum_steps", w, &h->grad_accum_steps));
    SHOAL_CHECK(get_i32(ft, "seq_len", w, &h->seq_len));
    SHOAL_CHECK(get_i32(ft, "lora_rank", w, &h->lora_rank));
    SHOAL_CHECK(get_f64(ft, "lora_alpha", w, &h->lora_alpha));
    SHOAL_CHECK(get_i64(ft, "seed", w, &h->seed));
    SHOAL_CHECK(get_i32(ft, "checkpoint_every", w, &h->checkpoint_every));
    int lr = 0;
    SHOAL_CHECK(get_enum(ft, "lr_schedule", lr_names, 4, "cosine, linear, constant", w, &lr));
    h->lr_schedule = (shoal_lr_schedule)lr;
    json_t *dp = json_object_get(ft, "dp");
    if (dp) {
        snprintf(w, sizeof w, "%s: finetune.dp", what);
        SHOAL_CHECK(check_keys(dp, what, "finetune.dp", dp_keys));
        SHOAL_CHECK(shoal_json_get_bool(dp, "enabled", 0, w, &s->dp.enabled));
        SHOAL_CHECK(get_f64(dp, "noise_multiplier", w, &s->dp.noise_multiplier));
        SHOAL_CHECK(get_f64(dp, "max_grad_norm", w, &s->dp.max_grad_norm));
        SHOAL_CHECK(get_f64(dp, "target_epsilon", w, &s->dp.target_epsilon));
        SHOAL_CHECK(get_f64(dp, "target_delta", w, &s->dp.target_delta));
    }
    return SHOAL_OK;
}

static shoal_status parse_fields(const json_t *doc, const char *base_dir, const char *what,
                                 shoal_job_spec *s) {
    SHOAL_CHECK(check_keys(doc, what, "", top_keys));
    const char *name = NULL;
    SHOAL_CHECK(shoal_json_get_str(doc, "name", 0, what, &name));
    SHOAL_CHECK(dup_str(&s->name, name));
    int kind = 0, launcher = 0;
    SHOAL_CHECK(get_enum(doc, "kind", kind_names, 5, "finetune, command", what, &kind));
    SHOAL_CHECK(get_i32(doc, "priority", what, &s->priority));
    SHOAL_CHECK(get_i32(doc, "ranks", what, &s->ranks));
    SHOAL_CHECK(get_i32(doc, "gpus_per_rank", what, &s->gpus_per_rank));
    SHOAL_CHECK(get_enum(doc, "launcher", launcher_names, 4, "local, hostfile, slurm", what,
                         &launcher));
    s->launcher = (shoal_launcher_kind)launcher;
    SHOAL_CHECK(get_path(doc, "output_dir", base_dir, what, &s->output_dir));
    SHOAL_CHECK(get_i32(doc, "max_retries", what, &s->max_retries));
    SHOAL_CHECK(get_i64(doc, "time_limit_s", what, &s->time_limit_s));
    SHOAL_CHECK(get_path(doc, "workdir", base_dir, what, &s->workdir));

    const json_t *ft = json_object_get(doc, "finetune");
    const json_t *cmd = json_object_get(doc, "command");
    if (json_object_get(doc, "federated") || json_object_get(doc, "serve") ||
        kind == SHOAL_JOB_KIND_FEDERATED || kind == SHOAL_JOB_KIND_SERVE) {
        JS_ERROR("%s: federated and serve jobs are not supported by this coordinator yet",
                        what);
        return SHOAL_ERR_UNSUPPORTED;
    }
    JS_REQUIRE(!(ft && cmd), SHOAL_ERR_INVALID_ARG,
                  "%s: a job has either a \"finetune\" or a \"command\" section, not both", what);
    JS_REQUIRE(ft || cmd, SHOAL_ERR_INVALID_ARG,
                  "%s: a job needs a \"finetune\" or a \"command\" section", what);
    if (kind == 0) kind = ft ? SHOAL_JOB_KIND_FINETUNE : SHOAL_JOB_KIND_COMMAND;
    JS_REQUIRE((kind == SHOAL_JOB_KIND_FINETUNE) == (ft != NULL), SHOAL_ERR_INVALID_ARG,
                  "%s: \"kind\" is \"%s\" but the job has a \"%s\" section", what,
                  kind_names[kind], ft ? "finetune" : "command");
    s->kind = (shoal_job_kind)kind;
    if (ft) return parse_finetune(ft, base_dir, what, s);
    char w[256];
    snprintf(w, sizeof w, "%s: command", what);
    SHOAL_CHECK(check_keys(cmd, what, "command", cmd_keys));
    JS_REQUIRE(json_object_get(cmd, "argv"), SHOAL_ERR_FORMAT,
                  "%s: missing required field \"argv\"", w);
    SHOAL_CHECK(get_strv(cmd, "argv", SHOAL_MAX_JOB_ARGS, w, &s->argv, &s->argc));
    SHOAL_CHECK(get_strv(cmd, "env", SHOAL_MAX_JOB_ENV, w, &s->env, &s->nenv));
    return SHOAL_OK;
}

shoal_status shoal_job_spec_from_json(const json_t *doc, const char *base_dir, const char *what,
                                      shoal_job_spec *out) {
    if (!what) what = "job spec";
    shoal_job_spec_init(out);
    JS_REQUIRE(json_is_object(doc), SHOAL_ERR_FORMAT, "%s: a job spec must be a JSON object",
                  what);
    shoal_status st = parse_fields(doc, base_dir, what, out);
    if (st == SHOAL_OK) st = shoal_job_spec_validate(out, what);
    if (st != SHOAL_OK) shoal_job_spec_free(out);
    return st;
}

shoal_status shoal_job_spec_parse(const char *buf, size_t len, const char *base_dir,
                                  const char *what, shoal_job_spec *out) {
    if (!what) what = "job spec";
    shoal_job_spec_init(out);
    JS_REQUIRE(len <= shoal_limit(SHOAL_LIMIT_JOB_SPEC_BYTES), SHOAL_ERR_LIMIT,
                  "%s: %zu bytes is more than the job spec limit of %llu", what, len,
                  (unsigned long long)shoal_limit(SHOAL_LIMIT_JOB_SPEC_BYTES));
    json_t *doc = NULL;
    SHOAL_CHECK(shoal_json_load_buf(buf, len, what, &doc));
    shoal_status st = shoal_job_spec_from_json(doc, base_dir, what, out);
    json_decref(doc);
    return st;
}

shoal_status shoal_job_spec_load_file(const char *path, shoal_job_spec *out) {
    shoal_job_spec_init(out);
    char *buf = NULL;
    size_t len = 0;
    SHOAL_CHECK(shoal_file_read(path, shoal_limit(SHOAL_LIMIT_JOB_SPEC_BYTES), &buf, &len));
    /* Relative paths in job.json are relative to the file, as in docker-compose files. */
    char dir[SHOAL_MAX_PATH];
    const char *slash = strrchr(path, '/');
    shoal_status st = SHOAL_OK;
    if (!slash) {
        SHOAL_REQUIRE_GOTO(getcwd(dir, sizeof dir), SHOAL_ERR_IO, "cannot get the working "
                                                                  "directory");
    } else if (path[0] == '/') {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        if (!dir[0]) snprintf(dir, sizeof dir, "/");
    } else {
        char cwd[SHOAL_MAX_PATH];
        SHOAL_REQUIRE_GOTO(getcwd(cwd, sizeof cwd), SHOAL_ERR_IO, "cannot get the working "
                                                                  "directory");
        int n = snprintf(dir, sizeof dir, "%s/%.*s", cwd, (int)(slash - path), path);
        SHOAL_REQUIRE_GOTO(n > 0 && (size_t)n < sizeof dir, SHOAL_ERR_LIMIT, "%s: path too long",
                           path);
    }
    st = shoal_job_spec_parse(buf, len, dir, path, out);
cleanup:
    free(buf);
    return st;
}

/* ---- struct -> JSON --------------------------------------------------------------------- */

static int set_new(json_t *o, const char *k, json_t *v) { return json_object_set_new(o, k, v); }

static json_t *strv_json(char **v, int n) {
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) json_array_append_new(a, json_string(v[i]));
    return a;
}

shoal_status shoal_job_spec_to_json(const shoal_job_spec *s, json_t **out) {
    *out = NULL;
    json_t *o = json_object();
    JS_REQUIRE(o, SHOAL_ERR_NOMEM, "out of memory");
    int bad = 0;
    if (s->name) bad |= set_new(o, "name", json_string(s->name));
    bad |= set_new(o, "kind", json_string(shoal_job_kind_str(s->kind)));
    if (s->priority) bad |= set_new(o, "priority", json_integer(s->priority));
    bad |= set_new(o, "ranks", json_integer(s->ranks));
    if (s->gpus_per_rank) bad |= set_new(o, "gpus_per_rank", json_integer(s->gpus_per_rank));
    if (s->launcher)
        bad |= set_new(o, "launcher", json_string(shoal_launcher_kind_str(s->launcher)));
    if (s->output_dir) bad |= set_new(o, "output_dir", json_string(s->output_dir));
    if (s->max_retries) bad |= set_new(o, "max_retries", json_integer(s->max_retries));
    if (s->time_limit_s) bad |= set_new(o, "time_limit_s", json_integer(s->time_limit_s));
    if (s->workdir) bad |= set_new(o, "workdir", json_string(s->workdir));
    if (s->kind == SHOAL_JOB_KIND_FINETUNE) {
        const shoal_hyper *h = &s->hyper;
        json_t *ft = json_object();
        bad |= !ft || set_new(o, "finetune", ft);
        if (ft) {
            if (s->base_model_dir)
                bad |= set_new(ft, "base_model_dir", json_string(s->base_model_dir));
            if (s->dataset_dir) bad |= set_new(ft, "dataset_dir", json_string(s->dataset_dir));
            if (h->learning_rate) bad |= set_new(ft, "learning_rate", json_real(h->learning_rate));
            if (h->weight_decay) bad |= set_new(ft, "weight_decay", json_real(h->weight_decay));
            if (h->warmup_steps) bad |= set_new(ft, "warmup_steps", json_integer(h->warmup_steps));
            if (h->max_steps) bad |= set_new(ft, "max_steps", json_integer(h->max_steps));
            if (h->batch_size) bad |= set_new(ft, "batch_size", json_integer(h->batch_size));
            if (h->grad_accum_steps)
                bad |= set_new(ft, "grad_accum_steps", json_integer(h->grad_accum_steps));
            if (h->seq_len) bad |= set_new(ft, "seq_len", json_integer(h->seq_len));
            if (h->lora_rank) bad |= set_new(ft, "lora_rank", json_integer(h->lora_rank));
            if (h->lora_alpha) bad |= set_new(ft, "lora_alpha", json_real(h->lora_alpha));
            if (h->seed) bad |= set_new(ft, "seed", json_integer(h->seed));
            if (h->checkpoint_every)
                bad |= set_new(ft, "checkpoint_every", json_integer(h->checkpoint_every));
            if (h->lr_schedule)
                bad |= set_new(ft, "lr_schedule", json_string(shoal_lr_schedule_str(h->lr_schedule)));
            const shoal_dp_sgd *dp = &s->dp;
            if (dp->enabled || dp->noise_multiplier || dp->max_grad_norm || dp->target_epsilon ||
                dp->target_delta) {
                json_t *d = json_pack("{s:b,s:f,s:f,s:f,s:f}", "enabled", dp->enabled,
                                      "noise_multiplier", dp->noise_multiplier, "max_grad_norm",
                                      dp->max_grad_norm, "target_epsilon", dp->target_epsilon,
                                      "target_delta", dp->target_delta);
                bad |= !d || set_new(ft, "dp", d);
            }
        }
    } else if (s->kind == SHOAL_JOB_KIND_COMMAND) {
        json_t *c = json_object();
        bad |= !c || set_new(o, "command", c);
        if (c) {
            bad |= set_new(c, "argv", strv_json(s->argv, s->argc));
            if (s->nenv) bad |= set_new(c, "env", strv_json(s->env, s->nenv));
        }
    }
    if (bad) {
        json_decref(o);
        JS_ERROR("out of memory building a job spec's JSON");
        return SHOAL_ERR_NOMEM;
    }
    *out = o;
    return SHOAL_OK;
}

shoal_status shoal_job_spec_to_string(const shoal_job_spec *s, char **out) {
    json_t *o = NULL;
    *out = NULL;
    SHOAL_CHECK(shoal_job_spec_to_json(s, &o));
    *out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(o);
    JS_REQUIRE(*out, SHOAL_ERR_NOMEM, "out of memory serialising a job spec");
    return SHOAL_OK;
}

static int str_eq(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int strv_eq(char **a, int na, char **b, int nb) {
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (!str_eq(a[i], b[i])) return 0;
    return 1;
}

static int hyper_eq(const shoal_hyper *a, const shoal_hyper *b) {
    return a->learning_rate == b->learning_rate && a->weight_decay == b->weight_decay &&
           a->warmup_steps == b->warmup_steps && a->max_steps == b->max_steps &&
           a->batch_size == b->batch_size && a->grad_accum_steps == b->grad_accum_steps &&
           a->seq_len == b->seq_len && a->lora_rank == b->lora_rank &&
           a->lora_alpha == b->lora_alpha && a->seed == b->seed &&
           a->checkpoint_every == b->checkpoint_every && a->lr_schedule == b->lr_schedule;
}

int shoal_job_spec_equal(const shoal_job_spec *a, const shoal_job_spec *b) {
    return str_eq(a->name, b->name) && a->kind == b->kind && a->priority == b->priority &&
           a->ranks == b->ranks && a->gpus_per_rank == b->gpus_per_rank &&
           a->launcher == b->launcher && str_eq(a->output_dir, b->output_dir) &&
           a->max_retries == b->max_retries && a->time_limit_s == b->time_limit_s &&
           str_eq(a->workdir, b->workdir) && str_eq(a->base_model_dir, b->base_model_dir) &&
           str_eq(a->dataset_dir, b->dataset_dir) &&
           hyper_eq(&a->hyper, &b->hyper) &&
           a->dp.enabled == b->dp.enabled && a->dp.noise_multiplier == b->dp.noise_multiplier &&
           a->dp.max_grad_norm == b->dp.max_grad_norm &&
           a->dp.target_epsilon == b->dp.target_epsilon &&
           a->dp.target_delta == b->dp.target_delta && strv_eq(a->argv, a->argc, b->argv, b->argc) &&
           strv_eq(a->env, a->nenv, b->env, b->nenv);
}
