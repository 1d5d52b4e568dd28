/* scheduler.h: turns queued jobs into running attempts: gang scheduling onto free slots,
 * priority then FIFO, retries with exponential backoff that resume from the last complete
 * checkpoint, cancellation, and recovery of jobs left running by a previous coordinator.
 *
 * What: the scheduler owns the launcher and the in-memory slot accounting; the store holds
 * everything durable. One thread, the owner, calls shoal_scheduler_step() in a loop; the
 * launcher's callbacks (logs, running, exits) and the backoff timers all run there. Other
 * threads (RPC handlers) talk to it only through the thread-safe calls marked below, which
 * queue a request and wake the owner through a pipe the launcher's poll() also watches.
 * Why shaped so: STYLE.md's single owner of state (Redis ae + serverCron): no lock protects the
 * slot table because only the owner touches it, and the store's legal-transition checks make
 * every state change atomic with its event row.
 * Slots: each host of the store's hosts table has cpu_slots and gpus; a rank takes one CPU
 * slot plus gpus_per_rank GPUs; a job starts only when all its ranks fit at once (gang), packed
 * onto as few hosts as possible. Jobs start in order of priority, then submission; the first
 * job that does not fit blocks the ones behind it (no starvation of big jobs), except jobs
 * waiting out a retry backoff, which are skipped. A job that can never fit fails at once.
 * With the Slurm launcher slots are Slurm's business: every queued job is submitted.
 * Checkpoints: a rank reports one (RunService.ReportCheckpoint), or the scheduler finds the
 * newest "<output_dir>/checkpoints/<name>/DONE" at relaunch; the relaunch gets its path in
 * SHOAL_RESUME_FROM (and `--resume PATH` for `shoal train`).
 * Tested by tests/coordinator/test_scheduler.c (label mpi): real mpirun attempts through the
 * whole life cycle, gang and priority order, retry with resume, cancel, restart recovery.
 */
#ifndef SHOAL_COORDINATOR_SCHEDULER_H
#define SHOAL_COORDINATOR_SCHEDULER_H

#include <stdint.h>

#include "common/status.h"
#include "coordinator/launcher.h"
#include "coordinator/store.h"

typedef struct {
    shoal_store *store;             /* not owned; must outlive the scheduler */
    shoal_launcher_kind launcher;   /* LOCAL, HOSTFILE or SLURM: decided once */
    shoal_launcher_config launch;   /* scratch_dir required; wake_fd is set by the scheduler */
    const char *coordinator_addr;   /* handed to ranks as SHOAL_COORDINATOR; may be NULL */
    const char *shoal_bin;          /* the `shoal` binary for finetune jobs; NULL: "shoal" */
    double retry_base_s;            /* first retry delay; 0: 5 s; doubles per attempt */
    double retry_max_s;             /* cap of the delay; 0: 300 s */
} shoal_scheduler_config;

typedef struct shoal_scheduler shoal_scheduler;

/* Create the scheduler and its launcher. Jobs a previous coordinator left STARTING/RUNNING
 * are requeued (their leftover local processes killed) so they relaunch from their last
 * checkpoint; that does not count against max_retries. Call from the owner thread. */
shoal_status shoal_scheduler_init(const shoal_scheduler_config *cfg, shoal_scheduler **out);
/* Kill what still runs and free. Owner thread, after the last step. */
void shoal_scheduler_free(shoal_scheduler *s);

/* Owner thread: handle queued requests, start what fits, wait up to max_wait_ms for output,
 * exits, timers or a wake-up, and handle them. */
shoal_status shoal_scheduler_step(shoal_scheduler *s, int max_wait_ms);
/* Attempts currently running (owner thread). */
int shoal_scheduler_running(shoal_scheduler *s);

/* ---- thread-safe calls ---- */

/* A job was inserted into the store: look at the queue soon. */
void shoal_scheduler_wake(shoal_scheduler *s);
/* Cancel a job and wait (up to timeout_ms) until the owner has handled the request.
 * *state gets the job's state after it (CANCELLED at once for a queued job; a running one
 * stays RUNNING until its ranks are gone, then CANCELLED). NOT_FOUND for no job, TIMEOUT when
 * the owner did not answer in time. Cancelling a finished job is OK and changes nothing. */
shoal_status shoal_scheduler_cancel(shoal_scheduler *s, uint64_t id, const char *reason,
                                    int timeout_ms, shoal_job_state *state);
/* Block until something changed (a state change, progress, a log line) since *gen, or
 * timeout_ms passes; *gen is updated. For WatchJob/GetLogs streams. Returns 1 if changed. */
int shoal_scheduler_wait_change(shoal_scheduler *s, uint64_t *gen, int timeout_ms);
/* Progress and checkpoints reported by a rank (RunService). They only touch the store. */
shoal_status shoal_scheduler_report_progress(shoal_scheduler *s, uint64_t id,
                                             const shoal_job_progress *p);
shoal_status shoal_scheduler_report_checkpoint(shoal_scheduler *s, uint64_t id,
                                               const char *path);

/* Newest complete checkpoint under dir/checkpoints (a subdirectory holding DONE, highest
 * trailing number wins) into out; NOT_FOUND when there is none. */
shoal_status shoal_find_checkpoint(const char *output_dir, char *out, size_t cap);

#endif
