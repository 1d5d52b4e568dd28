/* jobspec_pb.c: see jobspec_pb.h. */
#define SHOAL_LOG_SUBSYS "jobspec"
#include "proto/jobspec_pb.h"

#include <stdlib.h>
#include <string.h>

#include "common/limits.h"

/* proto3 has no "unset" for strings: "" means absent. */
static char *opt(const char *s) { return s && s[0] ? (char *)s : NULL; }
static char *pb_str(const char *s) { return (char *)(s ? s : ""); }

void shoal_job_spec_to_pb(const shoal_job_spec *s, shoal_job_spec_pb *o) {
    shoal__v1__job_spec__init(&o->spec);
    shoal__v1__finetune_spec__init(&o->finetune);
    shoal__v1__hyperparameters__init(&o->hyper);
    shoal__v1__dp_sgd__init(&o->dp);
    shoal__v1__command_spec__init(&o->command);
    Shoal__V1__JobSpec *m = &o->spec;
    m->name = pb_str(s->name);
    m->kind = (Shoal__V1__JobKind)s->kind;
    m->priority = s->priority;
    m->ranks = s->ranks;
    m->gpus_per_rank = s->gpus_per_rank;
    m->launcher = (Shoal__V1__LauncherKind)s->launcher;
    m->output_dir = pb_str(s->output_dir);
    m->max_retries = s->max_retries;
    m->time_limit_s = s->time_limit_s;
    m->workdir = pb_str(s->workdir);
    if (s->kind == SHOAL_JOB_KIND_FINETUNE) {
        const shoal_hyper *h = &s->hyper;
        Shoal__V1__Hyperparameters *ph = &o->hyper;
        ph->learning_rate = h->learning_rate;
        ph->weight_decay = h->weight_decay;
        ph->warmup_steps = h->warmup_steps;
        ph->max_steps = h->max_steps;
        ph->batch_size = h->batch_size;
        ph->grad_accum_steps = h->grad_accum_steps;
        ph->seq_len = h->seq_len;
        ph->lora_rank = h->lora_rank;
        ph->lora_alpha = h->lora_alpha;
        ph->seed = h->seed;
        ph->checkpoint_every = h->checkpoint_every;
        ph->lr_schedule = h->lr_schedule ? (char *)shoal_lr_schedule_str(h->lr_schedule) : "";
        o->dp.enabled = s->dp.enabled != 0;
        o->dp.noise_multiplier = s->dp.noise_multiplier;
        o->dp.max_grad_norm = s->dp.max_grad_norm;
        o->dp.target_epsilon = s->dp.target_epsilon;
        o->dp.target_delta = s->dp.target_delta;
        o->finetune.base_model_dir = pb_str(s->base_model_dir);
        o->finetune.dataset_dir = pb_str(s->dataset_dir);
        o->finetune.hyper = ph;
        o->finetune.dp = &o->dp;
        m->body_case = SHOAL__V1__JOB_SPEC__BODY_FINETUNE;
        m->finetune = &o->finetune;
    } else if (s->kind == SHOAL_JOB_KIND_COMMAND) {
        o->command.n_argv = (size_t)(s->argc > 0 ? s->argc : 0);
        o->command.argv = s->argv;
        o->command.n_env = (size_t)(s->nenv > 0 ? s->nenv : 0);
        o->command.env = s->env;
        m->body_case = SHOAL__V1__JOB_SPEC__BODY_COMMAND;
        m->command = &o->command;
    }
}

static shoal_status dup_opt(char **dst, const char *src) {
    *dst = NULL;
    if (!opt(src)) return SHOAL_OK;
    *dst = strdup(src);
    SHOAL_REQUIRE(*dst, SHOAL_ERR_NOMEM, "out of memory");
    return SHOAL_OK;
}

static shoal_status dup_list(char ***dst, int *n, char *const *src, size_t count, size_t max,
                             const char *what, const char *field) {
    *dst = NULL;
    *n = 0;
    SHOAL_REQUIRE(count <= max, SHOAL_ERR_INVALID_ARG,
                  "%s: field \"%s\" has %zu entries, more than the %zu allowed", what, field,
                  count, max);
    if (count == 0) return SHOAL_OK;
    *dst = calloc(count, sizeof **dst);
    SHOAL_REQUIRE(*dst, SHOAL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < count; i++) {
        (*dst)[i] = strdup(src[i] ? src[i] : "");
        SHOAL_REQUIRE((*dst)[i], SHOAL_ERR_NOMEM, "out of memory");
        *n = (int)i + 1;
    }
    return SHOAL_OK;
}

static shoal_status copy_fields(const Shoal__V1__JobSpec *m, const char *what, shoal_job_spec *s) {
    SHOAL_CHECK(dup_opt(&s->name, m->name));
    s->kind = (shoal_job_kind)m->kind;
    s->priority = m->priority;
    s->ranks = m->ranks;
    s->gpus_per_rank = m->gpus_per_rank;
    s->launcher = (shoal_launcher_kind)m->launcher;
    SHOAL_CHECK(dup_opt(&s->output_dir, m->output_dir));
    s->max_retries = m->max_retries;
    s->time_limit_s = m->time_limit_s;
    SHOAL_CHECK(dup_opt(&s->workdir, m->workdir));
    shoal_job_kind body;
    switch (m->body_case) {
    case SHOAL__V1__JOB_SPEC__BODY_FINETUNE: body = SHOAL_JOB_KIND_FINETUNE; break;
    case SHOAL__V1__JOB_SPEC__BODY_COMMAND: body = SHOAL_JOB_KIND_COMMAND; break;
    case SHOAL__V1__JOB_SPEC__BODY_FEDERATED:
    case SHOAL__V1__JOB_SPEC__BODY_SERVE:
        SHOAL_LOG_ERROR("%s: federated and serve jobs are not supported by this coordinator yet",
                        what);
        return SHOAL_ERR_UNSUPPORTED;
    default:
        SHOAL_LOG_ERROR("%s: the job spec has neither a finetune nor a command body", what);
        return SHOAL_ERR_INVALID_ARG;
    }
    if (s->kind == SHOAL_JOB_KIND_UNSPECIFIED) s->kind = body;
    SHOAL_REQUIRE(s->kind == body, SHOAL_ERR_INVALID_ARG,
                  "%s: kind %d does not match the %s body", what, (int)m->kind,
                  shoal_job_kind_str(body));
    if (body == SHOAL_JOB_KIND_COMMAND) {
        const Shoal__V1__CommandSpec *c = m->command;
        SHOAL_REQUIRE(c, SHOAL_ERR_INVALID_ARG, "%s: empty command body", what);
        SHOAL_CHECK(dup_list(&s->argv, &s->argc, c->argv, c->n_argv, SHOAL_MAX_JOB_ARGS, what,
                             "command.argv"));
        SHOAL_CHECK(dup_list(&s->env, &s->nenv, c->env, c->n_env, SHOAL_MAX_JOB_ENV, what,
                             "command.env"));
        return SHOAL_OK;
    }
    const Shoal__V1__FinetuneSpec *f = m->finetune;
    SHOAL_REQUIRE(f, SHOAL_ERR_INVALID_ARG, "%s: empty finetune body", what);
    SHOAL_CHECK(dup_opt(&s->base_model_dir, f->base_model_dir));
    SHOAL_CHECK(dup_opt(&s->dataset_dir, f->dataset_dir));
    /* finetune needs both paths: validate() reports a missing one by name */
    if (f->hyper) {
        const Shoal__V1__Hyperparameters *h = f->hyper;
        s->hyper.learning_rate = h->learning_rate;
        s->hyper.weight_decay = h->weight_decay;
        s->hyper.warmup_steps = h->warmup_steps;
        s->hyper.max_steps = h->max_steps;
        s->hyper.batch_size = h->batch_size;
        s->hyper.grad_accum_steps = h->grad_accum_steps;
        s->hyper.seq_len = h->seq_len;
        s->hyper.lora_rank = h->lora_rank;
        s->hyper.lora_alpha = h->lora_alpha;
        s->hyper.seed = h->seed;
        s->hyper.checkpoint_every = h->checkpoint_every;
        const char *lr = h->lr_schedule ? h->lr_schedule : "";
        if (strcmp(lr, "cosine") == 0)
            s->hyper.lr_schedule = SHOAL_LR_COSINE;
        else if (strcmp(lr, "linear") == 0)
            s->hyper.lr_schedule = SHOAL_LR_LINEAR;
        else if (strcmp(lr, "constant") == 0)
            s->hyper.lr_schedule = SHOAL_LR_CONSTANT;
        else
            SHOAL_REQUIRE(lr[0] == 0, SHOAL_ERR_INVALID_ARG,
                          "%s: field \"finetune.hyper.lr_schedule\"=\"%.40s\" is not one of "
                          "cosine, linear, constant",
                          what, lr);
    }
    if (f->dp) {
        s->dp.enabled = f->dp->enabled ? 1 : 0;
        s->dp.noise_multiplier = f->dp->noise_multiplier;
        s->dp.max_grad_norm = f->dp->max_grad_norm;
        s->dp.target_epsilon = f->dp->target_epsilon;
        s->dp.target_delta = f->dp->target_delta;
    }
    return SHOAL_OK;
}

shoal_status shoal_job_spec_from_pb(const Shoal__V1__JobSpec *m, const char *what,
                                    shoal_job_spec *out) {
    if (!what) what = "job spec";
    shoal_job_spec_init(out);
    SHOAL_REQUIRE(m, SHOAL_ERR_INVALID_ARG, "%s: no job spec", what);
    shoal_status st = copy_fields(m, what, out);
    if (st == SHOAL_OK) st = shoal_job_spec_validate(out, what);
    if (st != SHOAL_OK) shoal_job_spec_free(out);
    return st;
}
