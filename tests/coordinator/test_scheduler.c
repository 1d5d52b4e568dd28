/* test_scheduler.c: coordinator/scheduler.c with the real local launcher (mpirun) and a real
 * store: a 2-rank job runs to SUCCEEDED with its logs and events; gang scheduling and
 * priority order on a 2-slot host (a job that can never fit fails at once); a failing job is
 * retried with backoff and its relaunch resumes from the newest complete checkpoint; a job
 * without retries fails with its exit code; cancel of a running job ends every rank, cancel
 * of a queued one is immediate; jobs left RUNNING by a dead coordinator are requeued and
 * finish. Label mpi. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "coordinator/scheduler.h"
#include "test.h"

static int counter;

static shoal_store *new_store(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/sched%d.db", test_tmpdir(), counter++);
    shoal_store *st = NULL;
    CHECK_EQ_INT(shoal_store_open(p, &st), SHOAL_OK);
    shoal_host h = {.name = "localhost", .cpu_slots = 2, .gpus = 0};
    if (st) CHECK_EQ_INT(shoal_store_host_put(st, &h), SHOAL_OK);
    return st;
}

static shoal_scheduler *new_sched(shoal_store *st) {
    static char scratch[512];
    snprintf(scratch, sizeof scratch, "%s/scratch", test_tmpdir());
    shoal_scheduler_config cfg = {.store = st,
                                  .launcher = SHOAL_LAUNCHER_LOCAL,
                                  .launch = {.scratch_dir = scratch, .kill_grace_s = 2},
                                  .coordinator_addr = "127.0.0.1:1",
                                  .retry_base_s = 0.2,
                                  .retry_max_s = 1};
    shoal_scheduler *s = NULL;
    CHECK_EQ_INT(shoal_scheduler_init(&cfg, &s), SHOAL_OK);
    return s;
}

static uint64_t submit(shoal_store *st, shoal_scheduler *s, const char *name, int ranks,
                       int prio, int retries, const char *script, const char *output_dir) {
    shoal_job_spec spec;
    shoal_job_spec_init(&spec);
    char *argv[] = {"sh", "-c", (char *)script};
    spec.name = (char *)name;
    spec.kind = SHOAL_JOB_KIND_COMMAND;
    spec.ranks = ranks;
    spec.priority = prio;
    spec.max_retries = retries;
    spec.argv = argv;
    spec.argc = 3;
    spec.output_dir = (char *)output_dir;
    uint64_t id = 0;
    CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "test", NULL, &id), SHOAL_OK);
    if (s) shoal_scheduler_wake(s);
    return id;
}

static shoal_job_state state_of(shoal_store *st, uint64_t id) {
    shoal_job_record r;
    if (shoal_store_job_get(st, id, &r) != SHOAL_OK) return 0;
    shoal_job_state x = r.state;
    shoal_job_record_free(&r);
    return x;
}

/* Step the scheduler until job id is in a state of mask, at most timeout_s. */
static int run_until(shoal_scheduler *s, shoal_store *st, uint64_t id, unsigned mask,
                     double timeout_s) {
    double end = shoal_now_s() + timeout_s;
    while (shoal_now_s() < end) {
        if (mask & SHOAL_JOB_STATE_BIT(state_of(st, id))) return 1;
        shoal_scheduler_step(s, 100);
    }
    return (mask & SHOAL_JOB_STATE_BIT(state_of(st, id))) != 0;
}

#define DONE_MASK                                                                                  \
    (SHOAL_JOB_STATE_BIT(SHOAL_JOB_SUCCEEDED) | SHOAL_JOB_STATE_BIT(SHOAL_JOB_FAILED) |            \
     SHOAL_JOB_STATE_BIT(SHOAL_JOB_CANCELLED))

static int log_has(shoal_store *st, uint64_t id, int rank, const char *text) {
    shoal_log_line *l = NULL;
    int n = 0, found = 0;
    if (shoal_store_log_read(st, id, 0, 0, &l, &n) != SHOAL_OK) return 0;
    for (int i = 0; i < n; i++)
        if ((rank < -1 || l[i].rank == rank) && strcmp(l[i].text, text) == 0) found = 1;
    if (!found)
        for (int i = 0; i < n; i++) fprintf(stderr, "    log [%d] %s\n", l[i].rank, l[i].text);
    shoal_log_lines_free(l, n);
    return found;
}

static void test_success(void) {
    shoal_store *st = new_store();
    shoal_scheduler *s = new_sched(st);
    if (!s) return;
    uint64_t id = submit(st, s, "hello", 2, 0, 0,
                         "echo \"hi from $OMPI_COMM_WORLD_RANK job $SHOAL_JOB_ID attempt "
                         "$SHOAL_ATTEMPT via $SHOAL_COORDINATOR\"",
                         NULL);
    CHECK(run_until(s, st, id, DONE_MASK, 60));
    CHECK_EQ_INT(state_of(st, id), SHOAL_JOB_SUCCEEDED);
    char want[128];
    for (int r = 0; r < 2; r++) {
        snprintf(want, sizeof want, "hi from %d job %llu attempt 0 via 127.0.0.1:1", r,
                 (unsigned long long)id);
        CHECK(log_has(st, id, r, want));
    }
    shoal_job_event *ev = NULL;
    int n = 0;
    CHECK_EQ_INT(shoal_store_job_events(st, id, 0, 0, &ev, &n), SHOAL_OK);
    CHECK_EQ_INT(n, 4);
    if (n == 4) {
        CHECK_EQ_INT(ev[1].to, SHOAL_JOB_STARTING);
        CHECK_EQ_INT(ev[2].to, SHOAL_JOB_RUNNING);
        CHECK_EQ_INT(ev[3].to, SHOAL_JOB_SUCCEEDED);
        CHECK(strstr(ev[1].reason, "localhost:2") != NULL);
    }
    free(ev);
    CHECK_EQ_INT(shoal_scheduler_running(s), 0);
    shoal_scheduler_free(s);
    shoal_store_close(st);
}

static void test_gang_and_priority(void) {
    shoal_store *st = new_store();
    shoal_scheduler *s = new_sched(st);
    if (!s) return;
    uint64_t a = submit(st, s, "a", 2, 0, 0, "sleep 1", NULL);
    CHECK(run_until(s, st, a, SHOAL_JOB_STATE_BIT(SHOAL_JOB_RUNNING), 30));
    uint64_t b = submit(st, s, "b", 2, 0, 0, "sleep 0.2", NULL);
    uint64_t c = submit(st, s, "c", 1, 5, 0, "sleep 0.5", NULL);
    uint64_t d = submit(st, s, "d", 3, 0, 0, "true", NULL); /* can never fit on 2 slots */
    for (int i = 0; i < 3; i++) shoal_scheduler_step(s, 50);
    CHECK_EQ_INT(state_of(st, b), SHOAL_JOB_QUEUED); /* gang: needs both slots */
    CHECK_EQ_INT(state_of(st, c), SHOAL_JOB_QUEUED);
    CHECK(run_until(s, st, d, DONE_MASK, 10));
    CHECK_EQ_INT(state_of(st, d), SHOAL_JOB_FAILED);
    CHECK(run_until(s, st, b, DONE_MASK, 60));
    CHECK(run_until(s, st, c, DONE_MASK, 60));
    shoal_job_record ra, rb, rc, rd;
    CHECK_EQ_INT(shoal_store_job_get(st, a, &ra), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_get(st, b, &rb), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_get(st, c, &rc), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_get(st, d, &rd), SHOAL_OK);
    CHECK_EQ_INT(rb.state, SHOAL_JOB_SUCCEEDED);
    CHECK_EQ_INT(rc.state, SHOAL_JOB_SUCCEEDED);
    CHECK(strstr(rd.reason, "fit only 2") != NULL);
    /* c (priority 5) went before b, and neither overlapped a; b waited for c's slot too */
    CHECK(rc.started_at >= ra.finished_at - 0.05);
    CHECK(rb.started_at >= rc.started_at);
    CHECK(rb.started_at >= rc.finished_at - 0.05);
    printf("gang: a %.2f-%.2f, c %.2f-%.2f, b %.2f-%.2f\n", 0.0, ra.finished_at - ra.started_at,
           rc.started_at - ra.started_at, rc.finished_at - ra.started_at,
           rb.started_at - ra.started_at, rb.finished_at - ra.started_at);
    shoal_job_record_free(&ra);
    shoal_job_record_free(&rb);
    shoal_job_record_free(&rc);
    shoal_job_record_free(&rd);
    shoal_scheduler_free(s);
    shoal_store_close(st);
}

static void test_retry_resume(void) {
    shoal_store *st = new_store();
    shoal_scheduler *s = new_sched(st);
    if (!s) return;
    char out[300], script[4000], want[700];
    snprintf(out, sizeof out, "%s/out-retry", test_tmpdir());
    /* attempt 0 writes one complete and one incomplete checkpoint, then fails */
    snprintf(script, sizeof script,
             "if [ -n \"$SHOAL_RESUME_FROM\" ]; then echo \"resumed from $SHOAL_RESUME_FROM "
             "attempt $SHOAL_ATTEMPT\"; else mkdir -p %s/checkpoints/step-100 "
             "%s/checkpoints/step-200 %s/checkpoints/step-20; touch %s/checkpoints/step-100/DONE "
             "%s/checkpoints/step-20/DONE; echo failing; exit 5; fi",
             out, out, out, out, out);
    uint64_t id = submit(st, s, "retry", 1, 0, 2, script, out);
    CHECK(run_until(s, st, id, DONE_MASK, 60));
    shoal_job_record r;
    CHECK_EQ_INT(shoal_store_job_get(st, id, &r), SHOAL_OK);
    CHECK_EQ_INT(r.state, SHOAL_JOB_SUCCEEDED);
    CHECK_EQ_INT(r.attempt, 1);
    shoal_job_record_free(&r);
    snprintf(want, sizeof want, "resumed from %s/checkpoints/step-100 attempt 1", out);
    CHECK(log_has(st, id, 0, want));
    CHECK(log_has(st, id, 0, "failing"));
    shoal_job_event *ev = NULL;
    int n = 0, saw_retry = 0;
    CHECK_EQ_INT(shoal_store_job_events(st, id, 0, 0, &ev, &n), SHOAL_OK);
    for (int i = 0; i < n; i++)
        if (ev[i].to == SHOAL_JOB_QUEUED && strstr(ev[i].reason, "retry 1 of 2") &&
            strstr(ev[i].reason, "exit code 5"))
            saw_retry = 1;
    CHECK(saw_retry);
    free(ev);

    /* no retries: FAILED with the exit code */
    uint64_t f = submit(st, s, "fail", 2, 0, 0, "exit 7", NULL);
    CHECK(run_until(s, st, f, DONE_MASK, 60));
    CHECK_EQ_INT(shoal_store_job_get(st, f, &r), SHOAL_OK);
    CHECK_EQ_INT(r.state, SHOAL_JOB_FAILED);
    CHECK_EQ_INT(r.exit_code, 7);
    CHECK_EQ_INT(r.attempt, 0);
    shoal_job_record_free(&r);
    shoal_scheduler_free(s);
    shoal_store_close(st);
}

typedef struct {
    shoal_scheduler *s;
    uint64_t id;
    shoal_status st;
    shoal_job_state state;
} cancel_arg;

static void *cancel_thread(void *p) {
    cancel_arg *a = p;
    a->st = shoal_scheduler_cancel(a->s, a->id, "user asked", 10000, &a->state);
    return NULL;
}

static void test_cancel(void) {
    shoal_store *st = new_store();
    shoal_scheduler *s = new_sched(st);
    if (!s) return;
    uint64_t id = submit(st, s, "long", 2, 0, 3, "echo up; exec sleep 100", NULL);
    CHECK(run_until(s, st, id, SHOAL_JOB_STATE_BIT(SHOAL_JOB_RUNNING), 30));
    uint64_t q = submit(st, s, "queued", 2, 0, 0, "true", NULL);
    for (int i = 0; i < 5; i++) shoal_scheduler_step(s, 50);
    CHECK_EQ_INT(state_of(st, q), SHOAL_JOB_QUEUED);
    /* wait until both ranks printed, so they are really up */
    shoal_log_line *l = NULL;
    int n = 0;
    double end = shoal_now_s() + 20;
    while (shoal_now_s() < end) {
        shoal_scheduler_step(s, 100);
        shoal_store_log_read(st, id, 0, 0, &l, &n);
        shoal_log_lines_free(l, n);
        if (n >= 2) break;
    }
    shoal_job_record r;
    CHECK_EQ_INT(shoal_store_job_get(st, id, &r), SHOAL_OK);
    int sid = strncmp(r.launch_handle, "pid:", 4) == 0 ? atoi(r.launch_handle + 4) : -1;
    shoal_job_record_free(&r);
    CHECK(sid > 1 && shoal_count_session(sid) >= 3);

    /* cancel the queued one: immediate */
    cancel_arg ca = {s, q, SHOAL_ERR_INTERNAL, 0};
    pthread_t th;
    pthread_create(&th, NULL, cancel_thread, &ca);
    end = shoal_now_s() + 10;
    while (ca.st == SHOAL_ERR_INTERNAL && shoal_now_s() < end) shoal_scheduler_step(s, 50);
    pthread_join(th, NULL);
    CHECK_EQ_INT(ca.st, SHOAL_OK);
    CHECK_EQ_INT(ca.state, SHOAL_JOB_CANCELLED);

    /* cancel the running one: it ends, with no rank left and no retry */
    ca = (cancel_arg){s, id, SHOAL_ERR_INTERNAL, 0};
    pthread_create(&th, NULL, cancel_thread, &ca);
    CHECK(run_until(s, st, id, DONE_MASK, 30));
    pthread_join(th, NULL);
    CHECK_EQ_INT(ca.st, SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_get(st, id, &r), SHOAL_OK);
    CHECK_EQ_INT(r.state, SHOAL_JOB_CANCELLED);
    CHECK_STR(r.reason, "user asked");
    CHECK_EQ_INT(r.attempt, 0);
    shoal_job_record_free(&r);
    CHECK_EQ_INT(shoal_count_session(sid), 0);
    CHECK_EQ_INT(shoal_scheduler_running(s), 0);

    /* cancelling a finished job changes nothing; an unknown one is NOT_FOUND */
    ca = (cancel_arg){s, id, SHOAL_ERR_INTERNAL, 0};
    pthread_create(&th, NULL, cancel_thread, &ca);
    end = shoal_now_s() + 10;
    while (ca.st == SHOAL_ERR_INTERNAL && shoal_now_s() < end) shoal_scheduler_step(s, 50);
    pthread_join(th, NULL);
    CHECK_EQ_INT(ca.st, SHOAL_OK);
    CHECK_EQ_INT(ca.state, SHOAL_JOB_CANCELLED);
    ca = (cancel_arg){s, 999999, SHOAL_ERR_INTERNAL, 0};
    pthread_create(&th, NULL, cancel_thread, &ca);
    end = shoal_now_s() + 10;
    while (ca.st == SHOAL_ERR_INTERNAL && shoal_now_s() < end) shoal_scheduler_step(s, 50);
    pthread_join(th, NULL);
    CHECK_EQ_INT(ca.st, SHOAL_ERR_NOT_FOUND);
    shoal_scheduler_free(s);
    shoal_store_close(st);
}

static void test_recovery(void) {
    shoal_store *st = new_store();
    if (!st) return;
    uint64_t id = submit(st, NULL, "orphan", 1, 0, 0, "echo relaunched $SHOAL_ATTEMPT", NULL);
    /* as a dead coordinator would have left it */
    CHECK_EQ_INT(shoal_store_job_transition(st, id, SHOAL_JOB_STARTING, "x", 0, 0, NULL),
                 SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_set_launch(st, id, "pid:999999999", "localhost:1"), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_transition(st, id, SHOAL_JOB_RUNNING, "x", 0, 0, NULL),
                 SHOAL_OK);
    shoal_scheduler *s = new_sched(st);
    if (!s) return;
    CHECK_EQ_INT(state_of(st, id), SHOAL_JOB_QUEUED);
    CHECK(run_until(s, st, id, DONE_MASK, 60));
    CHECK_EQ_INT(state_of(st, id), SHOAL_JOB_SUCCEEDED);
    CHECK(log_has(st, id, 0, "relaunched 1"));
    shoal_scheduler_free(s);
    shoal_store_close(st);
}

static void test_find_checkpoint(void) {
    char base[600], p[800], got[1024];
    snprintf(base, sizeof base, "%s/ck", test_tmpdir());
    CHECK_EQ_INT(shoal_find_checkpoint(base, got, sizeof got), SHOAL_ERR_NOT_FOUND);
    const char *dirs[] = {"step-9", "step-10", "step-11", "other"};
    int done[] = {1, 1, 0, 1};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "mkdir -p %s/checkpoints/%s", base, dirs[i]);
        CHECK(system(p) == 0);
        if (done[i]) {
            snprintf(p, sizeof p, "%s/checkpoints/%s/DONE", base, dirs[i]);
            FILE *f = fopen(p, "w");
            if (f) fclose(f);
        }
    }
    CHECK_EQ_INT(shoal_find_checkpoint(base, got, sizeof got), SHOAL_OK);
    snprintf(p, sizeof p, "%s/checkpoints/step-10", base); /* numeric, not lexical; 11 lacks DONE */
    CHECK_STR(got, p);
    CHECK_EQ_INT(shoal_find_checkpoint(NULL, got, sizeof got), SHOAL_ERR_NOT_FOUND);
}

int main(void) {
    if (system("command -v mpirun >/dev/null 2>&1") != 0) TEST_SKIP("mpirun not installed");
    shoal_log_set_level(SHOAL_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    TEST_RUN(test_find_checkpoint);
    TEST_RUN(test_success);
    TEST_RUN(test_gang_and_priority);
    TEST_RUN(test_retry_resume);
    TEST_RUN(test_cancel);
    TEST_RUN(test_recovery);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_tmpdir());
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", test_tmpdir());
    return TEST_EXIT();
}
