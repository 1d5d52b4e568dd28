/* test_launcher.c: the local and hostfile launchers with a real Open MPI `mpirun` of small
 * shell commands: a 2-rank run exits 0 with every rank's stdout/stderr captured and tagged
 * with its rank, environment entries reach the ranks; a failing rank's exit code comes back;
 * cancel while running ends every rank, including a child that ignores SIGTERM (no process
 * is left in the attempt's session); the hostfile launcher runs from a generated hostfile.
 * Also the shared helpers: line splitting, shell quoting, run_capture. Label mpi. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/limits.h"
#include "common/timeutil.h"
#include "coordinator/launcher.h"
#include "test.h"

#define MAX_LINES 256

typedef struct {
    int rank, stream;
    char text[256];
} logline;

typedef struct {
    logline lines[MAX_LINES];
    int nlines;
    int exits, runnings;
    shoal_launch_result res;
    uint64_t exit_job;
} sink;

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
    (void)attempt;
    sink *s = ctx;
    s->exits++;
    s->res = *res;
    s->exit_job = job_id;
}

static int has_line(const sink *s, int rank, int stream, const char *text) {
    for (int i = 0; i < s->nlines; i++)
        if (s->lines[i].rank == rank && s->lines[i].stream == stream &&
            strcmp(s->lines[i].text, text) == 0)
            return 1;
    return 0;
}

static void dump(const sink *s) {
    for (int i = 0; i < s->nlines; i++)
        fprintf(stderr, "    [rank %d, %d] %s\n", s->lines[i].rank, s->lines[i].stream,
                s->lines[i].text);
}

/* Poll until the attempt reported its exit, at most timeout_s. */
static int wait_exit(shoal_launcher *l, sink *s, double timeout_s) {
    double end = shoal_now_s() + timeout_s;
    while (s->exits == 0 && shoal_now_s() < end) shoal_launcher_poll(l, 200);
    return s->exits;
}

static shoal_launcher_config config(void) {
    static char scratch[512];
    snprintf(scratch, sizeof scratch, "%s/scratch", test_tmpdir());
    shoal_launcher_config c = {.scratch_dir = scratch, .kill_grace_s = 2.0};
    return c;
}

static void test_two_ranks_ok(void) {
    sink s = {0};
    shoal_launcher_callbacks cb = {&s, on_log, on_running_cb, on_exit_cb};
    shoal_launcher_config cfg = config();
    shoal_launcher l;
    CHECK_EQ_INT(shoal_launcher_init(&l, SHOAL_LAUNCHER_LOCAL, &cfg, &cb), SHOAL_OK);
    char *argv[] = {"sh", "-c",
                    ("echo \"hello from $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE, "
                     "$GREETING\"; echo \"warn $OMPI_COMM_WORLD_RANK\" >&2")};
    char *env[] = {"GREETING=hi there"};
    shoal_launch_req req = {.job_id = 7, .ranks = 2, .argv = argv, .argc = 3, .env = env,
                            .nenv = 1};
    char handle[64];
    CHECK_EQ_INT(shoal_launcher_start(&l, &req, handle, sizeof handle), SHOAL_OK);
    CHECK(strncmp(handle, "pid:", 4) == 0);
    CHECK_EQ_INT(shoal_launcher_active(&l), 1);
    /* a second attempt of a running job is refused */
    CHECK_EQ_INT(shoal_launcher_start(&l, &req, handle, sizeof handle), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(wait_exit(&l, &s, 30), 1);
    CHECK_EQ_INT(s.res.exit_code, 0);
    CHECK_EQ_INT(s.res.cancelled, 0);
    CHECK_EQ_INT(s.exit_job, 7);
    CHECK_EQ_INT(s.runnings, 1);
    CHECK(has_line(&s, 0, 1, "hello from 0 of 2, hi there"));
    CHECK(has_line(&s, 1, 1, "hello from 1 of 2, hi there"));
    CHECK(has_line(&s, 0, 2, "warn 0"));
    CHECK(has_line(&s, 1, 2, "warn 1"));
    if (test_case_failed_) dump(&s);
    CHECK_EQ_INT(shoal_launcher_active(&l), 0);
    CHECK_EQ_INT(shoal_launcher_cancel(&l, 7), SHOAL_ERR_NOT_FOUND);
    shoal_launcher_free(&l);
}

static void test_failing_rank(void) {
    sink s = {0};
    shoal_launcher_callbacks cb = {&s, on_log, on_running_cb, on_exit_cb};
    shoal_launcher_config cfg = config();
    shoal_launcher l;
    CHECK_EQ_INT(shoal_launcher_init(&l, SHOAL_LAUNCHER_LOCAL, &cfg, &cb), SHOAL_OK);
    char *argv[] = {"sh", "-c", "echo failing; exit $((OMPI_COMM_WORLD_RANK * 3))"};
    shoal_launch_req req = {.job_id = 8, .ranks = 2, .argv = argv, .argc = 3};
    char handle[64];
    CHECK_EQ_INT(shoal_launcher_start(&l, &req, handle, sizeof handle), SHOAL_OK);
    CHECK_EQ_INT(wait_exit(&l, &s, 30), 1);
    CHECK_EQ_INT(s.res.exit_code, 3);
    CHECK(strstr(s.res.reason, "exit code 3") != NULL);
    CHECK(has_line(&s, 1, 1, "failing"));
    /* a command that does not exist: mpirun fails, the code is non-zero */
    memset(&s, 0, sizeof s);
    char *argv2[] = {"/nonexistent/shoal-no-such-program"};
    shoal_launch_req req2 = {.job_id = 9, .ranks = 2, .argv = argv2, .argc = 1};
    CHECK_EQ_INT(shoal_launcher_start(&l, &req2, handle, sizeof handle), SHOAL_OK);
    CHECK_EQ_INT(wait_exit(&l, &s, 30), 1);
    CHECK(s.res.exit_code != 0);
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

/* Alive and not a zombie. */
static int alive(int pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

static void test_cancel_kills_all(void) {
    sink s = {0};
    shoal_launcher_callbacks cb = {&s, on_log, on_running_cb, on_exit_cb};
    shoal_launcher_config cfg = config();
    shoal_launcher l;
    CHECK_EQ_INT(shoal_launcher_init(&l, SHOAL_LAUNCHER_LOCAL, &cfg, &cb), SHOAL_OK);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/pids", test_tmpdir());
    mkdir(dir, 0755);
    char script[2048];
    /* each rank records its pid and a child's that ignores SIGTERM, then waits */
    snprintf(script, sizeof script,
             "(trap '' TERM; echo $(sh -c 'echo $PPID') > %s/child.$OMPI_COMM_WORLD_RANK; "
             "exec sleep 1000) & echo $$ > %s/rank.$OMPI_COMM_WORLD_RANK; echo started; "
             "wait",
             dir, dir);
    char *argv[] = {"sh", "-c", script};
    shoal_launch_req req = {.job_id = 11, .ranks = 2, .argv = argv, .argc = 3};
    char handle[64];
    CHECK_EQ_INT(shoal_launcher_start(&l, &req, handle, sizeof handle), SHOAL_OK);
    int sid = atoi(handle + 4);
    int pids[4] = {-1, -1, -1, -1};
    char p[600];
    double end = shoal_now_s() + 30;
    while (shoal_now_s() < end) {
        shoal_launcher_poll(&l, 100);
        int all = 1;
        for (int i = 0; i < 4; i++) {
            snprintf(p, sizeof p, "%s/%s.%d", dir, i < 2 ? "rank" : "child", i % 2);
            pids[i] = read_pid(p);
            all &= pids[i] > 0;
        }
        if (all) break;
    }
    for (int i = 0; i < 4; i++) CHECK(pids[i] > 0 && alive(pids[i]));
    CHECK(shoal_count_session(sid) >= 5); /* mpirun, 2 shells, 2 sleeps */
    CHECK_EQ_INT(s.exits, 0);
    double t0 = shoal_now_s();
    CHECK_EQ_INT(shoal_launcher_cancel(&l, 11), SHOAL_OK);
    CHECK_EQ_INT(wait_exit(&l, &s, 30), 1);
    printf("cancel: attempt ended %.2f s after cancel\n", shoal_now_s() - t0);
    CHECK_EQ_INT(s.res.cancelled, 1);
    CHECK(s.res.exit_code != 0);
    for (int i = 0; i < 4; i++) {
        if (pids[i] > 0 && alive(pids[i])) {
            fprintf(stderr, "  pid %d still alive after cancel\n", pids[i]);
            CHECK(0);
        }
    }
    CHECK_EQ_INT(shoal_count_session(sid), 0);
    shoal_launcher_free(&l);
}

static void test_hostfile(void) {
    sink s = {0};
    shoal_launcher_callbacks cb = {&s, on_log, on_running_cb, on_exit_cb};
    shoal_launcher_config cfg = config();
    shoal_launcher l;
    CHECK_EQ_INT(shoal_launcher_init(&l, SHOAL_LAUNCHER_HOSTFILE, &cfg, &cb), SHOAL_OK);
    char *argv[] = {"sh", "-c", "echo rank $OMPI_COMM_WORLD_RANK on $(hostname -s)"};
    char host[256], want0[300], want1[300];
    gethostname(host, sizeof host);
    char *dot = strchr(host, '.');
    if (dot) *dot = 0;
    shoal_launch_req req = {.job_id = 12, .ranks = 2, .argv = argv, .argc = 3,
                            .alloc = "localhost:2"};
    char handle[64];
    CHECK_EQ_INT(shoal_launcher_start(&l, &req, handle, sizeof handle), SHOAL_OK);
    CHECK_EQ_INT(wait_exit(&l, &s, 30), 1);
    CHECK_EQ_INT(s.res.exit_code, 0);
    snprintf(want0, sizeof want0, "rank 0 on %s", host);
    snprintf(want1, sizeof want1, "rank 1 on %s", host);
    CHECK(has_line(&s, 0, 1, want0));
    CHECK(has_line(&s, 1, 1, want1));
    if (test_case_failed_) dump(&s);
    /* no allocation: refused before anything runs */
    shoal_launch_req bad = req;
    bad.job_id = 13;
    bad.alloc = NULL;
    CHECK_EQ_INT(shoal_launcher_start(&l, &bad, handle, sizeof handle), SHOAL_ERR_INVALID_ARG);
    bad.alloc = "localhost:x";
    CHECK_EQ_INT(shoal_launcher_start(&l, &bad, handle, sizeof handle), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_launcher_active(&l), 0);
    shoal_launcher_free(&l);
}

typedef struct {
    char got[8][64];
    int n;
} lines_acc;

static void acc(void *ctx, const char *line) {
    lines_acc *a = ctx;
    if (a->n < 8) snprintf(a->got[a->n++], 64, "%s", line);
}

static void test_helpers(void) {
    shoal_line_buf lb = {0};
    lines_acc a = {0};
    CHECK_EQ_INT(shoal_line_buf_feed(&lb, "ab", 2, 0, acc, &a), SHOAL_OK);
    CHECK_EQ_INT(a.n, 0);
    CHECK_EQ_INT(shoal_line_buf_feed(&lb, "c\r\nd\n\ne", 8, 0, acc, &a), SHOAL_OK);
    CHECK_EQ_INT(a.n, 3);
    CHECK_STR(a.got[0], "abc");
    CHECK_STR(a.got[1], "d");
    CHECK_STR(a.got[2], "");
    CHECK_EQ_INT(shoal_line_buf_feed(&lb, "", 0, 1, acc, &a), SHOAL_OK);
    CHECK_EQ_INT(a.n, 4);
    CHECK_STR(a.got[3], "e");
    /* an over-long line is split at the limit */
    uint64_t def = shoal_limit(SHOAL_LIMIT_JOB_LOG_LINE_BYTES);
    shoal_limit_set(SHOAL_LIMIT_JOB_LOG_LINE_BYTES, 4);
    memset(&a, 0, sizeof a);
    CHECK_EQ_INT(shoal_line_buf_feed(&lb, "abcdefghij\n", 11, 0, acc, &a), SHOAL_OK);
    CHECK_EQ_INT(a.n, 3);
    CHECK_STR(a.got[0], "abcd");
    CHECK_STR(a.got[2], "ij");
    shoal_limit_set(SHOAL_LIMIT_JOB_LOG_LINE_BYTES, def);
    shoal_line_buf_free(&lb);

    char q[64];
    CHECK_EQ_INT(shoal_shell_quote("it's $HOME", q, sizeof q), SHOAL_OK);
    CHECK_STR(q, "'it'\\''s $HOME'");
    CHECK_EQ_INT(shoal_shell_quote("abcdef", q, 5), SHOAL_ERR_LIMIT);

    char out[64];
    int code = -1;
    char *echo[] = {"sh", "-c", "echo $SHOAL_X; echo oops >&2; exit 4", NULL};
    char *env[] = {"SHOAL_X=val"};
    CHECK_EQ_INT(shoal_run_capture(echo, env, 1, 10, out, sizeof out, &code), SHOAL_OK);
    CHECK_STR(out, "val\n");
    CHECK_EQ_INT(code, 4);
    char *slow[] = {"sleep", "10", NULL};
    double t0 = shoal_now_s();
    CHECK_EQ_INT(shoal_run_capture(slow, NULL, 0, 0.3, out, sizeof out, &code),
                 SHOAL_ERR_TIMEOUT);
    CHECK(shoal_now_s() - t0 < 5);
    char *missing[] = {"/nonexistent/prog", NULL};
    CHECK_EQ_INT(shoal_run_capture(missing, NULL, 0, 10, out, sizeof out, &code), SHOAL_ERR_IO);
    CHECK_EQ_INT(code, 127);

    shoal_launcher l;
    sink s = {0};
    shoal_launcher_callbacks cb = {&s, on_log, on_running_cb, on_exit_cb};
    shoal_launcher_config cfg = config();
    CHECK_EQ_INT(shoal_launcher_init(&l, SHOAL_LAUNCHER_DEFAULT, &cfg, &cb),
                 SHOAL_ERR_INVALID_ARG);
    shoal_launcher_callbacks nocb = {0};
    CHECK_EQ_INT(shoal_launcher_init(&l, SHOAL_LAUNCHER_LOCAL, &cfg, &nocb),
                 SHOAL_ERR_INVALID_ARG);
}

int main(void) {
    if (system("command -v mpirun >/dev/null 2>&1") != 0) TEST_SKIP("mpirun not installed");
    shoal_log_set_level(SHOAL_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    TEST_RUN(test_helpers);
    TEST_RUN(test_two_ranks_ok);
    TEST_RUN(test_failing_rank);
    TEST_RUN(test_cancel_kills_all);
    TEST_RUN(test_hostfile);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_tmpdir());
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", test_tmpdir());
    return TEST_EXIT();
}
