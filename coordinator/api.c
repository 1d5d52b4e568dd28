/* api.c: see api.h. */
#define SHOAL_LOG_SUBSYS "api"
#include "coordinator/api.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SMALL_REQUEST (64u << 10) /* every request but SubmitJob is tiny */

static shoal_status bad(char *why, size_t cap, const char *fmt, const char *field, long long v) {
    snprintf(why, cap, fmt, field, v);
    return SHOAL_ERR_INVALID_ARG;
}

static shoal_status check_id(uint64_t id, char *why, size_t cap) {
    if (id == 0 || id > (uint64_t)INT64_MAX) return bad(why, cap, "%s: %lld is not a job id", "id", (long long)id);
    return SHOAL_OK;
}

static shoal_status check_text(const char *s, size_t max, const char *field, char *why,
                               size_t cap) {
    size_t n = s ? strlen(s) : 0;
    if (n > max) return bad(why, cap, "%s: %lld bytes is too long", field, (long long)n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return bad(why, cap, "%s: control character at byte %lld", field, (long long)i);
    return SHOAL_OK;
}

static shoal_status v_submit(const ProtobufCMessage *m, char *why, size_t cap) {
    const Shoal__V1__SubmitJobRequest *r = (const Shoal__V1__SubmitJobRequest *)m;
    if (!r->spec) return bad(why, cap, "%s: missing%.0lld", "spec", 0);
    SHOAL_CHECK(check_text(r->idempotency_key, 128, "idempotency_key", why, cap));
    shoal_job_spec s;
    shoal_status st = shoal_job_spec_from_pb(r->spec, "SubmitJob", &s);
    if (st != SHOAL_OK) {
        snprintf(why, cap, "%s", shoal_job_spec_last_error());
        return st;
    }
    shoal_job_spec_free(&s);
    return SHOAL_OK;
}

static shoal_status v_get(const ProtobufCMessage *m, char *why, size_t cap) {
    return check_id(((const Shoal__V1__GetJobRequest *)m)->id, why, cap);
}

static shoal_status v_list(const ProtobufCMessage *m, char *why, size_t cap) {
    const Shoal__V1__ListJobsRequest *r = (const Shoal__V1__ListJobsRequest *)m;
    if (r->page_size < 0 || r->page_size > SHOAL_API_MAX_PAGE)
        return bad(why, cap, "%s: %lld is out of range [0, 1000]", "page_size", r->page_size);
    if (r->n_states > 6) return bad(why, cap, "%s: %lld entries, at most 6", "states", (long long)r->n_states);
    for (size_t i = 0; i < r->n_states; i++)
        if (r->states[i] < SHOAL__V1__JOB_STATE__JOB_STATE_QUEUED ||
            r->states[i] > SHOAL__V1__JOB_STATE__JOB_STATE_CANCELLED)
            return bad(why, cap, "%s: %lld is not a job state", "states", r->states[i]);
    SHOAL_CHECK(check_text(r->name_prefix, SHOAL_MAX_JOB_NAME, "name_prefix", why, cap));
    const char *t = r->page_token ? r->page_token : "";
    if (strlen(t) > 20) return bad(why, cap, "%s: %lld bytes is too long", "page_token", (long long)strlen(t));
    for (const char *p = t; *p; p++)
        if (*p < '0' || *p > '9') return bad(why, cap, "%s: not a token from ListJobs%.0lld", "page_token", 0);
    return SHOAL_OK;
}

static shoal_status v_cancel(const ProtobufCMessage *m, char *why, size_t cap) {
    const Shoal__V1__CancelJobRequest *r = (const Shoal__V1__CancelJobRequest *)m;
    SHOAL_CHECK(check_id(r->id, why, cap));
    return check_text(r->reason, 200, "reason", why, cap);
}

static shoal_status v_watch(const ProtobufCMessage *m, char *why, size_t cap) {
    return check_id(((const Shoal__V1__WatchJobRequest *)m)->id, why, cap);
}

static shoal_status v_logs(const ProtobufCMessage *m, char *why, size_t cap) {
    const Shoal__V1__GetLogsRequest *r = (const Shoal__V1__GetLogsRequest *)m;
    SHOAL_CHECK(check_id(r->id, why, cap));
    if (r->after_seq < 0) return bad(why, cap, "%s: %lld is negative", "after_seq", (long long)r->after_seq);
    return SHOAL_OK;
}

static shoal_status check_run(const Shoal__V1__RunIdentity *run, char *why, size_t cap) {
    if (!run) return bad(why, cap, "%s: missing%.0lld", "run", 0);
    SHOAL_CHECK(check_id(run->job_id, why, cap));
    if (run->attempt < 0 || run->attempt > SHOAL_MAX_JOB_RETRIES + 1000)
        return bad(why, cap, "%s: %lld is out of range", "run.attempt", run->attempt);
    if (run->rank < 0 || run->rank >= SHOAL_MAX_JOB_RANKS)
        return bad(why, cap, "%s: %lld is out of range", "run.rank", run->rank);
    return check_text(run->run_token, 128, "run.run_token", why, cap);
}

static int finite_nonneg(double x) { return isfinite(x) && x >= 0; }

static shoal_status v_progress(const ProtobufCMessage *m, char *why, size_t cap) {
    const Shoal__V1__ReportProgressRequest *r = (const Shoal__V1__ReportProgressRequest *)m;
    SHOAL_CHECK(check_run(r->run, why, cap));
    const Shoal__V1__Progress *p = r->progress;
    if (!p) return bad(why, cap, "%s: missing%.0lld", "progress", 0);
    if (p->step < 0 || p->total_steps < 0 || p->step > (int64_t)1e15 || p->total_steps > (int64_t)1e15)
        return bad(why, cap, "%s: %lld is out of range", "progress.step", (long long)p->step);
    if (!isfinite(p->loss) || !finite_nonneg(p->tokens_per_s) || !finite_nonneg(p->eta_s) ||
        !finite_nonneg(p->updated_at))
        return bad(why, cap, "%s: a value is negative or not finite%.0lld", "progress", 0);
    return SHOAL_OK;
}

static shoal_status v_checkpoint(const ProtobufCMessage *m, char *why, size_t cap) {
    const Shoal__V1__ReportCheckpointRequest *r = (const Shoal__V1__ReportCheckpointRequest *)m;
    SHOAL_CHECK(check_run(r->run, why, cap));
    if (r->step < 0) return bad(why, cap, "%s: %lld is negative", "step", (long long)r->step);
    SHOAL_CHECK(check_text(r->path, SHOAL_MAX_PATH - 1, "path", why, cap));
    if (!r->path || r->path[0] != '/') return bad(why, cap, "%s: must be absolute%.0lld", "path", 0);
    return check_text(r->sha256, 64, "sha256", why, cap);
}

static shoal_status v_exit(const ProtobufCMessage *m, char *why, size_t cap) {
    const Shoal__V1__ReportExitRequest *r = (const Shoal__V1__ReportExitRequest *)m;
    SHOAL_CHECK(check_run(r->run, why, cap));
    SHOAL_CHECK(check_text(r->message, 1024, "message", why, cap));
    return check_text(r->model_dir, SHOAL_MAX_PATH - 1, "model_dir", why, cap);
}

#define METHOD(var, svc, name, kind, req, resp, val, max, flags)                                   \
    const shoal_rpc_method var = {"/shoal.v1." svc "/" name, kind, &req##__descriptor,           \
                                  &resp##__descriptor, val, NULL, max, flags}

METHOD(shoal_api_submit_job, "JobService", "SubmitJob", SHOAL_RPC_UNARY,
       shoal__v1__submit_job_request, shoal__v1__submit_job_response, v_submit, 0, 0);
/* GetJob is one indexed row read on a WAL read connection (never behind the writer): short
 * enough to run on the server's completion-queue thread (SHOAL_RPC_INLINE; issue 6 item 8). */
METHOD(shoal_api_get_job, "JobService", "GetJob", SHOAL_RPC_UNARY, shoal__v1__get_job_request,
       shoal__v1__get_job_response, v_get, SMALL_REQUEST, SHOAL_RPC_INLINE);
METHOD(shoal_api_list_jobs, "JobService", "ListJobs", SHOAL_RPC_UNARY,
       shoal__v1__list_jobs_request, shoal__v1__list_jobs_response, v_list, SMALL_REQUEST, 0);
METHOD(shoal_api_cancel_job, "JobService", "CancelJob", SHOAL_RPC_UNARY,
       shoal__v1__cancel_job_request, shoal__v1__cancel_job_response, v_cancel, SMALL_REQUEST, 0);
METHOD(shoal_api_watch_job, "JobService", "WatchJob", SHOAL_RPC_SERVER_STREAM,
       shoal__v1__watch_job_request, shoal__v1__job_event, v_watch, SMALL_REQUEST, 0);
METHOD(shoal_api_get_logs, "JobService", "GetLogs", SHOAL_RPC_SERVER_STREAM,
       shoal__v1__get_logs_request, shoal__v1__log_line, v_logs, SMALL_REQUEST, 0);
/* RunService: ranks authenticate with their attempt's run token, checked by the handler. */
METHOD(shoal_api_report_progress, "RunService", "ReportProgress", SHOAL_RPC_UNARY,
       shoal__v1__report_progress_request, shoal__v1__report_progress_response, v_progress,
       SMALL_REQUEST, SHOAL_RPC_NO_AUTH);
METHOD(shoal_api_report_checkpoint, "RunService", "ReportCheckpoint", SHOAL_RPC_UNARY,
       shoal__v1__report_checkpoint_request, shoal__v1__report_checkpoint_response, v_checkpoint,
       SMALL_REQUEST, SHOAL_RPC_NO_AUTH);
METHOD(shoal_api_report_exit, "RunService", "ReportExit", SHOAL_RPC_UNARY,
       shoal__v1__report_exit_request, shoal__v1__report_exit_response, v_exit, SMALL_REQUEST,
       SHOAL_RPC_NO_AUTH);

void shoal_api_job_to_pb(const shoal_job_record *r, shoal_api_job_pb *o) {
    shoal__v1__job__init(&o->job);
    shoal__v1__progress__init(&o->progress);
    shoal_job_spec_to_pb(&r->spec, &o->spec);
    o->progress.step = r->progress.step;
    o->progress.total_steps = r->progress.total_steps;
    o->progress.loss = r->progress.loss;
    o->progress.tokens_per_s = r->progress.tokens_per_s;
    o->progress.eta_s = r->progress.eta_s;
    o->progress.updated_at = r->progress.updated_at;
    Shoal__V1__Job *j = &o->job;
    j->id = r->id;
    j->spec = &o->spec.spec;
    j->state = (Shoal__V1__JobState)r->state;
    j->reason = (char *)r->reason;
    j->submitted_at = r->submitted_at;
    j->started_at = r->started_at;
    j->finished_at = r->finished_at;
    j->exit_code = r->exit_code;
    j->attempt = r->attempt;
    j->progress = &o->progress;
    j->submitter = (char *)r->submitter;
    j->last_checkpoint = (char *)r->last_checkpoint;
}
