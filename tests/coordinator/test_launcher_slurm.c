/* test_launcher_slurm.c: the Slurm launcher against a real single-node Slurm (started by
 * tests/coordinator/test_slurm.sh through tests/harness/slurm.sh; SLURM_CONF names it).
 * A 2-task `srun --mpi=pmix` of a real MPI program completes with exit 0 and both ranks'
 * lines captured with their rank; the job's environment reaches the tasks; a failing task's
 * exit code comes back; scancel of a running job ends it (state CANCELLED) and leaves none of
 * its processes behind; and the scheduler with the Slurm launcher takes a stored job through
 * QUEUED -> STARTING -> RUNNING -> SUCCEEDED with its logs, and cancels one. Label slurm.
 * usage: test_launcher_slurm MPI_HELLO */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "coordinator/launcher.h"
#include "coordinator/scheduler.h"
#include "test.h"

#define MAX_LINES 128

typedef struct {
    int rank, stream;
    char text[256];
} logline;

typedef struct {
    logline lines[MAX_LINES];
    int nlines, exits, runnings;
    shoal_launch_result res;
} sink;

static const char *mpi_hello;

static void on_log(void *ctx, uint64_t job_id, int attempt, int rank, int stream,
                   const char *text) {
    (void)job_id;
    (void)attempt;
    sink *s = ctx;
    if (s->nlines < MAX_LINES) {
        logline *l = &s->lines[s->nlines++];
        l->rank = rank;
        l->stream = stream;
        snprintf(l->text, sizeof l->text, "%s", text);
    }
}

static void on_running_cb(void *ctx, uint64_t job_id, int attempt) {
    (void)job_id;
    (void)attempt;
    sink *s = ctx;
    if (s->exits == 0) s->runnings++; /* must come before the exit */
}

static void on_exit_cb(void *ctx, uint64_t job_id, int attempt, const shoal_launch_result *res) {
    (void)job_id;
    (void)attempt;
    sink *s = ctx;
    s->exits++;
    s->res = *res;
}

static int has_line(const sink *s, int rank, const char *text) {
    for (int i = 0; i < s->nlines; i++)
        if (s->lines[i].rank == rank && strcmp(s->lines[i].text, text) == 0) return 1;
    return 0;
}

static void dump(const sink *s) {
    for (int i = 0; i < s->nlines; i++)
        fprintf(stderr, "    [rank %d, %d] %s\n", s->lines[i].rank, s->lines[i].stream,
                s->lines[i].text);
    fprintf(stderr, "    exit %d: %s\n", s->res.exit_code, s->res.reason);
}

static int wait_exit(shoal_launcher *l, sink *s, double timeout_s) {
    double end = shoal_now_s() + timeout_s;
    while (s->exits == 0 && shoal_now_s() < end) shoal_launcher_poll(l, 500);
    return s->exits;
}

static shoal_status make(shoal_launcher *l, sink *s) {
    static char scratch[512];
    snprintf(scratch, sizeof scratch, "%s/scratch", test_tmpdir());
    shoal_launcher_config cfg = {.scratch_dir = scratch,
                                 .slurm_conf = getenv("SLURM_CONF"),
                                 .poll_interval_s = 0.25};
    shoal_launcher_callbacks cb = {s, on_log, on_running_cb, on_exit_cb};
    return shoal_launcher_init(l, SHOAL_LAUNCHER_SLURM, &cfg, &cb);
}

static void test_pmix_two_tasks(void) {
    sink s = {0};
    shoal_launcher l;
    CHECK_EQ_INT(make(&l, &s), SHOAL_OK);
    char *argv[] = {(char *)mpi_hello};
    shoal_launch_req req = {.job_id = 21, .name = "hello", .ranks = 2, .argv = argv, .argc = 1};
    char handle[64];
    double t0 = shoal_now_s();
    CHECK_EQ_INT(shoal_launcher_start(&l, &req, handle, sizeof handle), SHOAL_OK);
    CHECK(strncmp(handle, "slurm:", 6) == 0);
    CHECK_EQ_INT(wait_exit(&l, &s, 60), 1);
    printf("pmix job: sbatch to exit reported in %.2f s\n", shoal_now_s() - t0);
    CHECK_EQ_INT(s.res.exit_code, 0);
    CHECK_EQ_INT(s.res.cancelled, 0);
    CHECK(strstr(s.res.reason, "COMPLETED") != NULL);
    CHECK_EQ_INT(s.runnings, 1);
    CHECK(has_line(&s, 0, "hello from rank 0 of 2, sum of ranks 1"));
    CHECK(has_line(&s, 1, "hello from rank 1 of 2, sum of ranks 1"));
    if (test_case_failed_) dump(&s);
    shoal_launcher_free(&l);
}

static void test_env_and_failure(void) {
    sink s = {0};
    shoal_launcher l;
    CHECK_EQ_INT(make(&l, &s), SHOAL_OK);
    char *argv[] = {"sh", "-c",
                    ("echo \"task $SLURM_PROCID says $GREETING\"; echo to-stderr >&2; "
                     "exit $((SLURM_PROCID * 3))")};
    char *env[] = {"GREETING=it's a test"};
    shoal_launch_req req = {.job_id = 22, .ranks = 2, .argv = argv, .argc = 3, .env = env,
                            .nenv = 1, .gpus_per_rank = 1};
    char handle[64];
    CHECK_EQ_INT(shoal_launcher_start(&l, &req, handle, sizeof handle), SHOAL_OK);
    CHECK_EQ_INT(wait_exit(&l, &s, 60), 1);
    CHECK_EQ_INT(s.res.exit_code, 3);
    CHECK(has_line(&s, 0, "task 0 says it's a test"));
    CHECK(has_line(&s, 1, "task 1 says it's a test"));
    int err_lines = 0;
    for (int i = 0; i < s.nlines; i++)
        err_lines += s.lines[i].stream == 2 && strcmp(s.lines[i].text, "to-stderr") == 0;
    CHECK_EQ_INT(err_lines, 2);
    if (test_case_failed_) dump(&s);
    shoal_launcher_free(&l);
}

static int read_pid(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int pid = -1;
    if (fscanf(f, "%d", &pid) != 1) pid = -1;
    fclose(f);
    return pid;
}

static int alive(int pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *rp = strrchr(buf, ')');
    return rp && rp[2] != 'Z' && rp[2] != 'X';
}

static void test_scancel(void) {
    sink s = {0};
    shoal_launcher l;
    CHECK_EQ_INT(make(&l, &s), SHOAL_OK);
    char dir[512], script[1200];
    snprintf(dir, sizeof dir, "%s/pids", test_tmpdir());
    mkdir(dir, 0755);
    snprintf(script, sizeof script,
             "echo $$ > %s/task.$SLURM_PROCID; echo started; exec sleep 1000", dir);
    char *argv[] = {"sh", "-c", script};
    shoal_launch_req req = {.job_id = 23, .ranks = 2, .argv = argv, .argc = 3};
    char handle[64];
    CHECK_EQ_INT(shoal_launcher_start(&l, &req, handle, sizeof handle), SHOAL_OK);
    int pids[2] = {-1, -1};
    char p[600];
    double end = shoal_now_s() + 60;
    while (shoal_now_s() < end && s.exits == 0) {
        shoal_launcher_poll(&l, 250);
        for (int i = 0; i < 2; i++) {
            snprintf(p, sizeof p, "%s/task.%d", dir, i);
            pids[i] = read_pid(p);
        }
        if (pids[0] > 0 && pids[1] > 0) break;
    }
    CHECK(pids[0] > 0 && pids[1] > 0);
    CHECK(alive(pids[0]) && alive(pids[1]));
    CHECK_EQ_INT(shoal_launcher_cancel(&l, 23), SHOAL_OK);
    CHECK_EQ_INT(wait_exit(&l, &s, 60), 1);
    CHECK_EQ_INT(s.res.cancelled, 1);
    CHECK(strstr(s.res.reason, "CANCELLED") != NULL);
    CHECK(s.res.exit_code != 0);
    /* slurmstepd kills the tasks; give it a moment to finish */
    end = shoal_now_s() + 10;
    while (shoal_now_s() < end && (alive(pids[0]) || alive(pids[1]))) usleep(100000);
    CHECK(!alive(pids[0]) && !alive(pids[1]));
    if (test_case_failed_) dump(&s);
    CHECK_EQ_INT(shoal_launcher_cancel(&l, 23), SHOAL_ERR_NOT_FOUND);
    shoal_launcher_free(&l);
}

static shoal_job_state job_state(shoal_store *st, uint64_t id) {
    shoal_job_record r;
    if (shoal_store_job_get(st, id, &r) != SHOAL_OK) return 0;
    shoal_job_state x = r.state;
    shoal_job_record_free(&r);
    return x;
}

static void test_scheduler_slurm(void) {
    char db[600], scratch[600];
    snprintf(db, sizeof db, "%s/sched.db", test_tmpdir());
    snprintf(scratch, sizeof scratch, "%s/sched-scratch", test_tmpdir());
    shoal_store *st = NULL;
    CHECK_EQ_INT(shoal_store_open(db, &st), SHOAL_OK);
    if (!st) return;
    shoal_scheduler_config cfg = {.store = st,
                                  .launcher = SHOAL_LAUNCHER_SLURM,
                                  .launch = {.scratch_dir = scratch,
                                             .slurm_conf = getenv("SLURM_CONF"),
                                             .poll_interval_s = 0.25}};
    shoal_scheduler *s = NULL;
    CHECK_EQ_INT(shoal_scheduler_init(&cfg, &s), SHOAL_OK);
    if (!s) {
        shoal_store_close(st);
        return;
    }
    shoal_job_spec spec;
    shoal_job_spec_init(&spec);
    char *argv[] = {(char *)mpi_hello};
    spec.name = "via-scheduler";
    spec.kind = SHOAL_JOB_KIND_COMMAND;
    spec.ranks = 2;
    spec.launcher = SHOAL_LAUNCHER_SLURM;
    spec.argv = argv;
    spec.argc = 1;
    uint64_t id = 0, id2 = 0;
    CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "t", NULL, &id), SHOAL_OK);
    char *sl[] = {"sleep", "600"};
    spec.argv = sl;
    spec.argc = 2;
    spec.ranks = 1;
    CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "t", NULL, &id2), SHOAL_OK);
    shoal_scheduler_wake(s);
    double end = shoal_now_s() + 60;
    int cancelled = 0;
    while (shoal_now_s() < end) {
        shoal_scheduler_step(s, 200);
        if (!cancelled && job_state(st, id2) == SHOAL_JOB_RUNNING) {
            /* cancel from the owner thread's point of view: a request handled in the next step */
            cancelled = 1;
            shoal_job_state x;
            /* shoal_scheduler_cancel blocks for the owner; here we are the owner, so give it a
             * zero timeout and let the following steps handle the request */
            shoal_scheduler_cancel(s, id2, "test cancel", 0, &x);
        }
        if (shoal_job_state_terminal(job_state(st, id)) &&
            shoal_job_state_terminal(job_state(st, id2)))
            break;
    }
    CHECK_EQ_INT(job_state(st, id), SHOAL_JOB_SUCCEEDED);
    CHECK_EQ_INT(job_state(st, id2), SHOAL_JOB_CANCELLED);
    shoal_log_line *l = NULL;
    int n = 0, hello = 0;
    CHECK_EQ_INT(shoal_store_log_read(st, id, 0, 0, &l, &n), SHOAL_OK);
    for (int i = 0; i < n; i++) hello += strncmp(l[i].text, "hello from rank", 15) == 0;
    CHECK_EQ_INT(hello, 2);
    shoal_log_lines_free(l, n);
    shoal_job_event *ev = NULL;
    CHECK_EQ_INT(shoal_store_job_events(st, id, 0, 0, &ev, &n), SHOAL_OK);
    CHECK_EQ_INT(n, 4); /* queued, starting, running, succeeded */
    free(ev);
    shoal_scheduler_free(s);
    shoal_store_close(st);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MPI_HELLO\n", argv[0]);
        return 2;
    }
    if (!getenv("SLURM_CONF")) TEST_SKIP("SLURM_CONF not set: run through test_slurm.sh");
    mpi_hello = argv[1];
    shoal_log_set_level(SHOAL_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    TEST_RUN(test_pmix_two_tasks);
    TEST_RUN(test_env_and_failure);
    TEST_RUN(test_scancel);
    TEST_RUN(test_scheduler_slurm);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_tmpdir());
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", test_tmpdir());
    return TEST_EXIT();
}
