/* service.c: see service.h. Handlers run on the RPC adapter's worker threads. */
#define SHOAL_LOG_SUBSYS "coordinator"
#include "coordinator/service.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/timeutil.h"
#include "coordinator/api.h"
#include "coordinator/hostfile.h"
#include "coordinator/scheduler.h"

typedef struct {
    shoal_store *store;
    _Atomic(shoal_scheduler *) sched; /* NULL until the scheduler is up */
    char token[65];
} service;

/* ---- data dir ---------------------------------------------------------------------------- */

shoal_status shoal_coordinator_init_data_dir(const char *dir, char token_out[65]) {
    char path[SHOAL_MAX_PATH], token[65];
    SHOAL_CHECK(shoal_mkdir_p(dir));
    chmod(dir, 0700);
    SHOAL_CHECK(shoal_path_join(path, sizeof path, dir, "token"));
    if (!shoal_path_exists(path)) {
        unsigned char b[32];
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, b, sizeof b) : -1;
        if (fd >= 0) close(fd);
        SHOAL_REQUIRE(n == (ssize_t)sizeof b, SHOAL_ERR_IO, "cannot read /dev/urandom");
        for (int i = 0; i < 32; i++) snprintf(token + 2 * i, 3, "%02x", b[i]);
        /* 0600 from the first byte: written to a temp file created with that mode */
        mode_t old = umask(077);
        shoal_status st = shoal_file_write_atomic(path, token, 64);
        umask(old);
        SHOAL_CHECK(st);
        SHOAL_LOG_INFO("created bearer token file %s (give it to submitters: --token-file)",
                       path);
    }
    char *buf = NULL;
    size_t len = 0;
    SHOAL_CHECK(shoal_file_read(path, 4096, &buf, &len));
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        buf[--len] = 0;
    int ok = len >= 16 && len <= 64;
    if (ok && token_out) memcpy(token_out, buf, len + 1);
    free(buf);
    SHOAL_REQUIRE(ok, SHOAL_ERR_FORMAT, "%s: expected a token of 16..64 characters", path);
    return SHOAL_OK;
}

/* ---- auth ------------------------------------------------------------------------------ */

static shoal_status auth(const char *bearer, const char *peer_cn, const char *method,
                         char *principal, size_t cap, void *user) {
    service *sv = user;
    (void)method;
    if (bearer && shoal_rpc_token_equal(bearer, sv->token)) {
        snprintf(principal, cap, "token");
        return SHOAL_OK;
    }
    if (!bearer && peer_cn && peer_cn[0]) {
        snprintf(principal, cap, "cn:%s", peer_cn);
        return SHOAL_OK;
    }
    return SHOAL_ERR_AUTH;
}

static shoal_scheduler *sched_of(service *sv, shoal_rpc_call *call) {
    shoal_scheduler *s = atomic_load(&sv->sched);
    if (!s) shoal_rpc_call_set_error(call, "the coordinator is starting up; try again");
    return s;
}

static shoal_status not_found(shoal_rpc_call *call, uint64_t id) {
    shoal_rpc_call_set_error(call, "no job %llu", (unsigned long long)id);
    return SHOAL_ERR_NOT_FOUND;
}

/* ---- JobService -------------------------------------------------------------------------- */

static shoal_status h_submit(shoal_rpc_call *call, const ProtobufCMessage *m, void *user) {
    service *sv = user;
    const Shoal__V1__SubmitJobRequest *req = (const Shoal__V1__SubmitJobRequest *)m;
    shoal_scheduler *sched = sched_of(sv, call);
    if (!sched) return SHOAL_ERR_COMM;
    shoal_job_spec spec;
    shoal_status st = shoal_job_spec_from_pb(req->spec, "SubmitJob", &spec);
    if (st != SHOAL_OK) {
        shoal_rpc_call_set_error(call, "%s", shoal_job_spec_last_error());
        return st;
    }
    uint64_t id = 0;
    st = shoal_store_job_insert(sv->store, &spec, shoal_rpc_call_principal(call),
                                req->idempotency_key, &id);
    shoal_job_spec_free(&spec);
    if (st == SHOAL_ERR_LIMIT) shoal_rpc_call_set_error(call, "too many jobs queued; try later");
    SHOAL_CHECK(st);
    shoal_scheduler_wake(sched);
    Shoal__V1__SubmitJobResponse resp = SHOAL__V1__SUBMIT_JOB_RESPONSE__INIT;
    resp.id = id;
    return shoal_rpc_call_send(call, &resp.base);
}

static shoal_status h_get(shoal_rpc_call *call, const ProtobufCMessage *m, void *user) {
    service *sv = user;
    uint64_t id = ((const Shoal__V1__GetJobRequest *)m)->id;
    shoal_job_record r;
    shoal_status st = shoal_store_job_get(sv->store, id, &r);
    if (st == SHOAL_ERR_NOT_FOUND) return not_found(call, id);
    SHOAL_CHECK(st);
    shoal_api_job_pb pb;
    shoal_api_job_to_pb(&r, &pb);
    Shoal__V1__GetJobResponse resp = SHOAL__V1__GET_JOB_RESPONSE__INIT;
    resp.job = &pb.job;
    st = shoal_rpc_call_send(call, &resp.base);
    shoal_job_record_free(&r);
    return st;
}

static shoal_status h_list(shoal_rpc_call *call, const ProtobufCMessage *m, void *user) {
    service *sv = user;
    const Shoal__V1__ListJobsRequest *req = (const Shoal__V1__ListJobsRequest *)m;
    unsigned mask = 0;
    for (size_t i = 0; i < req->n_states; i++) mask |= SHOAL_JOB_STATE_BIT(req->states[i]);
    uint64_t after = req->page_token && req->page_token[0] ? strtoull(req->page_token, NULL, 10) : 0;
    int limit = req->page_size > 0 ? req->page_size : 100;
    shoal_job_record *recs = NULL;
    int n = 0;
    SHOAL_CHECK(shoal_store_job_list(sv->store, mask, req->name_prefix, after, limit, &recs, &n));
    shoal_api_job_pb *pbs = calloc((size_t)(n > 0 ? n : 1), sizeof *pbs);
    Shoal__V1__Job **jobs = calloc((size_t)(n > 0 ? n : 1), sizeof *jobs);
    shoal_status st = SHOAL_ERR_NOMEM;
    if (pbs && jobs) {
        for (int i = 0; i < n; i++) {
            shoal_api_job_to_pb(&recs[i], &pbs[i]);
            jobs[i] = &pbs[i].job;
        }
        char next[32] = "";
        if (n == limit) snprintf(next, sizeof next, "%llu", (unsigned long long)recs[n - 1].id);
        Shoal__V1__ListJobsResponse resp = SHOAL__V1__LIST_JOBS_RESPONSE__INIT;
        resp.n_jobs = (size_t)n;
        resp.jobs = jobs;
        resp.next_page_token = next;
        st = shoal_rpc_call_send(call, &resp.base);
    }
    free(jobs);
    free(pbs);
    shoal_job_records_free(recs, n);
    return st;
}

static shoal_status h_cancel(shoal_rpc_call *call, const ProtobufCMessage *m, void *user) {
    service *sv = user;
    const Shoal__V1__CancelJobRequest *req = (const Shoal__V1__CancelJobRequest *)m;
    shoal_scheduler *sched = sched_of(sv, call);
    if (!sched) return SHOAL_ERR_COMM;
    char reason[300];
    if (req->reason && req->reason[0])
        snprintf(reason, sizeof reason, "%s", req->reason);
    else
        snprintf(reason, sizeof reason, "cancelled by %s", shoal_rpc_call_principal(call));
    shoal_job_state state = 0;
    shoal_status st = shoal_scheduler_cancel(sched, req->id, reason, 10000, &state);
    if (st == SHOAL_ERR_NOT_FOUND) return not_found(call, req->id);
    SHOAL_CHECK(st);
    Shoal__V1__CancelJobResponse resp = SHOAL__V1__CANCEL_JOB_RESPONSE__INIT;
    resp.state = (Shoal__V1__JobState)state;
    return shoal_rpc_call_send(call, &resp.base);
}

static shoal_status send_event(shoal_rpc_call *call, uint64_t id, shoal_job_state state,
                               const char *reason, const shoal_job_progress *p, double at) {
    Shoal__V1__Progress pp = SHOAL__V1__PROGRESS__INIT;
    pp.step = p->step;
    pp.total_steps = p->total_steps;
    pp.loss = p->loss;
    pp.tokens_per_s = p->tokens_per_s;
    pp.eta_s = p->eta_s;
    pp.updated_at = p->updated_at;
    Shoal__V1__JobEvent ev = SHOAL__V1__JOB_EVENT__INIT;
    ev.id = id;
    ev.state = (Shoal__V1__JobState)state;
    ev.reason = (char *)reason;
    ev.progress = &pp;
    ev.at = at;
    return shoal_rpc_call_send(call, &ev.base);
}

static shoal_status h_watch(shoal_rpc_call *call, const ProtobufCMessage *m, void *user) {
    service *sv = user;
    uint64_t id = ((const Shoal__V1__WatchJobRequest *)m)->id;
    shoal_scheduler *sched = sched_of(sv, call);
    if (!sched) return SHOAL_ERR_COMM;
    uint64_t gen = 0;
    shoal_job_event *ev = NULL;
    int n = 0;
    int64_t last_ev = 0;
    /* the history's last event, then the record: nothing can fall between the two reads
     * because later events are fetched by id */
    SHOAL_CHECK(shoal_store_job_events(sv->store, id, 0, 0, &ev, &n));
    if (n > 0) last_ev = ev[n - 1].id;
    free(ev);
    shoal_job_record r;
    shoal_status st = shoal_store_job_get(sv->store, id, &r);
    if (st == SHOAL_ERR_NOT_FOUND) return not_found(call, id);
    SHOAL_CHECK(st);
    shoal_job_state state = r.state;
    shoal_job_progress prog = r.progress;
    st = send_event(call, id, state, r.reason, &prog, shoal_wall_s());
    shoal_job_record_free(&r);
    while (st == SHOAL_OK && !shoal_job_state_terminal(state)) {
        if (shoal_rpc_call_cancelled(call)) return SHOAL_ERR_COMM;
        shoal_scheduler_wait_change(sched, &gen, 1000);
        st = shoal_store_job_get(sv->store, id, &r);
        if (st != SHOAL_OK) break;
        shoal_job_progress now = r.progress;
        shoal_job_record_free(&r);
        SHOAL_CHECK(shoal_store_job_events(sv->store, id, last_ev, 100, &ev, &n));
        for (int i = 0; i < n && st == SHOAL_OK; i++) {
            st = send_event(call, id, ev[i].to, ev[i].reason, &now, ev[i].at);
            state = ev[i].to;
            last_ev = ev[i].id;
        }
        free(ev);
        if (st == SHOAL_OK && n == 0 && now.updated_at != prog.updated_at)
            st = send_event(call, id, state, "progress", &now, now.updated_at);
        prog = now;
    }
    return st;
}

static shoal_status h_logs(shoal_rpc_call *call, const ProtobufCMessage *m, void *user) {
    service *sv = user;
    const Shoal__V1__GetLogsRequest *req = (const Shoal__V1__GetLogsRequest *)m;
    shoal_scheduler *sched = sched_of(sv, call);
    if (!sched) return SHOAL_ERR_COMM;
    int64_t after = req->after_seq;
    uint64_t gen = 0;
    shoal_job_record r;
    shoal_status st = shoal_store_job_get(sv->store, req->id, &r);
    if (st == SHOAL_ERR_NOT_FOUND) return not_found(call, req->id);
    SHOAL_CHECK(st);
    shoal_job_record_free(&r);
    for (;;) {
        if (shoal_rpc_call_cancelled(call)) return SHOAL_ERR_COMM;
        /* state first, lines second: lines logged before the job ended are all read */
        SHOAL_CHECK(shoal_store_job_get(sv->store, req->id, &r));
        int done = shoal_job_state_terminal(r.state);
        shoal_job_record_free(&r);
        shoal_log_line *l = NULL;
        int n = 0;
        SHOAL_CHECK(shoal_store_log_read(sv->store, req->id, after, 500, &l, &n));
        for (int i = 0; i < n && st == SHOAL_OK; i++) {
            Shoal__V1__LogLine ll = SHOAL__V1__LOG_LINE__INIT;
            ll.seq = l[i].seq;
            ll.rank = l[i].rank;
            ll.stream = l[i].stream;
            ll.text = l[i].text;
            ll.at = l[i].at;
            st = shoal_rpc_call_send(call, &ll.base);
            after = l[i].seq;
        }
        shoal_log_lines_free(l, n);
        SHOAL_CHECK(st);
        if (n == 500) continue;
        if (!req->follow || done) return SHOAL_OK;
        shoal_scheduler_wait_change(sched, &gen, 1000);
    }
}

/* ---- RunService -------------------------------------------------------------------------- */

static shoal_status check_run(service *sv, shoal_rpc_call *call,
                              const Shoal__V1__RunIdentity *run, shoal_job_record *r) {
    shoal_status st = shoal_store_job_get(sv->store, run->job_id, r);
    if (st == SHOAL_ERR_NOT_FOUND) return not_found(call, run->job_id);
    SHOAL_CHECK(st);
    if (!r->run_token[0] || run->attempt != r->attempt ||
        !shoal_rpc_token_equal(run->run_token ? run->run_token : "", r->run_token)) {
        shoal_job_record_free(r);
        shoal_rpc_call_set_error(call, "run token does not match job %llu's current attempt",
                                 (unsigned long long)run->job_id);
        return SHOAL_ERR_AUTH;
    }
    return SHOAL_OK;
}

static shoal_status h_progress(shoal_rpc_call *call, const ProtobufCMessage *m, void *user) {
    service *sv = user;
    const Shoal__V1__ReportProgressRequest *req = (const Shoal__V1__ReportProgressRequest *)m;
    shoal_scheduler *sched = sched_of(sv, call);
    if (!sched) return SHOAL_ERR_COMM;
    shoal_job_record r;
    SHOAL_CHECK(check_run(sv, call, req->run, &r));
    int stop = r.state != SHOAL_JOB_RUNNING && r.state != SHOAL_JOB_STARTING;
    shoal_job_record_free(&r);
    shoal_job_progress p = {req->progress->step,         req->progress->total_steps,
                            req->progress->loss,         req->progress->tokens_per_s,
                            req->progress->eta_s,        shoal_wall_s()};
    SHOAL_CHECK(shoal_scheduler_report_progress(sched, req->run->job_id, &p));
    Shoal__V1__ReportProgressResponse resp = SHOAL__V1__REPORT_PROGRESS_RESPONSE__INIT;
    resp.cancel_requested = stop;
    return shoal_rpc_call_send(call, &resp.base);
}

static shoal_status h_checkpoint(shoal_rpc_call *call, const ProtobufCMessage *m, void *user) {
    service *sv = user;
    const Shoal__V1__ReportCheckpointRequest *req = (const Shoal__V1__ReportCheckpointRequest *)m;
    shoal_scheduler *sched = sched_of(sv, call);
    if (!sched) return SHOAL_ERR_COMM;
    shoal_job_record r;
    SHOAL_CHECK(check_run(sv, call, req->run, &r));
    shoal_job_record_free(&r);
    SHOAL_CHECK(shoal_scheduler_report_checkpoint(sched, req->run->job_id, req->path));
    Shoal__V1__ReportCheckpointResponse resp = SHOAL__V1__REPORT_CHECKPOINT_RESPONSE__INIT;
    return shoal_rpc_call_send(call, &resp.base);
}

static shoal_status h_exit(shoal_rpc_call *call, const ProtobufCMessage *m, void *user) {
    service *sv = user;
    const Shoal__V1__ReportExitRequest *req = (const Shoal__V1__ReportExitRequest *)m;
    shoal_job_record r;
    SHOAL_CHECK(check_run(sv, call, req->run, &r));
    shoal_job_record_free(&r);
    /* the launcher's view of the exit is authoritative; the rank's words go to the log */
    char line[1200];
    snprintf(line, sizeof line, "rank %d reported exit code %d%s%s", req->run->rank,
             req->exit_code, req->message && req->message[0] ? ": " : "",
             req->message ? req->message : "");
    SHOAL_CHECK(shoal_store_log_append(sv->store, req->run->job_id, req->run->rank, 2, line, NULL));
    Shoal__V1__ReportExitResponse resp = SHOAL__V1__REPORT_EXIT_RESPONSE__INIT;
    return shoal_rpc_call_send(call, &resp.base);
}

/* ---- the coordinator --------------------------------------------------------------------- */

/* The hostfile's hosts become the slot table. */
static shoal_status load_hostfile(shoal_store *store, const char *path) {
    char *buf = NULL;
    size_t len = 0;
    shoal_host *hosts = NULL;
    int n = 0;
    SHOAL_CHECK(shoal_file_read(path, 1 << 20, &buf, &len));
    shoal_status st = shoal_hostfile_parse(buf, len, path, &hosts, &n);
    free(buf);
    for (int i = 0; st == SHOAL_OK && i < n; i++) st = shoal_store_host_put(store, &hosts[i]);
    free(hosts);
    return st;
}

shoal_status shoal_coordinator_run(const shoal_coordinator_options *o,
                                   volatile sig_atomic_t *stop) {
    shoal_status st = SHOAL_OK;
    service sv;
    memset(&sv, 0, sizeof sv);
    shoal_rpc_server *srv = NULL;
    shoal_scheduler *sched = NULL;
    char path[SHOAL_MAX_PATH], scratch[SHOAL_LAUNCHER_SCRATCH_MAX], addr[600];
    shoal_launcher_kind kind = o->launcher ? o->launcher : SHOAL_LAUNCHER_LOCAL;
    SHOAL_REQUIRE(o->data_dir && o->listen, SHOAL_ERR_INVALID_ARG,
                  "coordinator: --listen and --data-dir are required");
    SHOAL_REQUIRE(strlen(o->data_dir) < sizeof scratch - 16, SHOAL_ERR_LIMIT,
                  "coordinator: data dir path too long");
    SHOAL_CHECK(shoal_coordinator_init_data_dir(o->data_dir, sv.token));
    SHOAL_CHECK(shoal_path_join(path, sizeof path, o->data_dir, "shoal.db"));
    SHOAL_CHECK(shoal_store_open(path, &sv.store));
    snprintf(scratch, sizeof scratch, "%s/scratch", o->data_dir);
    if (kind == SHOAL_LAUNCHER_HOSTFILE) {
        SHOAL_REQUIRE_GOTO(o->hostfile, SHOAL_ERR_INVALID_ARG,
                           "coordinator: --launcher hostfile needs --hostfile FILE");
        SHOAL_CHECK_GOTO(load_hostfile(sv.store, o->hostfile));
    } else if (kind == SHOAL_LAUNCHER_LOCAL) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        shoal_host h = {.name = "localhost", .addr = "localhost",
                        .cpu_slots = o->cpu_slots > 0 ? o->cpu_slots : (int)(cores > 0 ? cores : 1),
                        .gpus = o->gpus};
        SHOAL_CHECK_GOTO(shoal_store_host_put(sv.store, &h));
    }

    const shoal_rpc_route routes[] = {
        {&shoal_api_submit_job, h_submit, &sv},    {&shoal_api_get_job, h_get, &sv},
        {&shoal_api_list_jobs, h_list, &sv},       {&shoal_api_cancel_job, h_cancel, &sv},
        {&shoal_api_watch_job, h_watch, &sv},      {&shoal_api_get_logs, h_logs, &sv},
        {&shoal_api_report_progress, h_progress, &sv},
        {&shoal_api_report_checkpoint, h_checkpoint, &sv},
        {&shoal_api_report_exit, h_exit, &sv},
    };
    shoal_rpc_server_config sc = {.listen = o->listen,
                                  .tls_cert = o->tls_cert,
                                  .tls_key = o->tls_key,
                                  .tls_client_ca = o->tls_ca,
                                  .routes = routes,
                                  .n_routes = (int)(sizeof routes / sizeof routes[0]),
                                  .auth = auth,
                                  .auth_user = &sv};
    SHOAL_CHECK_GOTO(shoal_rpc_server_start(&sc, &srv));
    /* the address ranks and clients use: the listen host with the port actually bound */
    const char *colon = strrchr(o->listen, ':');
    int port = shoal_rpc_server_port(srv);
    if (colon && port > 0 && strncmp(o->listen, "unix:", 5) != 0)
        snprintf(addr, sizeof addr, "%.*s:%d", (int)(colon - o->listen), o->listen, port);
    else
        snprintf(addr, sizeof addr, "%s", o->listen);

    shoal_scheduler_config cfg = {.store = sv.store,
                                  .launcher = kind,
                                  .launch = {.scratch_dir = scratch,
                                             .slurm_conf = o->slurm_conf,
                                             .kill_grace_s = 5},
                                  .coordinator_addr = addr,
                                  .retry_base_s = o->retry_base_s};
    SHOAL_CHECK_GOTO(shoal_scheduler_init(&cfg, &sched));
    atomic_store(&sv.sched, sched);
    SHOAL_CHECK_GOTO(shoal_path_join(path, sizeof path, o->data_dir, "coordinator.addr"));
    SHOAL_CHECK_GOTO(shoal_file_write_atomic(path, addr, strlen(addr)));
    SHOAL_LOG_INFO("serving on %s (launcher %s, data in %s)", addr,
                   shoal_launcher_kind_str(kind), o->data_dir);
    while (!*stop) SHOAL_CHECK_GOTO(shoal_scheduler_step(sched, 200));
    SHOAL_LOG_INFO("stopping");
cleanup:
    shoal_rpc_server_free(srv); /* drains handlers, which may still use the scheduler */
    atomic_store(&sv.sched, NULL);
    shoal_scheduler_free(sched);
    shoal_store_close(sv.store);
    return st;
}
