/* cmd_jobs.c: the submitter's commands: `shoal submit job.json`, `jobs`, `job ID`, `watch ID`,
 * `logs [-f] ID`, `cancel ID`. Thin: parse flags, call JobService (coordinator/api.h) through
 * the RPC adapter, print. Connection flags and their env/config fallbacks: coordinator/client.h.
 * Tested by tests/coordinator/test_e2e.sh. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "common/progress.h"
#include "common/timeutil.h"
#include "coordinator/api.h"
#include "coordinator/client.h"

static const char *state_name(int s) {
    static const char *const n[] = {"?",         "queued", "starting", "running",
                                    "succeeded", "failed", "cancelled"};
    return s >= 0 && s <= 6 ? n[s] : "?";
}

static int terminal(int s) { return s >= 4 && s <= 6; }

/* Connect with the resolved settings; prints why on failure. */
static shoal_rpc_client *connect_or_die(int *argc, char **argv, const char *cmd) {
    shoal_client_conf c;
    shoal_rpc_client *cli = NULL;
    if (shoal_client_conf_resolve(argc, argv, &c) != SHOAL_OK ||
        shoal_client_connect(&c, &cli) != SHOAL_OK) {
        fprintf(stderr, "shoal %s: cannot set up a connection to the coordinator\n", cmd);
        return NULL;
    }
    return cli;
}

static int report(const char *cmd, shoal_status st, const shoal_rpc_result *res) {
    fprintf(stderr, "shoal %s: %s%s%s\n", cmd, res && res->code ? shoal_rpc_code_str(res->code)
                                                               : shoal_status_str(st),
            res && res->details[0] ? ": " : "", res ? res->details : "");
    if (res && res->code == SHOAL_RPC_UNAVAILABLE)
        fprintf(stderr, "  (is the coordinator running? set --coordinator or SHOAL_COORDINATOR)\n");
    if (res && res->code == SHOAL_RPC_UNAUTHENTICATED)
        fprintf(stderr, "  (pass the coordinator's token: --token-file DATA_DIR/token or "
                        "SHOAL_TOKEN_FILE)\n");
    return 1;
}

static int parse_id(const char *s, uint64_t *id) {
    char *end = NULL;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || !*s || *end || v == 0) return -1;
    *id = v;
    return 0;
}

int shoal_cmd_submit(int argc, char **argv) {
    shoal_rpc_client *cli = connect_or_die(&argc, argv, "submit");
    if (!cli) return 1;
    int rc = 2;
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: shoal submit [connection flags] job.json\n");
        goto out;
    }
    shoal_job_spec spec;
    if (shoal_job_spec_load_file(argv[1], &spec) != SHOAL_OK) {
        fprintf(stderr, "shoal submit: %s: %s\n", argv[1], shoal_job_spec_last_error());
        goto out;
    }
    shoal_job_spec_pb pb;
    shoal_job_spec_to_pb(&spec, &pb);
    Shoal__V1__SubmitJobRequest req = SHOAL__V1__SUBMIT_JOB_REQUEST__INIT;
    req.spec = &pb.spec;
    ProtobufCMessage *resp = NULL;
    shoal_rpc_result res;
    shoal_status st = shoal_rpc_client_unary(cli, &shoal_api_submit_job, &req.base, 0, &resp, &res);
    shoal_job_spec_free(&spec);
    if (st != SHOAL_OK) {
        rc = report("submit", st, &res);
        goto out;
    }
    printf("%" PRIu64 "\n", ((Shoal__V1__SubmitJobResponse *)resp)->id);
    shoal_rpc_msg_free(resp);
    rc = 0;
out:
    shoal_rpc_client_free(cli);
    return rc;
}

static void age(double t, char *out, size_t cap) {
    if (t <= 0) {
        snprintf(out, cap, "-");
        return;
    }
    char d[32];
    snprintf(out, cap, "%s ago", shoal_format_duration(shoal_wall_s() - t, d, sizeof d));
}

int shoal_cmd_jobs(int argc, char **argv) {
    shoal_rpc_client *cli = connect_or_die(&argc, argv, "jobs");
    if (!cli) return 1;
    Shoal__V1__ListJobsRequest req = SHOAL__V1__LIST_JOBS_REQUEST__INIT;
    Shoal__V1__JobState states[6];
    int active_only = 1, rc = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--all") == 0 || strcmp(argv[i], "-a") == 0) {
            active_only = 0;
        } else {
            fprintf(stderr, "usage: shoal jobs [--all] [connection flags]\n");
            shoal_rpc_client_free(cli);
            return 2;
        }
    }
    if (active_only) {
        states[0] = SHOAL__V1__JOB_STATE__JOB_STATE_QUEUED;
        states[1] = SHOAL__V1__JOB_STATE__JOB_STATE_STARTING;
        states[2] = SHOAL__V1__JOB_STATE__JOB_STATE_RUNNING;
        req.states = states;
        req.n_states = 3;
    }
    char token[32] = "";
    int header = 0;
    for (;;) {
        req.page_token = token;
        req.page_size = 500;
        ProtobufCMessage *resp = NULL;
        shoal_rpc_result res;
        shoal_status st = shoal_rpc_client_unary(cli, &shoal_api_list_jobs, &req.base, 0, &resp, &res);
        if (st != SHOAL_OK) {
            rc = report("jobs", st, &res);
            break;
        }
        Shoal__V1__ListJobsResponse *l = (Shoal__V1__ListJobsResponse *)resp;
        if (!header++)
            printf("%-6s %-24s %-10s %5s %7s %-14s %s\n", "ID", "NAME", "STATE", "RANKS",
                   "ATTEMPT", "SUBMITTED", "REASON");
        for (size_t i = 0; i < l->n_jobs; i++) {
            const Shoal__V1__Job *j = l->jobs[i];
            char a[48];
            age(j->submitted_at, a, sizeof a);
            printf("%-6" PRIu64 " %-24.24s %-10s %5d %7d %-14s %.60s\n", j->id,
                   j->spec && j->spec->name[0] ? j->spec->name : "-", state_name(j->state),
                   j->spec ? j->spec->ranks : 0, j->attempt, a, j->reason);
        }
        snprintf(token, sizeof token, "%s", l->next_page_token);
        shoal_rpc_msg_free(resp);
        if (!token[0]) break;
    }
    shoal_rpc_client_free(cli);
    return rc;
}

int shoal_cmd_job(int argc, char **argv) {
    shoal_rpc_client *cli = connect_or_die(&argc, argv, "job");
    if (!cli) return 1;
    uint64_t id;
    if (argc != 2 || parse_id(argv[1], &id) != 0) {
        fprintf(stderr, "usage: shoal job [connection flags] ID\n");
        shoal_rpc_client_free(cli);
        return 2;
    }
    Shoal__V1__GetJobRequest req = SHOAL__V1__GET_JOB_REQUEST__INIT;
    req.id = id;
    ProtobufCMessage *resp = NULL;
    shoal_rpc_result res;
    shoal_status st = shoal_rpc_client_unary(cli, &shoal_api_get_job, &req.base, 0, &resp, &res);
    int rc = 0;
    if (st != SHOAL_OK) {
        rc = report("job", st, &res);
    } else {
        const Shoal__V1__Job *j = ((Shoal__V1__GetJobResponse *)resp)->job;
        char a[48];
        printf("id:          %" PRIu64 "\n", j->id);
        if (j->spec) {
            printf("name:        %s\n", j->spec->name[0] ? j->spec->name : "-");
            printf("kind:        %s\n", j->spec->body_case == SHOAL__V1__JOB_SPEC__BODY_FINETUNE
                                            ? "finetune"
                                            : "command");
            printf("ranks:       %d (%d GPU(s) each)\n", j->spec->ranks, j->spec->gpus_per_rank);
            printf("priority:    %d\n", j->spec->priority);
            if (j->spec->output_dir[0]) printf("output_dir:  %s\n", j->spec->output_dir);
        }
        printf("state:       %s\n", state_name(j->state));
        printf("reason:      %s\n", j->reason);
        printf("attempt:     %d\n", j->attempt);
        age(j->submitted_at, a, sizeof a);
        printf("submitted:   %s by %s\n", a, j->submitter[0] ? j->submitter : "-");
        age(j->started_at, a, sizeof a);
        printf("started:     %s\n", a);
        if (terminal(j->state)) {
            age(j->finished_at, a, sizeof a);
            printf("finished:    %s, exit code %d\n", a, j->exit_code);
        }
        if (j->progress && j->progress->total_steps > 0)
            printf("progress:    step %" PRId64 "/%" PRId64 ", loss %.4f, %.0f tok/s\n",
                   j->progress->step, j->progress->total_steps, j->progress->loss,
                   j->progress->tokens_per_s);
        if (j->last_checkpoint[0]) printf("checkpoint:  %s\n", j->last_checkpoint);
        shoal_rpc_msg_free(resp);
    }
    shoal_rpc_client_free(cli);
    return rc;
}

/* Stream WatchJob until the job ends; a bar while progress reports come in. */
int shoal_cmd_watch(int argc, char **argv) {
    shoal_rpc_client *cli = connect_or_die(&argc, argv, "watch");
    if (!cli) return 1;
    uint64_t id;
    if (argc != 2 || parse_id(argv[1], &id) != 0) {
        fprintf(stderr, "usage: shoal watch [connection flags] ID\n");
        shoal_rpc_client_free(cli);
        return 2;
    }
    Shoal__V1__WatchJobRequest req = SHOAL__V1__WATCH_JOB_REQUEST__INIT;
    req.id = id;
    shoal_rpc_stream *s = NULL;
    /* a watch may last as long as the job: a week-long deadline */
    shoal_status st = shoal_rpc_client_stream_open(cli, &shoal_api_watch_job, &req.base,
                                                   7 * 86400 * 1000, &s);
    int rc = 1, last_state = -1, bar_on = 0;
    shoal_progress bar;
    while (st == SHOAL_OK) {
        ProtobufCMessage *m = NULL;
        st = shoal_rpc_stream_read(s, &m);
        if (st != SHOAL_OK || !m) break;
        const Shoal__V1__JobEvent *e = (const Shoal__V1__JobEvent *)m;
        const Shoal__V1__Progress *p = e->progress;
        if ((int)e->state != last_state) {
            if (bar_on) shoal_progress_finish(&bar, p ? p->step : 0, NULL);
            bar_on = 0;
            printf("job %" PRIu64 ": %s%s%s\n", id, state_name(e->state), e->reason[0] ? " - " : "",
                   e->reason);
            fflush(stdout);
            last_state = e->state;
        }
        if (p && p->total_steps > 0 && e->state == SHOAL__V1__JOB_STATE__JOB_STATE_RUNNING) {
            if (!bar_on) {
                shoal_progress_init(&bar, stdout, "train", "step", p->total_steps, p->step);
                bar_on = 1;
            }
            char suffix[64];
            snprintf(suffix, sizeof suffix, "loss %.4f  %.0f tok/s", p->loss, p->tokens_per_s);
            shoal_progress_update(&bar, p->step, suffix, 0);
        }
        if (terminal(e->state)) rc = e->state == SHOAL__V1__JOB_STATE__JOB_STATE_SUCCEEDED ? 0 : 1;
        shoal_rpc_msg_free(m);
    }
    if (st != SHOAL_OK) rc = report("watch", st, s ? shoal_rpc_stream_result(s) : NULL);
    shoal_rpc_stream_free(s);
    shoal_rpc_client_free(cli);
    return rc;
}

int shoal_cmd_logs(int argc, char **argv) {
    shoal_rpc_client *cli = connect_or_die(&argc, argv, "logs");
    if (!cli) return 1;
    int follow = 0, pos = 0;
    uint64_t id = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--follow") == 0)
            follow = 1;
        else if (!pos++ && parse_id(argv[i], &id) == 0)
            continue;
        else
            id = 0, pos = 9;
    }
    if (!id || pos != 1) {
        fprintf(stderr, "usage: shoal logs [-f] [connection flags] ID\n");
        shoal_rpc_client_free(cli);
        return 2;
    }
    Shoal__V1__GetLogsRequest req = SHOAL__V1__GET_LOGS_REQUEST__INIT;
    req.id = id;
    req.follow = follow;
    shoal_rpc_stream *s = NULL;
    shoal_status st = shoal_rpc_client_stream_open(cli, &shoal_api_get_logs, &req.base,
                                                   follow ? 7 * 86400 * 1000 : 0, &s);
    while (st == SHOAL_OK) {
        ProtobufCMessage *m = NULL;
        st = shoal_rpc_stream_read(s, &m);
        if (st != SHOAL_OK || !m) break;
        const Shoal__V1__LogLine *l = (const Shoal__V1__LogLine *)m;
        FILE *out = l->stream == 2 ? stderr : stdout;
        if (l->rank >= 0)
            fprintf(out, "[%d] %s\n", l->rank, l->text);
        else
            fprintf(out, "%s\n", l->text);
        fflush(out);
        shoal_rpc_msg_free(m);
    }
    int rc = st == SHOAL_OK ? 0 : report("logs", st, s ? shoal_rpc_stream_result(s) : NULL);
    shoal_rpc_stream_free(s);
    shoal_rpc_client_free(cli);
    return rc;
}

int shoal_cmd_cancel(int argc, char **argv) {
    shoal_rpc_client *cli = connect_or_die(&argc, argv, "cancel");
    if (!cli) return 1;
    uint64_t id;
    if (argc != 2 || parse_id(argv[1], &id) != 0) {
        fprintf(stderr, "usage: shoal cancel [connection flags] ID\n");
        shoal_rpc_client_free(cli);
        return 2;
    }
    Shoal__V1__CancelJobRequest req = SHOAL__V1__CANCEL_JOB_REQUEST__INIT;
    req.id = id;
    ProtobufCMessage *resp = NULL;
    shoal_rpc_result res;
    shoal_status st = shoal_rpc_client_unary(cli, &shoal_api_cancel_job, &req.base, 0, &resp, &res);
    int rc = 0;
    if (st != SHOAL_OK) {
        rc = report("cancel", st, &res);
    } else {
        int s = ((Shoal__V1__CancelJobResponse *)resp)->state;
        if (s == SHOAL__V1__JOB_STATE__JOB_STATE_CANCELLED)
            printf("job %" PRIu64 ": cancelled\n", id);
        else if (terminal(s))
            printf("job %" PRIu64 ": already %s\n", id, state_name(s));
        else
            printf("job %" PRIu64 ": cancelling (ranks are being stopped)\n", id);
        shoal_rpc_msg_free(resp);
    }
    shoal_rpc_client_free(cli);
    return rc;
}
