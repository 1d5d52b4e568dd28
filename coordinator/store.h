/* store.h: the coordinator's durable state in SQLite: jobs, their state changes, their logs,
 * hosts with slots, registered models.
 *
 * What: one shoal_store per database file. Jobs move QUEUED -> STARTING -> RUNNING ->
 * SUCCEEDED | FAILED | CANCELLED (plus STARTING/RUNNING -> QUEUED for a retry); every change
 * is checked against that graph and recorded in job_events with its reason and time, in the
 * same transaction as the change itself.
 * Why shaped so: SQLite in WAL mode with synchronous=NORMAL (research/infra.md §6) for the
 * high-rate writes (logs, progress), but a job insert commits with synchronous=FULL: a job is
 * acknowledged (its id returned) only after its INSERT is durable, so neither a SIGKILL nor a
 * power cut loses an acknowledged job. Concurrent inserts are group-committed: submitters
 * queue, one of them (the leader) inserts every queued job in one transaction, each row in its
 * own savepoint, and COMMITs with one fsync; each submitter returns only after the commit that
 * holds its row, so many submitters share an fsync without any id being handed out early.
 * STRICT tables, a schema_version table and an ordered
 * list of migrations; a database written by a newer shoal is refused rather than guessed at.
 * Writes are serialised by one mutex around one connection; reads of jobs (get, list, queue,
 * events) go to a small pool of read connections, which WAL lets run beside the writer, so
 * GetJob never waits for a commit's fsync. The submit path's statements are prepared once, and
 * the active-jobs count behind the pending-jobs limit is kept between group commits while it
 * is provably exact (PRAGMA data_version; terminal transitions), not recounted per commit. The coordinator thread owns the store, RPC threads
 * may call it too, and SQLite's busy timeout covers other processes (the CLI opening it
 * read-only, say). Logs are bounded per job (SHOAL_LIMIT_JOB_LOG_LINES):
 * the oldest lines are dropped first.
 * Tested by tests/coordinator/test_store.c: transitions, illegal ones refused, 8 threads x 125
 * submits (grouped into fewer commits), SIGKILL of a writer mid-stream and of 8 concurrent
 * group-committing submitters right after acknowledgements, then reopen; one idempotency key
 * and the pending-jobs limit under concurrent submitters and across two connections, log
 * bounds, migrations, hosts, models.
 */
#ifndef SHOAL_COORDINATOR_STORE_H
#define SHOAL_COORDINATOR_STORE_H

#include <stdint.h>

#include "common/limits.h"
#include "common/status.h"
#include "proto/jobspec.h"

/* Same numbers as shoal.v1.JobState. */
typedef enum {
    SHOAL_JOB_QUEUED = 1,
    SHOAL_JOB_STARTING = 2,
    SHOAL_JOB_RUNNING = 3,
    SHOAL_JOB_SUCCEEDED = 4,
    SHOAL_JOB_FAILED = 5,
    SHOAL_JOB_CANCELLED = 6,
} shoal_job_state;

#define SHOAL_JOB_STATE_BIT(s) (1u << (s))
#define SHOAL_JOB_STATES_ACTIVE                                                                    \
    (SHOAL_JOB_STATE_BIT(SHOAL_JOB_QUEUED) | SHOAL_JOB_STATE_BIT(SHOAL_JOB_STARTING) |             \
     SHOAL_JOB_STATE_BIT(SHOAL_JOB_RUNNING))

/* "queued", "starting", ...; "?" when out of range. */
const char *shoal_job_state_str(shoal_job_state s);
/* 1 for SUCCEEDED, FAILED, CANCELLED. */
int shoal_job_state_terminal(shoal_job_state s);
/* 1 if from -> to is a legal transition. */
int shoal_job_state_can_move(shoal_job_state from, shoal_job_state to);

#define SHOAL_STORE_REASON_MAX 256
#define SHOAL_STORE_HANDLE_MAX 128

typedef struct {
    int64_t step, total_steps;
    double loss, tokens_per_s, eta_s, updated_at;
} shoal_job_progress;

/* A job as stored. Owns spec's strings: free with shoal_job_record_free. */
typedef struct {
    uint64_t id;
    shoal_job_spec spec;
    shoal_job_state state;
    char reason[SHOAL_STORE_REASON_MAX];
    char submitter[SHOAL_STORE_REASON_MAX];
    double submitted_at, started_at, finished_at; /* Unix seconds; 0 = not yet */
    int exit_code;
    int attempt;                 /* 0 on the first launch */
    double not_before;           /* retry backoff: do not launch before this wall time */
    char launch_handle[SHOAL_STORE_HANDLE_MAX]; /* launcher's id of the running attempt */
    char alloc[1024];            /* slots held, as "host:ranks,host:ranks" */
    char last_checkpoint[SHOAL_MAX_PATH];
    shoal_job_progress progress;
    char run_token[72];          /* secret of the current attempt ("" between attempts) */
} shoal_job_record;

void shoal_job_record_free(shoal_job_record *r);
void shoal_job_records_free(shoal_job_record *r, int n); /* frees the array too */

typedef struct {
    int64_t id; /* increasing */
    shoal_job_state from, to; /* from is 0 for the submission */
    char reason[SHOAL_STORE_REASON_MAX];
    double at;
} shoal_job_event;

typedef struct {
    int64_t seq;   /* increasing per job, from 1 */
    int rank;      /* -1: launcher */
    int stream;    /* 1 stdout, 2 stderr */
    char *text;    /* owned */
    double at;
} shoal_log_line;

void shoal_log_lines_free(shoal_log_line *lines, int n);

typedef struct {
    char name[128];
    char addr[256];
    int cpu_slots;
    int gpus;
} shoal_host;

typedef struct shoal_store shoal_store;

/* Open (creating if needed) the database at path and bring its schema up to date. Blocks on
 * file I/O. IO when it cannot be opened, FORMAT when it is not a shoal store or is from a
 * newer shoal. */
shoal_status shoal_store_open(const char *path, shoal_store **out);
void shoal_store_close(shoal_store *st); /* NULL is a no-op */
/* Schema version of the open database (== shoal_store_schema_latest() after open). */
int shoal_store_schema_version(shoal_store *st);
int shoal_store_schema_latest(void);

/* Insert a validated spec as a QUEUED job. *id is set only after the commit is durable.
 * idempotency_key (may be NULL/""): a second insert with the same key returns the first id and
 * inserts nothing. LIMIT when SHOAL_LIMIT_PENDING_JOBS active jobs exist. */
shoal_status shoal_store_job_insert(shoal_store *st, const shoal_job_spec *spec,
                                    const char *submitter, const char *idempotency_key,
                                    uint64_t *id);
/* Group commits done so far and the jobs they inserted (inserts/commits = mean batch). */
void shoal_store_insert_stats(shoal_store *st, uint64_t *commits, uint64_t *inserts);
/* NOT_FOUND when no such job. */
shoal_status shoal_store_job_get(shoal_store *st, uint64_t id, shoal_job_record *out);

/* Move a job to state `to`, atomically with its event row. INVALID_ARG (logged) when the
 * transition is illegal from the job's current state; NOT_FOUND for no job. `from_out` (may be
 * NULL) gets the state before. RUNNING sets started_at; a terminal state sets finished_at and
 * exit_code; QUEUED from STARTING/RUNNING is a retry: attempt += 1, not_before = retry_at,
 * launch_handle and alloc cleared. */
shoal_status shoal_store_job_transition(shoal_store *st, uint64_t id, shoal_job_state to,
                                        const char *reason, int exit_code, double retry_at,
                                        shoal_job_state *from_out);
/* Record the launcher's handle and the slots of the current attempt. */
shoal_status shoal_store_job_set_launch(shoal_store *st, uint64_t id, const char *handle,
                                        const char *alloc);
/* The current attempt's run token (ranks present it to RunService). */
shoal_status shoal_store_job_set_run_token(shoal_store *st, uint64_t id, const char *token);
shoal_status shoal_store_job_set_progress(shoal_store *st, uint64_t id,
                                          const shoal_job_progress *p);
shoal_status shoal_store_job_set_checkpoint(shoal_store *st, uint64_t id, const char *path);

/* Jobs whose state bit is in state_mask (0: all) and whose name starts with name_prefix
 * (NULL/"": any), with id > after_id, ascending, at most limit. *out is an array of *n
 * records (free with shoal_job_records_free). */
shoal_status shoal_store_job_list(shoal_store *st, unsigned state_mask, const char *name_prefix,
                                  uint64_t after_id, int limit, shoal_job_record **out, int *n);
/* Jobs in scheduling order (priority descending, then submission ascending), skipping the
 * first `offset`, at most limit. */
shoal_status shoal_store_job_queue(shoal_store *st, unsigned state_mask, int offset, int limit,
                                   shoal_job_record **out, int *n);
/* Number of jobs in the states of state_mask. */
shoal_status shoal_store_job_count(shoal_store *st, unsigned state_mask, int64_t *n);

/* Events of a job with id > after_id, ascending, at most max; *out malloc'd (free()). */
shoal_status shoal_store_job_events(shoal_store *st, uint64_t id, int64_t after_id, int max,
                                    shoal_job_event **out, int *n);

/* Append one log line (truncated to SHOAL_LIMIT_JOB_LOG_LINE_BYTES); drops the job's oldest
 * lines past SHOAL_LIMIT_JOB_LOG_LINES. *seq_out (may be NULL) gets the line's seq. */
shoal_status shoal_store_log_append(shoal_store *st, uint64_t id, int rank, int stream,
                                    const char *text, int64_t *seq_out);
/* Lines with seq > after_seq, ascending, at most max. */
shoal_status shoal_store_log_read(shoal_store *st, uint64_t id, int64_t after_seq, int max,
                                  shoal_log_line **out, int *n);

/* Add or replace a host and its slots. */
shoal_status shoal_store_host_put(shoal_store *st, const shoal_host *h);
shoal_status shoal_store_host_list(shoal_store *st, shoal_host **out, int *n); /* free() */

/* Register a finished model (path and sha256 hex of its weights). */
shoal_status shoal_store_model_register(shoal_store *st, uint64_t job_id, const char *path,
                                        const char *sha256_hex, int64_t *model_id);
/* The model registered for a job, if any (NOT_FOUND otherwise). */
shoal_status shoal_store_model_for_job(shoal_store *st, uint64_t job_id, char *path,
                                       size_t path_cap, char sha256_hex[65]);

#endif
