/* store.c: see store.h. One writer connection behind one mutex, N_READERS read connections;
 * every multi-statement change is one transaction (BEGIN IMMEDIATE so that a writer never has
 * to upgrade a read lock). Job inserts are group-committed (shoal_store_job_insert). */
#define SHOAL_LOG_SUBSYS "store"
#include "coordinator/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"

/* One SubmitJob waiting for its group commit (lives on the submitter's stack). */
typedef struct ins_req {
    const shoal_job_spec *spec;
    const char *json, *submitter, *key;
    uint64_t id;
    shoal_status st;
    int done;
    struct ins_req *next;
} ins_req;

/* Read connections beside the writer: WAL lets readers run while the writer holds its lock or
 * waits for fsync, so GetJob/ListJobs/WatchJob never queue behind a group commit. Four cover
 * the handler threads that are runnable at once on the small hosts a coordinator runs on; a
 * reader that is busy is skipped, and when all are busy the caller waits for one. */
#define N_READERS 4

typedef struct {
    sqlite3 *db;
    pthread_mutex_t mu;
    sqlite3_stmt *get;    /* SELECT JOB_COLS ... WHERE id = ?, prepared once */
    sqlite3_stmt *queue1; /* the scheduler's one-state queue page, prepared on first use */
    sqlite3_stmt *hosts;  /* the host list (read on every scheduling pass), likewise */
} reader;

/* Statements of the submit path on the writer connection, prepared once (SQLITE_PREPARE_
 * PERSISTENT) instead of per call: parsing them was ~15% of the CPU of a 1-client SubmitJob
 * run. Used under store->mu only; each is reset right after its step. */
enum {
    W_SYNC_FULL,
    W_SYNC_NORMAL,
    W_BEGIN,
    W_COMMIT,
    W_ROLLBACK,
    W_SAVEPOINT,
    W_RELEASE,
    W_ROLLBACK_TO,
    W_INSERT_JOB,
    W_INSERT_EVENT,
    W_FIND_KEY,
    W_DATA_VERSION,
    W_COUNT
};
static const char *const w_sql[W_COUNT] = {
    [W_SYNC_FULL] = "PRAGMA synchronous=FULL",
    [W_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_SAVEPOINT] = "SAVEPOINT one_job",
    [W_RELEASE] = "RELEASE one_job",
    [W_ROLLBACK_TO] = "ROLLBACK TO one_job",
    [W_INSERT_JOB] = ("INSERT INTO jobs(name, spec, state, priority, ranks, gpus_per_rank, "
                      "submitter, idempotency_key, submitted_at, reason) "
                      "VALUES(?,?,?,?,?,?,?,?,?,'submitted')"),
    [W_INSERT_EVENT] = ("INSERT INTO job_events(job_id, from_state, to_state, reason, at) "
                        "VALUES(?,?,?,?,?)"),
    [W_FIND_KEY] = "SELECT id FROM jobs WHERE idempotency_key = ?",
    [W_DATA_VERSION] = "PRAGMA data_version",
};

struct shoal_store {
    sqlite3 *db;
    pthread_mutex_t mu;
    sqlite3_stmt *w[W_COUNT]; /* under mu; see w_sql */
    /* Active (queued/starting/running) jobs, for the pending-jobs limit: counting them through
     * the index costs O(active) per group commit, so the count is kept across commits while it
     * is known to be exact: this connection invalidates it when a job leaves the active states
     * (or a batch fails), and PRAGMA data_version catches commits by any other connection. */
    int64_t active;
    int active_valid;
    int64_t active_dv; /* data_version when active was counted */
    char path[SHOAL_MAX_PATH];
    /* group commit of job inserts: submitters queue here; one of them (the leader) commits
     * everything queued in one transaction with one fsync, then wakes the others */
    pthread_mutex_t gmu;
    pthread_cond_t gcv;
    ins_req *pend_head, *pend_tail;
    int leader;
    uint64_t n_commits, n_inserts; /* under gmu: group commits done, jobs they inserted */
    reader rd[N_READERS];
    atomic_uint next_rd;
};

/* Migrations, applied in order; migrations[i] brings the schema to version i + 1. Never edit
 * a released one: append a new one. */
static const char *const migrations[] = {
    /* 1: jobs, events, logs, hosts, models */
    "CREATE TABLE jobs("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT," /* ids are never reused */
    "  name TEXT NOT NULL,"
    "  spec TEXT NOT NULL," /* canonical JSON of the validated spec */
    "  state INTEGER NOT NULL CHECK(state BETWEEN 1 AND 6),"
    "  priority INTEGER NOT NULL,"
    "  ranks INTEGER NOT NULL,"
    "  gpus_per_rank INTEGER NOT NULL,"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  submitter TEXT NOT NULL DEFAULT '',"
    "  idempotency_key TEXT UNIQUE,"
    "  submitted_at REAL NOT NULL,"
    "  started_at REAL NOT NULL DEFAULT 0,"
    "  finished_at REAL NOT NULL DEFAULT 0,"
    "  exit_code INTEGER NOT NULL DEFAULT 0,"
    "  attempt INTEGER NOT NULL DEFAULT 0,"
    "  not_before REAL NOT NULL DEFAULT 0,"
    "  launch_handle TEXT NOT NULL DEFAULT '',"
    "  alloc TEXT NOT NULL DEFAULT '',"
    "  last_checkpoint TEXT NOT NULL DEFAULT '',"
    "  p_step INTEGER NOT NULL DEFAULT 0, p_total INTEGER NOT NULL DEFAULT 0,"
    "  p_loss REAL NOT NULL DEFAULT 0, p_tok_s REAL NOT NULL DEFAULT 0,"
    "  p_eta_s REAL NOT NULL DEFAULT 0, p_at REAL NOT NULL DEFAULT 0"
    ") STRICT;"
    "CREATE INDEX jobs_queue ON jobs(state, priority DESC, id);"
    "CREATE TABLE job_events("
    "  id INTEGER PRIMARY KEY,"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id),"
    "  from_state INTEGER NOT NULL,"
    "  to_state INTEGER NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  at REAL NOT NULL"
    ") STRICT;"
    "CREATE INDEX job_events_job ON job_events(job_id, id);"
    "CREATE TABLE job_logs("
    "  job_id INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  rank INTEGER NOT NULL,"
    "  stream INTEGER NOT NULL,"
    "  text TEXT NOT NULL,"
    "  at REAL NOT NULL,"
    "  PRIMARY KEY(job_id, seq)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE TABLE hosts("
    "  name TEXT PRIMARY KEY,"
    "  addr TEXT NOT NULL,"
    "  cpu_slots INTEGER NOT NULL CHECK(cpu_slots >= 0),"
    "  gpus INTEGER NOT NULL CHECK(gpus >= 0)"
    ") STRICT;"
    "CREATE TABLE models("
    "  id INTEGER PRIMARY KEY,"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id),"
    "  path TEXT NOT NULL,"
    "  sha256 TEXT NOT NULL CHECK(length(sha256) = 64),"
    "  created_at REAL NOT NULL"
    ") STRICT;"
    "CREATE INDEX models_job ON models(job_id);",
    /* 2: per-attempt secret the ranks present to RunService */
    "ALTER TABLE jobs ADD COLUMN run_token TEXT NOT NULL DEFAULT '';",
};
#define N_MIGRATIONS (int)(sizeof migrations / sizeof migrations[0])

int shoal_store_schema_latest(void) { return N_MIGRATIONS; }

static const char *const state_names[] = {"?",         "queued", "starting", "running",
                                          "succeeded", "failed", "cancelled"};

const char *shoal_job_state_str(shoal_job_state s) {
    return (unsigned)s <= SHOAL_JOB_CANCELLED ? state_names[s] : "?";
}

int shoal_job_state_terminal(shoal_job_state s) {
    return s == SHOAL_JOB_SUCCEEDED || s == SHOAL_JOB_FAILED || s == SHOAL_JOB_CANCELLED;
}

int shoal_job_state_can_move(shoal_job_state from, shoal_job_state to) {
    switch (from) {
    case SHOAL_JOB_QUEUED: return to == SHOAL_JOB_STARTING || to == SHOAL_JOB_CANCELLED;
    case SHOAL_JOB_STARTING:
        return to == SHOAL_JOB_RUNNING || to == SHOAL_JOB_FAILED || to == SHOAL_JOB_CANCELLED ||
               to == SHOAL_JOB_QUEUED;
    case SHOAL_JOB_RUNNING:
        return to == SHOAL_JOB_SUCCEEDED || to == SHOAL_JOB_FAILED ||
               to == SHOAL_JOB_CANCELLED || to == SHOAL_JOB_QUEUED;
    default: return 0;
    }
}

/* ---- helpers ------------------------------------------------------------------------- */

static shoal_status sql_err(shoal_store *store, const char *what) {
    SHOAL_LOG_ERROR("%s: %s: %s", store->path, what, sqlite3_errmsg(store->db));
    return SHOAL_ERR_IO;
}

static shoal_status exec(shoal_store *store, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(store->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        SHOAL_LOG_ERROR("%s: %.60s...: %s", store->path, sql, msg ? msg : "error");
        sqlite3_free(msg);
        return SHOAL_ERR_IO;
    }
    return SHOAL_OK;
}

static shoal_status prep(shoal_store *store, const char *sql, sqlite3_stmt **s) {
    if (sqlite3_prepare_v2(store->db, sql, -1, s, NULL) != SQLITE_OK) return sql_err(store, "prepare");
    return SHOAL_OK;
}

/* Step a statement that returns no rows (or whose rows we ignore). */
static shoal_status step_done(shoal_store *store, sqlite3_stmt *s, const char *what) {
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) return sql_err(store, what);
    return SHOAL_OK;
}

/* The writer's cached statement i (store->mu held), prepared on first use. NULL on error
 * (logged). The caller binds, steps and then calls w_done. */
static sqlite3_stmt *w_get(shoal_store *store, int i) {
    if (!store->w[i] && sqlite3_prepare_v3(store->db, w_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                           &store->w[i], NULL) != SQLITE_OK) {
        sql_err(store, w_sql[i]);
        store->w[i] = NULL;
    }
    return store->w[i];
}

static void w_done(sqlite3_stmt *s) {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/* Run cached statement i (no rows, no binds) to completion. */
static shoal_status w_exec(shoal_store *store, int i) {
    sqlite3_stmt *s = w_get(store, i);
    if (!s) return SHOAL_ERR_IO;
    shoal_status r = step_done(store, s, w_sql[i]);
    w_done(s);
    return r;
}

static void copy_col(char *dst, size_t cap, sqlite3_stmt *s, int col) {
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static void lock(shoal_store *store) { pthread_mutex_lock(&store->mu); }
static void unlock(shoal_store *store) { pthread_mutex_unlock(&store->mu); }

static shoal_status read_version(shoal_store *store, int *v) {
    sqlite3_stmt *s = NULL;
    *v = 0;
    SHOAL_CHECK(prep(store, "SELECT version FROM schema_version", &s));
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sql_err(store, "read schema_version");
    return SHOAL_OK;
}

static shoal_status migrate(shoal_store *store) {
    shoal_status s = SHOAL_OK;
    SHOAL_CHECK(exec(store, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL) "
                         "STRICT"));
    int v;
    SHOAL_CHECK(read_version(store, &v));
    SHOAL_REQUIRE(v <= N_MIGRATIONS, SHOAL_ERR_FORMAT,
                  "%s: schema version %d is newer than this shoal knows (%d); upgrade shoal",
                  store->path, v, N_MIGRATIONS);
    for (int i = v; i < N_MIGRATIONS; i++) {
        SHOAL_CHECK(exec(store, "BEGIN IMMEDIATE"));
        char bump[96];
        snprintf(bump, sizeof bump,
                 "DELETE FROM schema_version; INSERT INTO schema_version VALUES(%d)", i + 1);
        s = exec(store, migrations[i]);
        if (s == SHOAL_OK) s = exec(store, bump);
        if (s != SHOAL_OK) {
            exec(store, "ROLLBACK");
            SHOAL_LOG_ERROR("%s: migration to schema version %d failed", store->path, i + 1);
            return s;
        }
        SHOAL_CHECK(exec(store, "COMMIT"));
        SHOAL_LOG_INFO("%s: schema migrated to version %d", store->path, i + 1);
    }
    return SHOAL_OK;
}

#define JOB_COLS                                                                                   \
    "id, spec, state, reason, submitter, submitted_at, started_at, finished_at, exit_code, "      \
    "attempt, not_before, launch_handle, alloc, last_checkpoint, p_step, p_total, p_loss, "       \
    "p_tok_s, p_eta_s, p_at, run_token"

/* After the writer has set WAL mode and migrated: the read connections. query_only makes a
 * write through one of them an error rather than a second writer. */
static shoal_status open_readers(shoal_store *store) {
    for (int i = 0; i < N_READERS; i++) {
        reader *r = &store->rd[i];
        int rc = sqlite3_open_v2(store->path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                                 NULL);
        if (rc == SQLITE_OK) {
            sqlite3_busy_timeout(r->db, 5000);
            rc = sqlite3_exec(r->db, "PRAGMA query_only=1", NULL, NULL, NULL);
        }
        if (rc == SQLITE_OK)
            rc = sqlite3_prepare_v3(r->db, "SELECT " JOB_COLS " FROM jobs WHERE id = ?", -1,
                                    SQLITE_PREPARE_PERSISTENT, &r->get, NULL);
        if (rc != SQLITE_OK) {
            SHOAL_LOG_ERROR("%s: cannot open read connection %d: %s", store->path, i,
                            r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
            return SHOAL_ERR_IO;
        }
    }
    return SHOAL_OK;
}

/* A free read connection (locked); waits on one when all are busy. */
static reader *reader_get(shoal_store *store) {
    unsigned start = atomic_fetch_add(&store->next_rd, 1);
    for (int i = 0; i < N_READERS; i++) {
        reader *r = &store->rd[(start + (unsigned)i) % N_READERS];
        if (pthread_mutex_trylock(&r->mu) == 0) return r;
    }
    reader *r = &store->rd[start % N_READERS];
    pthread_mutex_lock(&r->mu);
    return r;
}

static void reader_put(reader *r) { pthread_mutex_unlock(&r->mu); }

static shoal_status prep_rd(shoal_store *store, reader *rd, const char *sql, sqlite3_stmt **s) {
    if (sqlite3_prepare_v2(rd->db, sql, -1, s, NULL) == SQLITE_OK) return SHOAL_OK;
    SHOAL_LOG_ERROR("%s: prepare: %s", store->path, sqlite3_errmsg(rd->db));
    return SHOAL_ERR_IO;
}

/* A statement of the reader kept in *slot, prepared on first use (rd locked). The caller
 * resets it (and clears its bindings) before reader_put. */
static shoal_status kept_rd(shoal_store *store, reader *rd, const char *sql, sqlite3_stmt **slot) {
    if (*slot) return SHOAL_OK;
    if (sqlite3_prepare_v3(rd->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) == SQLITE_OK)
        return SHOAL_OK;
    SHOAL_LOG_ERROR("%s: prepare: %s", store->path, sqlite3_errmsg(rd->db));
    *slot = NULL;
    return SHOAL_ERR_IO;
}

/* Done with a kept statement: end its read transaction and drop its bindings. */
static void kept_done(sqlite3_stmt *s) {
    if (!s) return;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

shoal_status shoal_store_open(const char *path, shoal_store **out) {
    *out = NULL;
    shoal_store *store = calloc(1, sizeof *store);
    SHOAL_REQUIRE(store, SHOAL_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&store->mu, NULL);
    pthread_mutex_init(&store->gmu, NULL);
    pthread_cond_init(&store->gcv, NULL);
    for (int i = 0; i < N_READERS; i++) pthread_mutex_init(&store->rd[i].mu, NULL);
    snprintf(store->path, sizeof store->path, "%s", path);
    shoal_status st = SHOAL_OK;
    int rc = sqlite3_open_v2(path, &store->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        SHOAL_LOG_ERROR("%s: cannot open the job store: %s", path,
                        store->db ? sqlite3_errmsg(store->db) : sqlite3_errstr(rc));
        st = SHOAL_ERR_IO;
        goto cleanup;
    }
    sqlite3_busy_timeout(store->db, 5000);
    sqlite3_extended_result_codes(store->db, 1);
    /* journal_mode returns the mode it ended in: a file that is not a database fails here. */
    sqlite3_stmt *q = NULL;
    SHOAL_CHECK_GOTO(prep(store, "PRAGMA journal_mode=WAL", &q));
    rc = sqlite3_step(q);
    const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(q, 0) : NULL;
    int wal = mode && strcmp((const char *)mode, "wal") == 0;
    sqlite3_finalize(q);
    SHOAL_REQUIRE_GOTO(wal, SHOAL_ERR_FORMAT,
                       "%s: cannot switch the job store to WAL mode (not a SQLite database, or "
                       "on a file system without shared memory such as NFS?)",
                       path);
    SHOAL_CHECK_GOTO(exec(store, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON"));
    SHOAL_CHECK_GOTO(migrate(store));
    SHOAL_CHECK_GOTO(open_readers(store));
    *out = store;
cleanup:
    if (st != SHOAL_OK) shoal_store_close(store);
    return st;
}

void shoal_store_close(shoal_store *store) {
    if (!store) return;
    /* readers first: the last connection to close checkpoints the WAL */
    for (int i = 0; i < N_READERS; i++) {
        sqlite3_finalize(store->rd[i].get);
        sqlite3_finalize(store->rd[i].queue1);
        sqlite3_finalize(store->rd[i].hosts);
        if (store->rd[i].db) sqlite3_close_v2(store->rd[i].db);
        pthread_mutex_destroy(&store->rd[i].mu);
    }
    for (int i = 0; i < W_COUNT; i++)
        sqlite3_finalize(store->w[i]);
    if (store->db) sqlite3_close_v2(store->db);
    pthread_cond_destroy(&store->gcv);
    pthread_mutex_destroy(&store->gmu);
    pthread_mutex_destroy(&store->mu);
    free(store);
}

int shoal_store_schema_version(shoal_store *store) {
    int v = 0;
    lock(store);
    if (read_version(store, &v) != SHOAL_OK) v = -1;
    unlock(store);
    return v;
}

/* ---- jobs ----------------------------------------------------------------------------- */

static shoal_status insert_event(shoal_store *store, uint64_t id, int from, int to,
                                 const char *reason, double at) {
    sqlite3_stmt *s = w_get(store, W_INSERT_EVENT);
    if (!s) return SHOAL_ERR_IO;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
    sqlite3_bind_int(s, 2, from);
    sqlite3_bind_int(s, 3, to);
    sqlite3_bind_text(s, 4, reason ? reason : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(s, 5, at);
    shoal_status r = step_done(store, s, "insert job event");
    w_done(s);
    return r;
}

/* Per state through the jobs_queue index (state first): a covering index range per state,
 * not a scan of the whole table with the state bit tested row by row. */
static shoal_status count_locked(shoal_store *store, unsigned mask, int64_t *n) {
    sqlite3_stmt *s = NULL;
    *n = 0;
    SHOAL_CHECK(prep(store, "SELECT count(*) FROM jobs WHERE state = ?", &s));
    shoal_status r = SHOAL_OK;
    for (int state = SHOAL_JOB_QUEUED; state <= SHOAL_JOB_CANCELLED && r == SHOAL_OK; state++) {
        if (!(mask & SHOAL_JOB_STATE_BIT(state))) continue;
        sqlite3_bind_int(s, 1, state);
        if (sqlite3_step(s) == SQLITE_ROW)
            *n += sqlite3_column_int64(s, 0);
        else
            r = sql_err(store, "count jobs");
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    return r;
}

static shoal_status find_by_key(shoal_store *store, const char *key, uint64_t *id) {
    *id = 0;
    sqlite3_stmt *s = w_get(store, W_FIND_KEY);
    if (!s) return SHOAL_ERR_IO;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *id = (uint64_t)sqlite3_column_int64(s, 0);
    w_done(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sql_err(store, "look up idempotency key");
    return SHOAL_OK;
}

/* One queued insert inside the leader's transaction (store locked). Its own savepoint: a
 * failing row is undone alone and the rest of the batch still commits. */
static shoal_status insert_one_locked(shoal_store *store, ins_req *q, int64_t *active,
                                      double now) {
    shoal_status st = SHOAL_OK;
    sqlite3_stmt *ins = NULL;
    int in_sp = 0;
    if (q->key) {
        uint64_t prev = 0;
        SHOAL_CHECK(find_by_key(store, q->key, &prev));
        if (prev) {
            q->id = prev; /* same key earlier in this batch counts too: same commit */
            return SHOAL_OK;
        }
    }
    SHOAL_REQUIRE((uint64_t)*active < shoal_limit(SHOAL_LIMIT_PENDING_JOBS), SHOAL_ERR_LIMIT,
                  "%s: %lld jobs are already queued or running (limit pending_jobs=%llu); "
                  "try again later",
                  store->path, (long long)*active,
                  (unsigned long long)shoal_limit(SHOAL_LIMIT_PENDING_JOBS));
    SHOAL_CHECK(w_exec(store, W_SAVEPOINT));
    in_sp = 1;
    ins = w_get(store, W_INSERT_JOB);
    SHOAL_REQUIRE_GOTO(ins, SHOAL_ERR_IO, "%s: cannot prepare the job insert", store->path);
    const shoal_job_spec *spec = q->spec;
    sqlite3_bind_text(ins, 1, spec->name ? spec->name : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 2, q->json, -1, SQLITE_STATIC);
    sqlite3_bind_int(ins, 3, SHOAL_JOB_QUEUED);
    sqlite3_bind_int(ins, 4, spec->priority);
    sqlite3_bind_int(ins, 5, spec->ranks);
    sqlite3_bind_int(ins, 6, spec->gpus_per_rank);
    sqlite3_bind_text(ins, 7, q->submitter ? q->submitter : "", -1, SQLITE_STATIC);
    if (q->key)
        sqlite3_bind_text(ins, 8, q->key, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(ins, 8);
    sqlite3_bind_double(ins, 9, now);
    SHOAL_CHECK_GOTO(step_done(store, ins, "insert job"));
    uint64_t new_id = (uint64_t)sqlite3_last_insert_rowid(store->db);
    SHOAL_CHECK_GOTO(insert_event(store, new_id, 0, SHOAL_JOB_QUEUED, "submitted", now));
    SHOAL_CHECK_GOTO(w_exec(store, W_RELEASE));
    in_sp = 0;
    q->id = new_id; /* not yet acknowledged: the batch's COMMIT publishes it */
    (*active)++;
cleanup:
    if (ins) w_done(ins); /* the STATIC binds must not outlive this call */
    if (in_sp && w_exec(store, W_ROLLBACK_TO) == SHOAL_OK) w_exec(store, W_RELEASE);
    return st;
}

/* The active-jobs count inside the leader's transaction: the kept one while it is exact,
 * else counted again through the index. */
static shoal_status active_locked(shoal_store *store, int64_t *active) {
    sqlite3_stmt *v = w_get(store, W_DATA_VERSION);
    if (!v) return SHOAL_ERR_IO;
    int64_t dv = sqlite3_step(v) == SQLITE_ROW ? sqlite3_column_int64(v, 0) : -1;
    w_done(v);
    if (dv < 0) return sql_err(store, "read data_version");
    if (!store->active_valid || dv != store->active_dv) {
        SHOAL_CHECK(count_locked(store, SHOAL_JOB_STATES_ACTIVE, &store->active));
        store->active_valid = 1;
        store->active_dv = dv;
    }
    *active = store->active;
    return SHOAL_OK;
}

/* The leader's work: every queued insert in one BEGIN IMMEDIATE ... COMMIT under
 * synchronous=FULL, so one fsync makes the whole batch durable. When the COMMIT fails no id
 * of the batch is handed out. */
static void commit_batch(shoal_store *store, ins_req *batch) {
    int64_t active = 0;
    lock(store);
    /* FULL for this commit only: the ids we return must survive a power cut too. */
    shoal_status st = w_exec(store, W_SYNC_FULL);
    if (st == SHOAL_OK) st = w_exec(store, W_BEGIN);
    if (st == SHOAL_OK) {
        st = active_locked(store, &active);
        if (st != SHOAL_OK) w_exec(store, W_ROLLBACK);
    }
    if (st == SHOAL_OK) {
        double now = shoal_wall_s();
        for (ins_req *q = batch; q; q = q->next) q->st = insert_one_locked(store, q, &active, now);
        if (w_exec(store, W_COMMIT) != SHOAL_OK) {
            w_exec(store, W_ROLLBACK);
            st = SHOAL_ERR_IO;
        }
    }
    if (st == SHOAL_OK) {
        store->active = active; /* our own commit leaves data_version as it was */
    } else {
        store->active_valid = 0;
        for (ins_req *q = batch; q; q = q->next) {
            if (q->st == SHOAL_OK) q->st = st;
            q->id = 0;
        }
    }
    w_exec(store, W_SYNC_NORMAL);
    unlock(store);
}

void shoal_store_insert_stats(shoal_store *store, uint64_t *commits, uint64_t *inserts) {
    pthread_mutex_lock(&store->gmu);
    *commits = store->n_commits;
    *inserts = store->n_inserts;
    pthread_mutex_unlock(&store->gmu);
}

shoal_status shoal_store_job_insert(shoal_store *store, const shoal_job_spec *spec,
                                    const char *submitter, const char *idempotency_key,
                                    uint64_t *id) {
    *id = 0;
    SHOAL_CHECK(shoal_job_spec_validate(spec, "job spec"));
    int has_key = idempotency_key && idempotency_key[0];
    SHOAL_REQUIRE(!has_key || strlen(idempotency_key) <= 128, SHOAL_ERR_INVALID_ARG,
                  "idempotency key of %zu bytes is longer than 128", strlen(idempotency_key));
    char *json = NULL;
    SHOAL_CHECK(shoal_job_spec_to_string(spec, &json));
    ins_req me = {.spec = spec,
                  .json = json,
                  .submitter = submitter,
                  .key = has_key ? idempotency_key : NULL,
                  .st = SHOAL_OK};
    /* Group commit: queue, then either wait for the leader of the batch we joined, or, when
     * no commit is under way, lead one with everything queued so far (ours included). */
    pthread_mutex_lock(&store->gmu);
    if (store->pend_tail)
        store->pend_tail->next = &me;
    else
        store->pend_head = &me;
    store->pend_tail = &me;
    while (!me.done) {
        if (store->leader) {
            pthread_cond_wait(&store->gcv, &store->gmu);
            continue;
        }
        store->leader = 1;
        ins_req *batch = store->pend_head;
        store->pend_head = store->pend_tail = NULL;
        pthread_mutex_unlock(&store->gmu);
        commit_batch(store, batch);
        pthread_mutex_lock(&store->gmu);
        store->n_commits++;
        for (ins_req *q = batch, *nx; q; q = nx) {
            nx = q->next; /* q may return (and its stack frame go) once done is set */
            store->n_inserts += q->st == SHOAL_OK;
            q->done = 1;
        }
        store->leader = 0;
        pthread_cond_broadcast(&store->gcv);
    }
    pthread_mutex_unlock(&store->gmu);
    free(json);
    if (me.st == SHOAL_OK) *id = me.id; /* acknowledged only now: its commit is durable */
    return me.st;
}

static shoal_status row_to_record(shoal_store *store, sqlite3_stmt *s, shoal_job_record *r) {
    memset(r, 0, sizeof *r);
    r->id = (uint64_t)sqlite3_column_int64(s, 0);
    const char *spec = (const char *)sqlite3_column_text(s, 1);
    char what[64];
    snprintf(what, sizeof what, "job %llu spec", (unsigned long long)r->id);
    shoal_status rc = shoal_job_spec_parse(spec ? spec : "", spec ? strlen(spec) : 0, NULL, what,
                                           &r->spec);
    if (rc != SHOAL_OK) {
        SHOAL_LOG_ERROR("%s: stored spec of job %llu is unreadable", store->path,
                        (unsigned long long)r->id);
        return SHOAL_ERR_FORMAT;
    }
    r->state = (shoal_job_state)sqlite3_column_int(s, 2);
    copy_col(r->reason, sizeof r->reason, s, 3);
    copy_col(r->submitter, sizeof r->submitter, s, 4);
    r->submitted_at = sqlite3_column_double(s, 5);
    r->started_at = sqlite3_column_double(s, 6);
    r->finished_at = sqlite3_column_double(s, 7);
    r->exit_code = sqlite3_column_int(s, 8);
    r->attempt = sqlite3_column_int(s, 9);
    r->not_before = sqlite3_column_double(s, 10);
    copy_col(r->launch_handle, sizeof r->launch_handle, s, 11);
    copy_col(r->alloc, sizeof r->alloc, s, 12);
    copy_col(r->last_checkpoint, sizeof r->last_checkpoint, s, 13);
    r->progress.step = sqlite3_column_int64(s, 14);
    r->progress.total_steps = sqlite3_column_int64(s, 15);
    r->progress.loss = sqlite3_column_double(s, 16);
    r->progress.tokens_per_s = sqlite3_column_double(s, 17);
    r->progress.eta_s = sqlite3_column_double(s, 18);
    r->progress.updated_at = sqlite3_column_double(s, 19);
    copy_col(r->run_token, sizeof r->run_token, s, 20);
    return SHOAL_OK;
}

void shoal_job_record_free(shoal_job_record *r) {
    if (r) shoal_job_spec_free(&r->spec);
}

void shoal_job_records_free(shoal_job_record *r, int n) {
    if (!r) return;
    for (int i = 0; i < n; i++) shoal_job_record_free(&r[i]);
    free(r);
}

shoal_status shoal_store_job_get(shoal_store *store, uint64_t id, shoal_job_record *out) {
    memset(out, 0, sizeof *out);
    shoal_status r = SHOAL_OK;
    reader *rd = reader_get(store);
    sqlite3_stmt *s = rd->get;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        r = row_to_record(store, s, out);
    } else if (rc == SQLITE_DONE) {
        r = SHOAL_ERR_NOT_FOUND;
    } else {
        SHOAL_LOG_ERROR("%s: get job: %s", store->path, sqlite3_errmsg(rd->db));
        r = SHOAL_ERR_IO;
    }
    sqlite3_reset(s); /* ends the read transaction: the next call sees newer commits */
    sqlite3_clear_bindings(s);
    reader_put(rd);
    return r;
}

shoal_status shoal_store_job_transition(shoal_store *store, uint64_t id, shoal_job_state to,
                                        const char *reason, int exit_code, double retry_at,
                                        shoal_job_state *from_out) {
    shoal_status st = SHOAL_OK;
    sqlite3_stmt *q = NULL, *u = NULL;
    int in_tx = 0;
    if (!reason) reason = "";
    lock(store);
    SHOAL_CHECK_GOTO(exec(store, "BEGIN IMMEDIATE"));
    in_tx = 1;
    SHOAL_CHECK_GOTO(prep(store, "SELECT state FROM jobs WHERE id = ?", &q));
    sqlite3_bind_int64(q, 1, (sqlite3_int64)id);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE) {
        st = SHOAL_ERR_NOT_FOUND;
        goto cleanup;
    }
    if (rc != SQLITE_ROW) {
        st = sql_err(store, "read job state");
        goto cleanup;
    }
    shoal_job_state from = (shoal_job_state)sqlite3_column_int(q, 0);
    if (from_out) *from_out = from;
    SHOAL_REQUIRE_GOTO(shoal_job_state_can_move(from, to), SHOAL_ERR_INVALID_ARG,
                       "job %llu: illegal state change %s -> %s (%s)", (unsigned long long)id,
                       shoal_job_state_str(from), shoal_job_state_str(to), reason);
    double now = shoal_wall_s();
    const char *sql;
    if (to == SHOAL_JOB_RUNNING)
        sql = "UPDATE jobs SET state=?1, reason=?2, started_at=?3 WHERE id=?6";
    else if (shoal_job_state_terminal(to))
        sql = "UPDATE jobs SET state=?1, reason=?2, finished_at=?3, exit_code=?4 WHERE id=?6";
    else if (to == SHOAL_JOB_QUEUED)
        sql = "UPDATE jobs SET state=?1, reason=?2, attempt=attempt+1, not_before=?5, "
              "launch_handle='', alloc='', run_token='' WHERE id=?6";
    else
        sql = "UPDATE jobs SET state=?1, reason=?2 WHERE id=?6";
    SHOAL_CHECK_GOTO(prep(store, sql, &u));
    sqlite3_bind_int(u, 1, to);
    sqlite3_bind_text(u, 2, reason, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(u, 3, now);
    sqlite3_bind_int(u, 4, exit_code);
    sqlite3_bind_double(u, 5, retry_at);
    sqlite3_bind_int64(u, 6, (sqlite3_int64)id);
    SHOAL_CHECK_GOTO(step_done(store, u, "update job state"));
    SHOAL_CHECK_GOTO(insert_event(store, id, from, to, reason, now));
    SHOAL_CHECK_GOTO(exec(store, "COMMIT"));
    in_tx = 0;
cleanup:
    sqlite3_finalize(q);
    sqlite3_finalize(u);
    if (in_tx) exec(store, "ROLLBACK");
    if (shoal_job_state_terminal(to)) store->active_valid = 0; /* one active job fewer */
    unlock(store);
    return st;
}

/* Run an UPDATE ... WHERE id=?N with text/double binds prepared by the caller's setter. */
static shoal_status update_one(shoal_store *store, sqlite3_stmt *u, const char *what) {
    shoal_status r = step_done(store, u, what);
    if (r == SHOAL_OK && sqlite3_changes(store->db) == 0) r = SHOAL_ERR_NOT_FOUND;
    return r;
}

shoal_status shoal_store_job_set_launch(shoal_store *store, uint64_t id, const char *handle,
                                        const char *alloc) {
    sqlite3_stmt *u = NULL;
    lock(store);
    shoal_status r = prep(store, "UPDATE jobs SET launch_handle=?, alloc=? WHERE id=?", &u);
    if (r == SHOAL_OK) {
        sqlite3_bind_text(u, 1, handle ? handle : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(u, 2, alloc ? alloc : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(u, 3, (sqlite3_int64)id);
        r = update_one(store, u, "set launch handle");
    }
    sqlite3_finalize(u);
    unlock(store);
    return r;
}

shoal_status shoal_store_job_set_progress(shoal_store *store, uint64_t id,
                                          const shoal_job_progress *p) {
    sqlite3_stmt *u = NULL;
    lock(store);
    shoal_status r = prep(store,
                          "UPDATE jobs SET p_step=?, p_total=?, p_loss=?, p_tok_s=?, p_eta_s=?, "
                          "p_at=? WHERE id=?",
                          &u);
    if (r == SHOAL_OK) {
        sqlite3_bind_int64(u, 1, p->step);
        sqlite3_bind_int64(u, 2, p->total_steps);
        sqlite3_bind_double(u, 3, p->loss);
        sqlite3_bind_double(u, 4, p->tokens_per_s);
        sqlite3_bind_double(u, 5, p->eta_s);
        sqlite3_bind_double(u, 6, p->updated_at ? p->updated_at : shoal_wall_s());
        sqlite3_bind_int64(u, 7, (sqlite3_int64)id);
        r = update_one(store, u, "set progress");
    }
    sqlite3_finalize(u);
    unlock(store);
    return r;
}

/* One text column of one job: sql is "UPDATE jobs SET col=? WHERE id=?"; NULL stores "". */
static shoal_status set_job_text(shoal_store *store, const char *sql, uint64_t id,
                                 const char *value, const char *what) {
    sqlite3_stmt *u = NULL;
    lock(store);
    shoal_status r = prep(store, sql, &u);
    if (r == SHOAL_OK) {
        sqlite3_bind_text(u, 1, value ? value : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(u, 2, (sqlite3_int64)id);
        r = update_one(store, u, what);
    }
    sqlite3_finalize(u);
    unlock(store);
    return r;
}

shoal_status shoal_store_job_set_run_token(shoal_store *store, uint64_t id, const char *token) {
    return set_job_text(store, "UPDATE jobs SET run_token=? WHERE id=?", id, token,
                        "set run token");
}

shoal_status shoal_store_job_set_checkpoint(shoal_store *store, uint64_t id, const char *path) {
    return set_job_text(store, "UPDATE jobs SET last_checkpoint=? WHERE id=?", id, path,
                        "set checkpoint");
}

/* Collect the rows of a prepared SELECT JOB_COLS into a growing array. */
static shoal_status collect(shoal_store *store, sqlite3 *db, sqlite3_stmt *s,
                            shoal_job_record **out, int *n) {
    int cap = 0, cnt = 0, rc;
    shoal_job_record *v = NULL;
    shoal_status r = SHOAL_OK;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            shoal_job_record *nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                r = SHOAL_ERR_NOMEM;
                break;
            }
            v = nv;
        }
        r = row_to_record(store, s, &v[cnt]);
        if (r != SHOAL_OK) break;
        cnt++;
    }
    if (r == SHOAL_OK && rc != SQLITE_DONE) {
        SHOAL_LOG_ERROR("%s: list jobs: %s", store->path, sqlite3_errmsg(db));
        r = SHOAL_ERR_IO;
    }
    if (r != SHOAL_OK) {
        shoal_job_records_free(v, cnt);
        return r;
    }
    *out = v;
    *n = cnt;
    return SHOAL_OK;
}

shoal_status shoal_store_job_list(shoal_store *store, unsigned state_mask, const char *name_prefix,
                                  uint64_t after_id, int limit, shoal_job_record **out, int *n) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = NULL;
    reader *rd = reader_get(store);
    /* substr() rather than LIKE: a prefix with '%' or '_' means itself. */
    shoal_status r = prep_rd(store, rd,
                          "SELECT " JOB_COLS " FROM jobs WHERE id > ?1 AND (?2 = 0 OR "
                          "((1 << state) & ?2) != 0) AND (?3 = '' OR substr(name, 1, "
                          "length(?3)) = ?3) ORDER BY id LIMIT ?4",
                          &s);
    if (r == SHOAL_OK) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)after_id);
        sqlite3_bind_int64(s, 2, state_mask);
        sqlite3_bind_text(s, 3, name_prefix ? name_prefix : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(s, 4, limit > 0 ? limit : -1);
        r = collect(store, rd->db, s, out, n);
    }
    sqlite3_finalize(s);
    reader_put(rd);
    return r;
}

shoal_status shoal_store_job_queue(shoal_store *store, unsigned state_mask, int offset,
                                   int limit, shoal_job_record **out, int *n) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = NULL;
    int one_state = 0;
    for (int st = SHOAL_JOB_QUEUED; st <= SHOAL_JOB_CANCELLED; st++)
        if (state_mask == SHOAL_JOB_STATE_BIT(st)) one_state = st;
    reader *rd = reader_get(store);
    /* One state (the scheduler's case, on every pass, so its statement is kept): the
     * jobs_queue index yields the rows in order, so a page costs its own rows, not a scan and
     * sort of every job ever submitted. */
    shoal_status r = one_state ? kept_rd(store, rd,
                                         "SELECT " JOB_COLS " FROM jobs WHERE state = ?4 "
                                         "ORDER BY priority DESC, id LIMIT ?2 OFFSET ?3",
                                         &rd->queue1)
                               : prep_rd(store, rd,
                                         "SELECT " JOB_COLS " FROM jobs WHERE ((1 << state) & "
                                         "?1) != 0 ORDER BY priority DESC, id LIMIT ?2 OFFSET ?3",
                                         &s);
    if (one_state) s = rd->queue1;
    if (r == SHOAL_OK) {
        if (!one_state) sqlite3_bind_int64(s, 1, state_mask);
        sqlite3_bind_int(s, 2, limit > 0 ? limit : -1);
        sqlite3_bind_int(s, 3, offset > 0 ? offset : 0);
        if (one_state) sqlite3_bind_int(s, 4, one_state);
        r = collect(store, rd->db, s, out, n);
    }
    if (one_state)
        kept_done(s);
    else
        sqlite3_finalize(s);
    reader_put(rd);
    return r;
}

shoal_status shoal_store_job_count(shoal_store *store, unsigned state_mask, int64_t *n) {
    *n = 0;
    lock(store);
    shoal_status r = count_locked(store, state_mask, n);
    unlock(store);
    return r;
}

shoal_status shoal_store_job_events(shoal_store *store, uint64_t id, int64_t after_id, int max,
                                    shoal_job_event **out, int *n) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = NULL;
    shoal_job_event *v = NULL;
    int cnt = 0, cap = 0, rc = SQLITE_DONE;
    reader *rd = reader_get(store);
    shoal_status r = prep_rd(store, rd,
                          "SELECT id, from_state, to_state, reason, at FROM job_events WHERE "
                          "job_id = ? AND id > ? ORDER BY id LIMIT ?",
                          &s);
    if (r == SHOAL_OK) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
        sqlite3_bind_int64(s, 2, after_id);
        sqlite3_bind_int(s, 3, max > 0 ? max : -1);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            if (cnt == cap) {
                cap = cap ? cap * 2 : 8;
                shoal_job_event *nv = realloc(v, (size_t)cap * sizeof *v);
                if (!nv) {
                    r = SHOAL_ERR_NOMEM;
                    break;
                }
                v = nv;
            }
            shoal_job_event *e = &v[cnt++];
            e->id = sqlite3_column_int64(s, 0);
            e->from = (shoal_job_state)sqlite3_column_int(s, 1);
            e->to = (shoal_job_state)sqlite3_column_int(s, 2);
            copy_col(e->reason, sizeof e->reason, s, 3);
            e->at = sqlite3_column_double(s, 4);
        }
        if (r == SHOAL_OK && rc != SQLITE_DONE) {
            SHOAL_LOG_ERROR("%s: read job events: %s", store->path, sqlite3_errmsg(rd->db));
            r = SHOAL_ERR_IO;
        }
    }
    sqlite3_finalize(s);
    reader_put(rd);
    if (r != SHOAL_OK) {
        free(v);
        return r;
    }
    *out = v;
    *n = cnt;
    return SHOAL_OK;
}

/* ---- logs ----------------------------------------------------------------------------- */

shoal_status shoal_store_log_append(shoal_store *store, uint64_t id, int rank, int stream,
                                    const char *text, int64_t *seq_out) {
    shoal_status st = SHOAL_OK;
    sqlite3_stmt *q = NULL, *ins = NULL, *del = NULL;
    int in_tx = 0;
    size_t len = strlen(text ? text : "");
    size_t maxb = (size_t)shoal_limit(SHOAL_LIMIT_JOB_LOG_LINE_BYTES);
    if (len > maxb) len = maxb;
    int64_t keep = (int64_t)shoal_limit(SHOAL_LIMIT_JOB_LOG_LINES);
    lock(store);
    SHOAL_CHECK_GOTO(exec(store, "BEGIN IMMEDIATE"));
    in_tx = 1;
    SHOAL_CHECK_GOTO(
        prep(store, "SELECT coalesce(max(seq), 0) + 1 FROM job_logs WHERE job_id = ?", &q));
    sqlite3_bind_int64(q, 1, (sqlite3_int64)id);
    SHOAL_REQUIRE_GOTO(sqlite3_step(q) == SQLITE_ROW, SHOAL_ERR_IO, "%s: next log seq: %s",
                       store->path, sqlite3_errmsg(store->db));
    int64_t seq = sqlite3_column_int64(q, 0);
    SHOAL_CHECK_GOTO(prep(store,
                          "INSERT INTO job_logs(job_id, seq, rank, stream, text, at) "
                          "VALUES(?,?,?,?,?,?)",
                          &ins));
    sqlite3_bind_int64(ins, 1, (sqlite3_int64)id);
    sqlite3_bind_int64(ins, 2, seq);
    sqlite3_bind_int(ins, 3, rank);
    sqlite3_bind_int(ins, 4, stream);
    sqlite3_bind_text(ins, 5, text ? text : "", (int)len, SQLITE_TRANSIENT);
    sqlite3_bind_double(ins, 6, shoal_wall_s());
    SHOAL_CHECK_GOTO(step_done(store, ins, "append log line"));
    if (seq > keep) {
        SHOAL_CHECK_GOTO(prep(store, "DELETE FROM job_logs WHERE job_id = ? AND seq <= ?", &del));
        sqlite3_bind_int64(del, 1, (sqlite3_int64)id);
        sqlite3_bind_int64(del, 2, seq - keep);
        SHOAL_CHECK_GOTO(step_done(store, del, "drop old log lines"));
    }
    SHOAL_CHECK_GOTO(exec(store, "COMMIT"));
    in_tx = 0;
    if (seq_out) *seq_out = seq;
cleanup:
    sqlite3_finalize(q);
    sqlite3_finalize(ins);
    sqlite3_finalize(del);
    if (in_tx) exec(store, "ROLLBACK");
    unlock(store);
    return st;
}

void shoal_log_lines_free(shoal_log_line *lines, int n) {
    if (!lines) return;
    for (int i = 0; i < n; i++) free(lines[i].text);
    free(lines);
}

shoal_status shoal_store_log_read(shoal_store *store, uint64_t id, int64_t after_seq, int max,
                                  shoal_log_line **out, int *n) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = NULL;
    shoal_log_line *v = NULL;
    int cnt = 0, cap = 0, rc = SQLITE_DONE;
    lock(store);
    shoal_status r = prep(store,
                          "SELECT seq, rank, stream, text, at FROM job_logs WHERE job_id = ? "
                          "AND seq > ? ORDER BY seq LIMIT ?",
                          &s);
    if (r == SHOAL_OK) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
        sqlite3_bind_int64(s, 2, after_seq);
        sqlite3_bind_int(s, 3, max > 0 ? max : -1);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            if (cnt == cap) {
                cap = cap ? cap * 2 : 64;
                shoal_log_line *nv = realloc(v, (size_t)cap * sizeof *v);
                if (!nv) {
                    r = SHOAL_ERR_NOMEM;
                    break;
                }
                v = nv;
            }
            shoal_log_line *l = &v[cnt];
            l->seq = sqlite3_column_int64(s, 0);
            l->rank = sqlite3_column_int(s, 1);
            l->stream = sqlite3_column_int(s, 2);
            const unsigned char *t = sqlite3_column_text(s, 3);
            l->text = strdup(t ? (const char *)t : "");
            l->at = sqlite3_column_double(s, 4);
            if (!l->text) {
                r = SHOAL_ERR_NOMEM;
                break;
            }
            cnt++;
        }
        if (r == SHOAL_OK && rc != SQLITE_DONE) r = sql_err(store, "read logs");
    }
    sqlite3_finalize(s);
    unlock(store);
    if (r != SHOAL_OK) {
        shoal_log_lines_free(v, cnt);
        return r;
    }
    *out = v;
    *n = cnt;
    return SHOAL_OK;
}

/* ---- hosts and models ------------------------------------------------------------------ */

shoal_status shoal_store_host_put(shoal_store *store, const shoal_host *h) {
    SHOAL_REQUIRE(h->name[0] && h->cpu_slots >= 0 && h->gpus >= 0 &&
                      h->cpu_slots <= SHOAL_MAX_JOB_RANKS && h->gpus <= 1024,
                  SHOAL_ERR_INVALID_ARG, "host \"%s\": bad slots (cpu %d, gpus %d)", h->name,
                  h->cpu_slots, h->gpus);
    sqlite3_stmt *u = NULL;
    lock(store);
    shoal_status r = prep(store,
                          "INSERT INTO hosts(name, addr, cpu_slots, gpus) VALUES(?,?,?,?) "
                          "ON CONFLICT(name) DO UPDATE SET addr=excluded.addr, "
                          "cpu_slots=excluded.cpu_slots, gpus=excluded.gpus",
                          &u);
    if (r == SHOAL_OK) {
        sqlite3_bind_text(u, 1, h->name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(u, 2, h->addr, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(u, 3, h->cpu_slots);
        sqlite3_bind_int(u, 4, h->gpus);
        r = step_done(store, u, "put host");
    }
    sqlite3_finalize(u);
    unlock(store);
    return r;
}

shoal_status shoal_store_host_list(shoal_store *store, shoal_host **out, int *n) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = NULL;
    shoal_host *v = NULL;
    int cnt = 0, cap = 0, rc = SQLITE_DONE;
    /* a read connection: the scheduler lists hosts on every pass, and must not wait for the
     * writer's lock while a group commit syncs */
    reader *rd = reader_get(store);
    shoal_status r = kept_rd(
        store, rd, "SELECT name, addr, cpu_slots, gpus FROM hosts ORDER BY name", &rd->hosts);
    s = rd->hosts;
    if (r == SHOAL_OK) {
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            if (cnt == cap) {
                cap = cap ? cap * 2 : 8;
                shoal_host *nv = realloc(v, (size_t)cap * sizeof *v);
                if (!nv) {
                    r = SHOAL_ERR_NOMEM;
                    break;
                }
                v = nv;
            }
            copy_col(v[cnt].name, sizeof v[cnt].name, s, 0);
            copy_col(v[cnt].addr, sizeof v[cnt].addr, s, 1);
            v[cnt].cpu_slots = sqlite3_column_int(s, 2);
            v[cnt].gpus = sqlite3_column_int(s, 3);
            cnt++;
        }
        if (r == SHOAL_OK && rc != SQLITE_DONE) {
            SHOAL_LOG_ERROR("%s: list hosts: %s", store->path, sqlite3_errmsg(rd->db));
            r = SHOAL_ERR_IO;
        }
    }
    kept_done(s);
    reader_put(rd);
    if (r != SHOAL_OK) {
        free(v);
        return r;
    }
    *out = v;
    *n = cnt;
    return SHOAL_OK;
}

shoal_status shoal_store_model_register(shoal_store *store, uint64_t job_id, const char *path,
                                        const char *sha256_hex, int64_t *model_id) {
    SHOAL_REQUIRE(path && path[0] == '/' && sha256_hex && strlen(sha256_hex) == 64,
                  SHOAL_ERR_INVALID_ARG,
                  "model of job %llu: need an absolute path and a 64-hex-digit sha256",
                  (unsigned long long)job_id);
    sqlite3_stmt *u = NULL;
    lock(store);
    shoal_status r = prep(store,
                          "INSERT INTO models(job_id, path, sha256, created_at) VALUES(?,?,?,?)",
                          &u);
    if (r == SHOAL_OK) {
        sqlite3_bind_int64(u, 1, (sqlite3_int64)job_id);
        sqlite3_bind_text(u, 2, path, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(u, 3, sha256_hex, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(u, 4, shoal_wall_s());
        r = step_done(store, u, "register model");
        if (r == SHOAL_OK && model_id) *model_id = sqlite3_last_insert_rowid(store->db);
    }
    sqlite3_finalize(u);
    unlock(store);
    return r;
}

shoal_status shoal_store_model_for_job(shoal_store *store, uint64_t job_id, char *path,
                                       size_t path_cap, char sha256_hex[65]) {
    sqlite3_stmt *s = NULL;
    lock(store);
    shoal_status r = prep(store,
                          "SELECT path, sha256 FROM models WHERE job_id = ? ORDER BY id DESC "
                          "LIMIT 1",
                          &s);
    if (r == SHOAL_OK) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)job_id);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            copy_col(path, path_cap, s, 0);
            copy_col(sha256_hex, 65, s, 1);
        } else {
            r = rc == SQLITE_DONE ? SHOAL_ERR_NOT_FOUND : sql_err(store, "model for job");
        }
    }
    sqlite3_finalize(s);
    unlock(store);
    return r;
}
