/* launcher.h: how the coordinator starts, watches and stops the ranks of a job, behind one
 * table of function pointers: local (`mpirun` on this host), hostfile (`mpirun --hostfile`),
 * slurm (`sbatch` of a generated script that runs `srun --mpi=pmix`).
 *
 * What: a launcher runs attempts. start() launches one attempt of a job and returns at once
 * with a handle ("pid:1234", "slurm:42"); poll() waits up to a timeout for output and exits
 * and delivers them through the callbacks: every captured stdout/stderr line, tagged with its
 * rank where the engine tells it (mpirun --tag-output, srun --label), and one exit per attempt.
 * cancel() stops every rank of an attempt.
 * Why shaped so: the coordinator's state has one owner thread (STYLE.md), so a launcher has
 * no threads of its own: the owner calls poll() in its loop and the callbacks run on that
 * thread. Local children are supervised with pidfd_open (poll()able) and fall back to
 * waitpid(WNOHANG) ticks where pidfds are missing; each attempt runs in its own session so
 * cancel can kill the process group and then any straggler left in the session. Which
 * launcher runs is decided once when the coordinator starts; there is no silent fallback.
 * Tested by tests/coordinator/test_launcher.c (label mpi: real 2-rank mpirun, logs captured,
 * cancel leaves no process, failing command reports its exit code; hostfile too) and
 * tests/coordinator/test_slurm.sh + test_launcher_slurm.c (label slurm, against a real
 * single-node Slurm started by tests/harness/slurm.sh).
 */
#ifndef SHOAL_COORDINATOR_LAUNCHER_H
#define SHOAL_COORDINATOR_LAUNCHER_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "proto/jobspec.h"

/* One attempt of a job to start. Strings are copied by start(); nothing is kept. */
typedef struct {
    uint64_t job_id;
    int attempt;
    const char *name;          /* job name, for Slurm's job name; may be NULL */
    int ranks;                 /* world size */
    int gpus_per_rank;
    char *const *argv;         /* command every rank runs; argc entries */
    int argc;
    char *const *env;          /* extra "KEY=VALUE" for every rank */
    int nenv;
    const char *workdir;       /* NULL: the launcher's scratch dir */
    /* Hosts and ranks per host ("a:2,b:2") for the hostfile launcher; ignored by local and
     * slurm (Slurm does its own placement). */
    const char *alloc;
    int64_t time_limit_s;      /* 0: none (slurm only: --time) */
} shoal_launch_req;

typedef struct {
    int exit_code;       /* 0 success; the failing rank's code; 128+N when killed by signal N */
    int cancelled;       /* 1 if it ended because cancel() was called */
    char reason[256];    /* human explanation: "exit code 3", "slurm state TIMEOUT", ... */
} shoal_launch_result;

typedef struct {
    void *ctx;
    /* One captured line without its newline; rank -1 when unknown (the engine's own output).
     * stream: 1 stdout, 2 stderr. */
    void (*on_log)(void *ctx, uint64_t job_id, int attempt, int rank, int stream,
                   const char *line);
    /* Optional (may be NULL): the attempt's ranks are running (mpirun: from the first poll
     * after start; Slurm: once the job left PENDING). At most once per attempt, always before
     * on_exit. */
    void (*on_running)(void *ctx, uint64_t job_id, int attempt);
    /* Called exactly once per started attempt, after its last on_log. */
    void (*on_exit)(void *ctx, uint64_t job_id, int attempt, const shoal_launch_result *res);
} shoal_launcher_callbacks;

/* Longest scratch directory path: leaves room for per-attempt file names under PATH_MAX. */
#define SHOAL_LAUNCHER_SCRATCH_MAX 1024

typedef struct {
    const char *scratch_dir;   /* per-attempt files (hostfiles, sbatch scripts, outputs) */
    const char *mpirun;        /* NULL: "mpirun" from PATH */
    const char *slurm_conf;    /* NULL: Slurm's default; else SLURM_CONF for sbatch & co */
    const char *slurm_partition; /* NULL: the default partition */
    double poll_interval_s;    /* slurm: how often to ask scontrol; 0: 1 s */
    double kill_grace_s;       /* cancel: SIGTERM, then SIGKILL after this; 0: 5 s */
    /* A file descriptor poll() also waits on (>= 0), so the owner thread can be woken from
     * another thread; poll() returns when it is readable and never reads it. -1: none.
     * (0 is taken as "none" too, so a zeroed config needs no special care.) */
    int wake_fd;
} shoal_launcher_config;

typedef struct shoal_launcher_ops {
    const char *name;
    shoal_status (*create)(const shoal_launcher_config *cfg, const shoal_launcher_callbacks *cb,
                           void **impl);
    void (*destroy)(void *impl); /* kills what still runs (no callbacks) */
    shoal_status (*start)(void *impl, const shoal_launch_req *req, char *handle,
                          size_t handle_cap);
    shoal_status (*cancel)(void *impl, uint64_t job_id);
    shoal_status (*poll)(void *impl, int timeout_ms);
    int (*active)(void *impl); /* attempts started and not yet reported by on_exit */
} shoal_launcher_ops;

extern const shoal_launcher_ops shoal_launcher_local_ops;
extern const shoal_launcher_ops shoal_launcher_hostfile_ops;
extern const shoal_launcher_ops shoal_launcher_slurm_ops;

/* A launcher instance: its ops and their state. */
typedef struct {
    const shoal_launcher_ops *ops;
    void *impl;
} shoal_launcher;

/* Create the launcher named kind (LOCAL, HOSTFILE, SLURM). INVALID_ARG for DEFAULT/unknown;
 * IO when the scratch dir cannot be made. The callbacks are called from poll() only. */
shoal_status shoal_launcher_init(shoal_launcher *l, shoal_launcher_kind kind,
                                 const shoal_launcher_config *cfg,
                                 const shoal_launcher_callbacks *cb);
void shoal_launcher_free(shoal_launcher *l);
/* Start one attempt; handle gets the launcher's id of it. Does not block on the job. */
shoal_status shoal_launcher_start(shoal_launcher *l, const shoal_launch_req *req, char *handle,
                                  size_t handle_cap);
/* Ask every rank of the job's running attempt to stop (SIGTERM, then SIGKILL after the grace
 * time; scancel under Slurm). NOT_FOUND when the job has no running attempt. on_exit follows
 * from poll() with cancelled = 1. */
shoal_status shoal_launcher_cancel(shoal_launcher *l, uint64_t job_id);
/* Wait up to timeout_ms (or until the wake fd is readable) for output/exits and deliver them.
 * timeout_ms < 0: no limit. */
shoal_status shoal_launcher_poll(shoal_launcher *l, int timeout_ms);
int shoal_launcher_active(shoal_launcher *l);

/* ---- helpers shared by the launcher implementations (launcher.c) ---- */

/* Splits a byte stream into lines of at most SHOAL_LIMIT_JOB_LOG_LINE_BYTES. */
typedef struct {
    char *buf;
    size_t len, cap;
} shoal_line_buf;

/* Append data; calls emit(ctx, line) for every complete line (longer ones are split).
 * flush=1 also emits a trailing partial line. NOMEM on allocation failure. */
shoal_status shoal_line_buf_feed(shoal_line_buf *lb, const char *data, size_t n, int flush,
                                 void (*emit)(void *ctx, const char *line), void *ctx);
void shoal_line_buf_free(shoal_line_buf *lb);

/* Run argv (no shell) with extra env entries, capture its stdout (up to cap-1 bytes, NUL
 * terminated) and wait for it, at most timeout_s. *exit_code gets its status (128+N for a
 * signal). TIMEOUT (the child is killed) or IO on failure to run. */
shoal_status shoal_run_capture(char *const *argv, char *const *env, int nenv, double timeout_s,
                               char *out, size_t cap, int *exit_code);

/* Send sig to every process whose session id is sid (the attempt's session), including ones
 * that left the process group. Returns how many were signalled. */
int shoal_kill_session(int sid, int sig);
/* SIGKILL session sid until no live process is left or timeout_s passes (blocks). Returns the
 * number of signals sent, or minus the number of survivors. */
int shoal_kill_session_wait(int sid, double timeout_s);
/* Number of live (non-zombie) processes in session sid. */
int shoal_count_session(int sid);

/* Quote s for a POSIX shell (single quotes) into out; LIMIT if it does not fit. */
shoal_status shoal_shell_quote(const char *s, char *out, size_t cap);

#endif
