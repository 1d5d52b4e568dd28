/* test_store.c: coordinator/store.c against a real SQLite file in a scratch directory:
 * the legal-transition graph (every pair), illegal changes refused with the row untouched,
 * events with reasons, retries, 8 threads x 125 submits (each job present exactly once),
 * a writer SIGKILLed mid-stream (every acknowledged id survives the reopen), log bounds,
 * idempotency keys, the pending-jobs limit (also with a second connection inserting and
 * finishing jobs beside the first, whose kept active count must notice), listing filters and
 * paging, schema versions, hosts and models. */
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coordinator/store.h"
#include "test.h"

static int db_counter;

static void db_path(char *out, size_t cap) {
    snprintf(out, cap, "%s/store%d.db", test_tmpdir(), db_counter++);
}

static char *argv_true[] = {"true"};

static void cmd_spec(shoal_job_spec *s, const char *name, int priority) {
    shoal_job_spec_init(s);
    s->name = (char *)name;
    s->kind = SHOAL_JOB_KIND_COMMAND;
    s->priority = priority;
    s->argv = argv_true;
    s->argc = 1;
}

static shoal_store *open_fresh(void) {
    char p[512];
    db_path(p, sizeof p);
    shoal_store *st = NULL;
    CHECK_EQ_INT(shoal_store_open(p, &st), SHOAL_OK);
    return st;
}

static void test_transition_graph(void) {
    /* expected legal moves, [from][to] */
    static const int legal[7][7] = {
        [SHOAL_JOB_QUEUED] = {[SHOAL_JOB_STARTING] = 1, [SHOAL_JOB_CANCELLED] = 1},
        [SHOAL_JOB_STARTING] = {[SHOAL_JOB_RUNNING] = 1, [SHOAL_JOB_FAILED] = 1,
                                [SHOAL_JOB_CANCELLED] = 1, [SHOAL_JOB_QUEUED] = 1},
        [SHOAL_JOB_RUNNING] = {[SHOAL_JOB_SUCCEEDED] = 1, [SHOAL_JOB_FAILED] = 1,
                               [SHOAL_JOB_CANCELLED] = 1, [SHOAL_JOB_QUEUED] = 1},
    };
    for (int f = 0; f < 7; f++)
        for (int t = 0; t < 7; t++)
            CHECK_EQ_INT(shoal_job_state_can_move((shoal_job_state)f, (shoal_job_state)t),
                         legal[f][t]);
    CHECK_STR(shoal_job_state_str(SHOAL_JOB_CANCELLED), "cancelled");
    CHECK_STR(shoal_job_state_str((shoal_job_state)9), "?");
}

static void test_lifecycle(void) {
    shoal_store *st = open_fresh();
    if (!st) return;
    CHECK_EQ_INT(shoal_store_schema_version(st), shoal_store_schema_latest());
    shoal_job_spec spec;
    cmd_spec(&spec, "life", 0);
    uint64_t id = 0;
    CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "alice", NULL, &id), SHOAL_OK);
    CHECK(id > 0);
    shoal_job_record r;
    CHECK_EQ_INT(shoal_store_job_get(st, id, &r), SHOAL_OK);
    CHECK_EQ_INT(r.state, SHOAL_JOB_QUEUED);
    CHECK_STR(r.submitter, "alice");
    CHECK_STR(r.spec.name, "life");
    CHECK_STR(r.spec.argv[0], "true");
    CHECK(r.submitted_at > 1.6e9);
    shoal_job_record_free(&r);

    /* illegal: QUEUED -> RUNNING (must pass STARTING) */
    shoal_job_state from = 0;
    CHECK_EQ_INT(shoal_store_job_transition(st, id, SHOAL_JOB_RUNNING, "skip", 0, 0, &from),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(from, SHOAL_JOB_QUEUED);
    CHECK_EQ_INT(shoal_store_job_transition(st, id, SHOAL_JOB_STARTING, "slots free", 0, 0, NULL),
                 SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_set_launch(st, id, "pid:1234", "localhost:2"), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_transition(st, id, SHOAL_JOB_RUNNING, "launched", 0, 0, NULL),
                 SHOAL_OK);
    /* a retry: RUNNING -> QUEUED bumps attempt, clears the launch, keeps the checkpoint */
    CHECK_EQ_INT(shoal_store_job_set_checkpoint(st, id, "/ckpt/step-100"), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_transition(st, id, SHOAL_JOB_QUEUED, "rank 1 died", 0, 1e10,
                                            NULL),
                 SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_get(st, id, &r), SHOAL_OK);
    CHECK_EQ_INT(r.attempt, 1);
    CHECK_NEAR(r.not_before, 1e10, 1e-9);
    CHECK_STR(r.launch_handle, "");
    CHECK_STR(r.alloc, "");
    CHECK_STR(r.last_checkpoint, "/ckpt/step-100");
    CHECK_STR(r.reason, "rank 1 died");
    shoal_job_record_free(&r);
    CHECK_EQ_INT(shoal_store_job_transition(st, id, SHOAL_JOB_STARTING, "again", 0, 0, NULL),
                 SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_transition(st, id, SHOAL_JOB_RUNNING, "relaunched", 0, 0, NULL),
                 SHOAL_OK);
    shoal_job_progress p = {.step = 50, .total_steps = 100, .loss = 2.5, .tokens_per_s = 1000,
                            .eta_s = 30};
    CHECK_EQ_INT(shoal_store_job_set_progress(st, id, &p), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_transition(st, id, SHOAL_JOB_FAILED, "exit 3", 3, 0, NULL),
                 SHOAL_OK);
    /* terminal: nothing moves it any more, and the row stays as it was */
    for (int t = SHOAL_JOB_QUEUED; t <= SHOAL_JOB_CANCELLED; t++)
        CHECK_EQ_INT(shoal_store_job_transition(st, id, (shoal_job_state)t, "late", 0, 0, NULL),
                     SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_store_job_get(st, id, &r), SHOAL_OK);
    CHECK_EQ_INT(r.state, SHOAL_JOB_FAILED);
    CHECK_EQ_INT(r.exit_code, 3);
    CHECK_STR(r.reason, "exit 3");
    CHECK(r.finished_at >= r.started_at && r.started_at > 0);
    CHECK_EQ_INT(r.progress.step, 50);
    CHECK_NEAR(r.progress.loss, 2.5, 1e-12);
    shoal_job_record_free(&r);

    shoal_job_event *ev = NULL;
    int n = 0;
    CHECK_EQ_INT(shoal_store_job_events(st, id, 0, 0, &ev, &n), SHOAL_OK);
    static const int want_to[] = {SHOAL_JOB_QUEUED,  SHOAL_JOB_STARTING, SHOAL_JOB_RUNNING,
                                  SHOAL_JOB_QUEUED,  SHOAL_JOB_STARTING, SHOAL_JOB_RUNNING,
                                  SHOAL_JOB_FAILED};
    CHECK_EQ_INT(n, 7);
    for (int i = 0; i < n && i < 7; i++) {
        CHECK_EQ_INT(ev[i].to, want_to[i]);
        if (i > 0) CHECK_EQ_INT(ev[i].from, want_to[i - 1]);
    }
    if (n == 7) {
        CHECK_STR(ev[0].reason, "submitted");
        CHECK_STR(ev[3].reason, "rank 1 died");
        int64_t after = ev[4].id;
        free(ev);
        CHECK_EQ_INT(shoal_store_job_events(st, id, after, 0, &ev, &n), SHOAL_OK);
        CHECK_EQ_INT(n, 2);
    }
    free(ev);

    CHECK_EQ_INT(shoal_store_job_get(st, 999999, &r), SHOAL_ERR_NOT_FOUND);
    CHECK_EQ_INT(shoal_store_job_transition(st, 999999, SHOAL_JOB_CANCELLED, "x", 0, 0, NULL),
                 SHOAL_ERR_NOT_FOUND);
    CHECK_EQ_INT(shoal_store_job_set_progress(st, 999999, &p), SHOAL_ERR_NOT_FOUND);
    shoal_store_close(st);
}

typedef struct {
    shoal_store *st;
    int tid;
    uint64_t ids[125];
    int errors;
} submit_arg;

static void *submit_thread(void *p) {
    submit_arg *a = p;
    char name[32];
    for (int i = 0; i < 125; i++) {
        shoal_job_spec spec;
        snprintf(name, sizeof name, "t%d-%d", a->tid, i);
        cmd_spec(&spec, name, 0);
        if (shoal_store_job_insert(a->st, &spec, "bench", NULL, &a->ids[i]) != SHOAL_OK)
            a->errors++;
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_concurrent_submits(void) {
    shoal_store *st = open_fresh();
    if (!st) return;
    submit_arg args[8];
    pthread_t th[8];
    for (int t = 0; t < 8; t++) {
        memset(&args[t], 0, sizeof args[t]);
        args[t].st = st;
        args[t].tid = t;
        pthread_create(&th[t], NULL, submit_thread, &args[t]);
    }
    uint64_t all[1000];
    for (int t = 0; t < 8; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(args[t].errors, 0);
        memcpy(all + t * 125, args[t].ids, sizeof args[t].ids);
    }
    qsort(all, 1000, sizeof all[0], cmp_u64);
    int dup = 0, zero = 0;
    for (int i = 0; i < 1000; i++) {
        zero += all[i] == 0;
        if (i) dup += all[i] == all[i - 1];
    }
    CHECK_EQ_INT(dup, 0);
    CHECK_EQ_INT(zero, 0);
    /* and the store holds exactly these 1,000 jobs, each once, each with its own name */
    shoal_job_record *recs = NULL;
    int n = 0;
    CHECK_EQ_INT(shoal_store_job_list(st, 0, NULL, 0, 0, &recs, &n), SHOAL_OK);
    CHECK_EQ_INT(n, 1000);
    int mismatch = 0;
    for (int i = 0; i < n && i < 1000; i++) mismatch += recs[i].id != all[i];
    CHECK_EQ_INT(mismatch, 0);
    int seen[8][125];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < n; i++) {
        int t = -1, k = -1;
        if (sscanf(recs[i].spec.name, "t%d-%d", &t, &k) == 2 && t >= 0 && t < 8 && k >= 0 &&
            k < 125)
            seen[t][k]++;
    }
    int once = 0;
    for (int t = 0; t < 8; t++)
        for (int k = 0; k < 125; k++) once += seen[t][k] == 1;
    CHECK_EQ_INT(once, 1000);
    shoal_job_records_free(recs, n);
    int64_t cnt = 0;
    CHECK_EQ_INT(shoal_store_job_count(st, SHOAL_JOB_STATES_ACTIVE, &cnt), SHOAL_OK);
    CHECK_EQ_INT(cnt, 1000);
    /* 8 submitters against ~1 ms fsyncs: they share commits */
    uint64_t commits = 0, inserts = 0;
    shoal_store_insert_stats(st, &commits, &inserts);
    CHECK_EQ_INT((int)inserts, 1000);
    CHECK(commits >= 1 && commits < 1000);
    printf("group commit: 1000 jobs in %llu commits\n", (unsigned long long)commits);
    shoal_store_close(st);
}

/* 8 threads of a child process submit as fast as they can, each writing every acknowledged id
 * down one pipe (8-byte writes are atomic); the parent SIGKILLs the child right after the
 * first 400 acknowledgements. Every acknowledged id must be present once, QUEUED, with the
 * name its thread gave it, and the database must pass integrity_check. */
typedef struct {
    shoal_store *st;
    int tid, fd;
} kill_arg;

static void *kill_submitter(void *p) {
    kill_arg *a = p;
    char name[32];
    for (int i = 0; i < 100000; i++) {
        shoal_job_spec spec;
        snprintf(name, sizeof name, "g%d-%d", a->tid, i);
        cmd_spec(&spec, name, 0);
        uint64_t id = 0;
        if (shoal_store_job_insert(a->st, &spec, "child", NULL, &id) != SHOAL_OK) _exit(4);
        uint64_t rec[2] = {id, ((uint64_t)a->tid << 32) | (uint64_t)i};
        if (write(a->fd, rec, sizeof rec) != (ssize_t)sizeof rec) _exit(5);
    }
    return NULL;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_kill_group_commit(void) {
    char p[512];
    db_path(p, sizeof p);
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        shoal_store *st = NULL;
        if (shoal_store_open(p, &st) != SHOAL_OK) _exit(3);
        kill_arg args[8];
        pthread_t th[8];
        for (int t = 0; t < 8; t++) {
            args[t] = (kill_arg){st, t, fds[1]};
            pthread_create(&th[t], NULL, kill_submitter, &args[t]);
        }
        for (int t = 0; t < 8; t++) pthread_join(th[t], NULL);
        _exit(0);
    }
    close(fds[1]);
    enum { CAP = 800000 };
    uint64_t(*acked)[2] = malloc(CAP * sizeof *acked);
    int n = 0;
    uint64_t rec[2];
    while (n < 400 && read(fds[0], rec, sizeof rec) == (ssize_t)sizeof rec) {
        acked[n][0] = rec[0];
        acked[n++][1] = rec[1];
    }
    kill(pid, SIGKILL);
    while (n < CAP && read(fds[0], rec, sizeof rec) == (ssize_t)sizeof rec) {
        acked[n][0] = rec[0];
        acked[n++][1] = rec[1];
    }
    close(fds[0]);
    int wst = 0;
    waitpid(pid, &wst, 0);
    CHECK(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
    CHECK(n >= 400);

    shoal_store *st = NULL;
    CHECK_EQ_INT(shoal_store_open(p, &st), SHOAL_OK);
    if (st) {
        int missing = 0, wrong = 0;
        for (int i = 0; i < n; i++) {
            shoal_job_record r;
            char want[32];
            snprintf(want, sizeof want, "g%d-%d", (int)(acked[i][1] >> 32),
                     (int)(acked[i][1] & 0xffffffffu));
            if (shoal_store_job_get(st, acked[i][0], &r) != SHOAL_OK ||
                r.state != SHOAL_JOB_QUEUED)
                missing++;
            else if (!r.spec.name || strcmp(r.spec.name, want) != 0)
                wrong++;
            shoal_job_record_free(&r);
        }
        CHECK_EQ_INT(missing, 0);
        CHECK_EQ_INT(wrong, 0);
        /* acknowledged ids are unique */
        uint64_t *ids = malloc((size_t)n * sizeof *ids);
        for (int i = 0; i < n; i++) ids[i] = acked[i][0];
        qsort(ids, (size_t)n, sizeof *ids, cmp_u64);
        int dup = 0;
        for (int i = 1; i < n; i++) dup += ids[i] == ids[i - 1];
        CHECK_EQ_INT(dup, 0);
        /* each name at most once in the whole table (no row committed twice) */
        shoal_job_record *recs = NULL;
        int nr = 0;
        CHECK_EQ_INT(shoal_store_job_list(st, 0, "g", 0, 0, &recs, &nr), SHOAL_OK);
        CHECK(nr >= n);
        const char **names = malloc((size_t)(nr > 0 ? nr : 1) * sizeof *names);
        for (int i = 0; i < nr; i++) names[i] = recs[i].spec.name ? recs[i].spec.name : "";
        qsort(names, (size_t)nr, sizeof *names, cmp_str);
        int same = 0;
        for (int i = 1; i < nr; i++) same += strcmp(names[i], names[i - 1]) == 0;
        CHECK_EQ_INT(same, 0);
        free(names);
        shoal_job_records_free(recs, nr);
        free(ids);
        shoal_store_close(st);
    }
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(p, &db) == SQLITE_OK);
    sqlite3_stmt *s = NULL;
    CHECK(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(s) == SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    sqlite3_close(db);
    printf("group-commit kill test: %d acknowledged ids from 8 threads, all present once\n", n);
    free(acked);
}

/* Concurrent submitters in one batch: one idempotency key yields one job and one id for all;
 * the pending-jobs limit holds across the rows of a batch. */
typedef struct {
    shoal_store *st;
    const char *key;
    int n;
    uint64_t ids[8];
    int ok, limited;
} key_arg;

static void *key_submitter(void *p) {
    key_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        shoal_job_spec spec;
        cmd_spec(&spec, "k", 0);
        shoal_status r = shoal_store_job_insert(a->st, &spec, "", a->key, &a->ids[i]);
        a->ok += r == SHOAL_OK;
        a->limited += r == SHOAL_ERR_LIMIT;
    }
    return NULL;
}

static void test_group_key_and_limit(void) {
    shoal_store *st = open_fresh();
    if (!st) return;
    key_arg args[8];
    pthread_t th[8];
    for (int t = 0; t < 8; t++) {
        args[t] = (key_arg){.st = st, .key = "same-key", .n = 1};
        pthread_create(&th[t], NULL, key_submitter, &args[t]);
    }
    for (int t = 0; t < 8; t++) pthread_join(th[t], NULL);
    int differ = 0;
    for (int t = 0; t < 8; t++) {
        CHECK_EQ_INT(args[t].ok, 1);
        differ += args[t].ids[0] != args[0].ids[0];
    }
    CHECK_EQ_INT(differ, 0);
    int64_t cnt = 0;
    CHECK_EQ_INT(shoal_store_job_count(st, SHOAL_JOB_STATES_ACTIVE, &cnt), SHOAL_OK);
    CHECK_EQ_INT(cnt, 1);

    uint64_t old = shoal_limit(SHOAL_LIMIT_PENDING_JOBS);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_PENDING_JOBS, 21), SHOAL_OK);
    int ok = 0, limited = 0;
    for (int t = 0; t < 8; t++) {
        args[t] = (key_arg){.st = st, .key = NULL, .n = 5};
        pthread_create(&th[t], NULL, key_submitter, &args[t]);
    }
    for (int t = 0; t < 8; t++) {
        pthread_join(th[t], NULL);
        ok += args[t].ok;
        limited += args[t].limited;
    }
    CHECK_EQ_INT(ok, 20); /* 21 minus the keyed job */
    CHECK_EQ_INT(limited, 20);
    CHECK_EQ_INT(shoal_store_job_count(st, SHOAL_JOB_STATES_ACTIVE, &cnt), SHOAL_OK);
    CHECK_EQ_INT(cnt, 21);
    shoal_limit_set(SHOAL_LIMIT_PENDING_JOBS, old);
    shoal_store_close(st);
}

/* A child inserts jobs as fast as it can and reports each acknowledged id down a pipe; the
 * parent SIGKILLs it mid-stream. Every id the child acknowledged must be in the reopened
 * store, and the database must pass integrity_check. */
static void test_kill_writer(void) {
    char p[512];
    db_path(p, sizeof p);
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        shoal_store *st = NULL;
        if (shoal_store_open(p, &st) != SHOAL_OK) _exit(3);
        for (int i = 0; i < 100000; i++) {
            shoal_job_spec spec;
            cmd_spec(&spec, "k", 0);
            uint64_t id = 0;
            if (shoal_store_job_insert(st, &spec, "child", NULL, &id) != SHOAL_OK) _exit(4);
            /* a little log traffic too, so the kill can land in other transactions */
            shoal_store_log_append(st, id, 0, 1, "line", NULL);
            if (write(fds[1], &id, sizeof id) != (ssize_t)sizeof id) _exit(5);
        }
        _exit(0);
    }
    close(fds[1]);
    uint64_t *acked = malloc(100000 * sizeof *acked);
    int n = 0;
    uint64_t id;
    while (n < 200 && read(fds[0], &id, sizeof id) == (ssize_t)sizeof id) acked[n++] = id;
    kill(pid, SIGKILL);
    /* ids written before the kill landed were acknowledged too */
    while (read(fds[0], &id, sizeof id) == (ssize_t)sizeof id) acked[n++] = id;
    close(fds[0]);
    int wst = 0;
    waitpid(pid, &wst, 0);
    CHECK(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
    CHECK(n >= 200);

    shoal_store *st = NULL;
    CHECK_EQ_INT(shoal_store_open(p, &st), SHOAL_OK);
    if (st) {
        int missing = 0;
        for (int i = 0; i < n; i++) {
            shoal_job_record r;
            if (shoal_store_job_get(st, acked[i], &r) != SHOAL_OK || r.state != SHOAL_JOB_QUEUED)
                missing++;
            shoal_job_record_free(&r);
        }
        CHECK_EQ_INT(missing, 0);
        /* and the store accepts writes again */
        shoal_job_spec spec;
        cmd_spec(&spec, "after", 0);
        CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "", NULL, &id), SHOAL_OK);
        CHECK(id > acked[n - 1]);
        shoal_store_close(st);
    }
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(p, &db) == SQLITE_OK);
    sqlite3_stmt *s = NULL;
    CHECK(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(s) == SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    sqlite3_close(db);
    printf("kill test: %d acknowledged ids, all present after SIGKILL\n", n);
    free(acked);
}

static void test_logs_bounded(void) {
    shoal_store *st = open_fresh();
    if (!st) return;
    uint64_t lines_def = shoal_limit(SHOAL_LIMIT_JOB_LOG_LINES);
    uint64_t bytes_def = shoal_limit(SHOAL_LIMIT_JOB_LOG_LINE_BYTES);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_JOB_LOG_LINES, 50), SHOAL_OK);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_JOB_LOG_LINE_BYTES, 16), SHOAL_OK);
    shoal_job_spec spec;
    cmd_spec(&spec, "logs", 0);
    uint64_t a = 0, b = 0;
    CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "", NULL, &a), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "", NULL, &b), SHOAL_OK);
    char text[64];
    for (int i = 1; i <= 120; i++) {
        snprintf(text, sizeof text, "line %d", i);
        int64_t seq = 0;
        CHECK_EQ_INT(shoal_store_log_append(st, a, i % 2, 1 + i % 2, text, &seq), SHOAL_OK);
        CHECK_EQ_INT(seq, i);
    }
    CHECK_EQ_INT(shoal_store_log_append(st, b, -1, 2, "a very long line that is cut", NULL),
                 SHOAL_OK);
    shoal_log_line *l = NULL;
    int n = 0;
    CHECK_EQ_INT(shoal_store_log_read(st, a, 0, 0, &l, &n), SHOAL_OK);
    CHECK_EQ_INT(n, 50);
    if (n == 50) {
        CHECK_EQ_INT(l[0].seq, 71);
        CHECK_STR(l[0].text, "line 71");
        CHECK_EQ_INT(l[49].seq, 120);
        CHECK_EQ_INT(l[49].rank, 0);
        CHECK_EQ_INT(l[49].stream, 1);
    }
    shoal_log_lines_free(l, n);
    CHECK_EQ_INT(shoal_store_log_read(st, a, 115, 3, &l, &n), SHOAL_OK);
    CHECK_EQ_INT(n, 3);
    if (n == 3) CHECK_EQ_INT(l[0].seq, 116);
    shoal_log_lines_free(l, n);
    CHECK_EQ_INT(shoal_store_log_read(st, b, 0, 0, &l, &n), SHOAL_OK);
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK_STR(l[0].text, "a very long line");
    shoal_log_lines_free(l, n);
    shoal_limit_set(SHOAL_LIMIT_JOB_LOG_LINES, lines_def);
    shoal_limit_set(SHOAL_LIMIT_JOB_LOG_LINE_BYTES, bytes_def);
    shoal_store_close(st);
}

static void test_idempotency_and_limit(void) {
    shoal_store *st = open_fresh();
    if (!st) return;
    shoal_job_spec spec;
    cmd_spec(&spec, "idem", 0);
    uint64_t a = 0, b = 0, c = 0;
    CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "", "key-1", &a), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "", "key-1", &b), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "", "key-2", &c), SHOAL_OK);
    CHECK(a > 0 && a == b && c != a);
    int64_t cnt = 0;
    CHECK_EQ_INT(shoal_store_job_count(st, 0xffff, &cnt), SHOAL_OK);
    CHECK_EQ_INT(cnt, 2);
    uint64_t def = shoal_limit(SHOAL_LIMIT_PENDING_JOBS);
    shoal_limit_set(SHOAL_LIMIT_PENDING_JOBS, 3);
    CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "", NULL, &b), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "", NULL, &b), SHOAL_ERR_LIMIT);
    CHECK_EQ_INT(b, 0);
    /* finishing one frees room */
    CHECK_EQ_INT(shoal_store_job_transition(st, a, SHOAL_JOB_CANCELLED, "user", 0, 0, NULL),
                 SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "", NULL, &b), SHOAL_OK);
    shoal_limit_set(SHOAL_LIMIT_PENDING_JOBS, def);
    /* an invalid spec never reaches the table */
    spec.ranks = 0;
    CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "", NULL, &b), SHOAL_ERR_INVALID_ARG);
    shoal_store_close(st);
}

/* The active-jobs count the limit uses is kept between group commits; it must stay exact when
 * another connection (a second store on the same file) inserts or finishes jobs, and when this
 * one finishes a job. */
static void test_limit_two_connections(void) {
    char p[512];
    db_path(p, sizeof p);
    shoal_store *a = NULL, *b = NULL;
    CHECK_EQ_INT(shoal_store_open(p, &a), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_open(p, &b), SHOAL_OK);
    if (!a || !b) {
        shoal_store_close(a);
        shoal_store_close(b);
        return;
    }
    shoal_job_spec spec;
    cmd_spec(&spec, "lim", 0);
    uint64_t def = shoal_limit(SHOAL_LIMIT_PENDING_JOBS);
    shoal_limit_set(SHOAL_LIMIT_PENDING_JOBS, 3);
    uint64_t a1 = 0, a2 = 0, b1 = 0, x = 0;
    CHECK_EQ_INT(shoal_store_job_insert(a, &spec, "", NULL, &a1), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_insert(a, &spec, "", NULL, &a2), SHOAL_OK); /* a counts 2 */
    CHECK_EQ_INT(shoal_store_job_insert(b, &spec, "", NULL, &b1), SHOAL_OK); /* now 3 */
    CHECK_EQ_INT(shoal_store_job_insert(a, &spec, "", NULL, &x), SHOAL_ERR_LIMIT);
    CHECK_EQ_INT(x, 0);
    /* b finishes one of a's jobs: a sees the room */
    CHECK_EQ_INT(shoal_store_job_transition(b, a1, SHOAL_JOB_CANCELLED, "other", 0, 0, NULL),
                 SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_insert(a, &spec, "", NULL, &x), SHOAL_OK);
    CHECK(x > b1);
    CHECK_EQ_INT(shoal_store_job_insert(a, &spec, "", NULL, &x), SHOAL_ERR_LIMIT);
    /* a state change among active states keeps the count; a terminal one frees room */
    CHECK_EQ_INT(shoal_store_job_transition(a, a2, SHOAL_JOB_STARTING, "go", 0, 0, NULL), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_insert(a, &spec, "", NULL, &x), SHOAL_ERR_LIMIT);
    CHECK_EQ_INT(shoal_store_job_transition(a, a2, SHOAL_JOB_FAILED, "done", 1, 0, NULL), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_insert(b, &spec, "", NULL, &x), SHOAL_OK);
    CHECK_EQ_INT(shoal_store_job_insert(a, &spec, "", NULL, &x), SHOAL_ERR_LIMIT);
    int64_t n = 0;
    CHECK_EQ_INT(shoal_store_job_count(a, SHOAL_JOB_STATES_ACTIVE, &n), SHOAL_OK);
    CHECK_EQ_INT(n, 3);
    shoal_limit_set(SHOAL_LIMIT_PENDING_JOBS, def);
    shoal_store_close(b);
    shoal_store_close(a);
}

static void test_list_and_queue(void) {
    shoal_store *st = open_fresh();
    if (!st) return;
    const char *names[] = {"alpha-1", "beta-1", "alpha-2", "gamma", "alpha_3"};
    int prio[] = {0, 5, 5, -1, 0};
    uint64_t ids[5];
    for (int i = 0; i < 5; i++) {
        shoal_job_spec spec;
        cmd_spec(&spec, names[i], prio[i]);
        CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "", NULL, &ids[i]), SHOAL_OK);
    }
    CHECK_EQ_INT(shoal_store_job_transition(st, ids[1], SHOAL_JOB_STARTING, "", 0, 0, NULL),
                 SHOAL_OK);
    shoal_job_record *r = NULL;
    int n = 0;
    CHECK_EQ_INT(shoal_store_job_list(st, 0, "alpha-", 0, 0, &r, &n), SHOAL_OK);
    CHECK_EQ_INT(n, 2);
    if (n == 2) CHECK(r[0].id == ids[0] && r[1].id == ids[2]);
    shoal_job_records_free(r, n);
    /* "_" is not a wildcard */
    CHECK_EQ_INT(shoal_store_job_list(st, 0, "alpha_", 0, 0, &r, &n), SHOAL_OK);
    CHECK_EQ_INT(n, 1);
    shoal_job_records_free(r, n);
    CHECK_EQ_INT(shoal_store_job_list(st, SHOAL_JOB_STATE_BIT(SHOAL_JOB_STARTING), NULL, 0, 0, &r,
                                      &n),
                 SHOAL_OK);
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK(r[0].id == ids[1]);
    shoal_job_records_free(r, n);
    /* paging: 2 per page */
    uint64_t after = 0;
    int total = 0, pages = 0;
    for (;;) {
        CHECK_EQ_INT(shoal_store_job_list(st, 0, NULL, after, 2, &r, &n), SHOAL_OK);
        if (n == 0) break;
        pages++;
        total += n;
        after = r[n - 1].id;
        shoal_job_records_free(r, n);
        if (pages > 10) break;
    }
    shoal_job_records_free(r, n);
    CHECK_EQ_INT(total, 5);
    CHECK_EQ_INT(pages, 3);
    /* queue order: priority desc then id */
    CHECK_EQ_INT(shoal_store_job_queue(st, SHOAL_JOB_STATE_BIT(SHOAL_JOB_QUEUED), 0, 0, &r, &n),
                 SHOAL_OK);
    CHECK_EQ_INT(n, 4);
    if (n == 4) {
        CHECK(r[0].id == ids[2]);
        CHECK(r[1].id == ids[0]);
        CHECK(r[2].id == ids[4]);
        CHECK(r[3].id == ids[3]);
    }
    shoal_job_records_free(r, n);
    CHECK_EQ_INT(shoal_store_job_queue(st, SHOAL_JOB_STATE_BIT(SHOAL_JOB_QUEUED), 2, 5, &r, &n),
                 SHOAL_OK);
    CHECK_EQ_INT(n, 2);
    if (n == 2) CHECK(r[0].id == ids[4] && r[1].id == ids[3]);
    shoal_job_records_free(r, n);
    shoal_store_close(st);
}

static void test_schema_and_files(void) {
    char p[512];
    db_path(p, sizeof p);
    shoal_store *st = NULL;
    CHECK_EQ_INT(shoal_store_open(p, &st), SHOAL_OK);
    shoal_store_close(st);
    /* reopening is a no-op migration */
    CHECK_EQ_INT(shoal_store_open(p, &st), SHOAL_OK);
    if (st) CHECK_EQ_INT(shoal_store_schema_version(st), shoal_store_schema_latest());
    shoal_store_close(st);
    /* an older database (version 1: no run_token column) is migrated, keeping its jobs */
    CHECK_EQ_INT(shoal_store_open(p, &st), SHOAL_OK);
    uint64_t old_id = 0;
    if (st) {
        shoal_job_spec spec;
        cmd_spec(&spec, "old", 0);
        CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "", NULL, &old_id), SHOAL_OK);
        shoal_store_close(st);
    }
    sqlite3 *db0 = NULL;
    CHECK(sqlite3_open(p, &db0) == SQLITE_OK);
    CHECK(sqlite3_exec(db0,
                       "ALTER TABLE jobs DROP COLUMN run_token; UPDATE schema_version SET "
                       "version = 1",
                       NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db0);
    CHECK_EQ_INT(shoal_store_open(p, &st), SHOAL_OK);
    if (st) {
        CHECK_EQ_INT(shoal_store_schema_version(st), 2);
        CHECK_EQ_INT(shoal_store_job_set_run_token(st, old_id, "tok"), SHOAL_OK);
        shoal_job_record r;
        CHECK_EQ_INT(shoal_store_job_get(st, old_id, &r), SHOAL_OK);
        CHECK_STR(r.spec.name, "old");
        CHECK_STR(r.run_token, "tok");
        shoal_job_record_free(&r);
        shoal_store_close(st);
    }
    /* a database from a newer shoal is refused */
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(p, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "UPDATE schema_version SET version = 99", NULL, NULL, NULL) ==
          SQLITE_OK);
    sqlite3_close(db);
    st = NULL;
    CHECK_EQ_INT(shoal_store_open(p, &st), SHOAL_ERR_FORMAT);
    CHECK(st == NULL);
    /* a file that is not a database */
    db_path(p, sizeof p);
    FILE *f = fopen(p, "w");
    fputs("this is not a sqlite database, not at all, it is just some text.........\n", f);
    fclose(f);
    CHECK(shoal_store_open(p, &st) != SHOAL_OK);
    CHECK(st == NULL);
    /* a directory that does not exist */
    CHECK_EQ_INT(shoal_store_open("/nonexistent/dir/x.db", &st), SHOAL_ERR_IO);
}

static void test_hosts_models(void) {
    shoal_store *st = open_fresh();
    if (!st) return;
    shoal_host h = {.name = "node1", .addr = "10.0.0.1", .cpu_slots = 8, .gpus = 4};
    CHECK_EQ_INT(shoal_store_host_put(st, &h), SHOAL_OK);
    h.gpus = 8;
    CHECK_EQ_INT(shoal_store_host_put(st, &h), SHOAL_OK);
    shoal_host h2 = {.name = "node0", .addr = "10.0.0.2", .cpu_slots = 2, .gpus = 0};
    CHECK_EQ_INT(shoal_store_host_put(st, &h2), SHOAL_OK);
    shoal_host bad = {.name = "x", .cpu_slots = -1};
    CHECK_EQ_INT(shoal_store_host_put(st, &bad), SHOAL_ERR_INVALID_ARG);
    shoal_host *hs = NULL;
    int n = 0;
    CHECK_EQ_INT(shoal_store_host_list(st, &hs, &n), SHOAL_OK);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK_STR(hs[0].name, "node0");
        CHECK_EQ_INT(hs[1].gpus, 8);
    }
    free(hs);
    shoal_job_spec spec;
    cmd_spec(&spec, "m", 0);
    uint64_t id = 0;
    CHECK_EQ_INT(shoal_store_job_insert(st, &spec, "", NULL, &id), SHOAL_OK);
    const char *sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    int64_t mid = 0;
    CHECK_EQ_INT(shoal_store_model_register(st, id, "/models/out", sha, &mid), SHOAL_OK);
    CHECK(mid > 0);
    CHECK_EQ_INT(shoal_store_model_register(st, id, "rel", sha, &mid), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_store_model_register(st, id, "/x", "abc", &mid), SHOAL_ERR_INVALID_ARG);
    char path[256], got[65];
    CHECK_EQ_INT(shoal_store_model_for_job(st, id, path, sizeof path, got), SHOAL_OK);
    CHECK_STR(path, "/models/out");
    CHECK_STR(got, sha);
    CHECK_EQ_INT(shoal_store_model_for_job(st, id + 1, path, sizeof path, got),
                 SHOAL_ERR_NOT_FOUND);
    shoal_store_close(st);
}

int main(void) {
    shoal_log_set_level(SHOAL_LOG_WARN);
    TEST_RUN(test_transition_graph);
    TEST_RUN(test_lifecycle);
    TEST_RUN(test_concurrent_submits);
    TEST_RUN(test_kill_writer);
    TEST_RUN(test_kill_group_commit);
    TEST_RUN(test_group_key_and_limit);
    TEST_RUN(test_logs_bounded);
    TEST_RUN(test_idempotency_and_limit);
    TEST_RUN(test_limit_two_connections);
    TEST_RUN(test_list_and_queue);
    TEST_RUN(test_schema_and_files);
    TEST_RUN(test_hosts_models);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_tmpdir());
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", test_tmpdir());
    return TEST_EXIT();
}
