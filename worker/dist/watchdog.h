/* watchdog.h: per-rank liveness ring and collective timer for worker/dist (internal header).
 *
 * Why: a rank blocked in a collective whose peer died must not hang. MPI's own failure handling
 * is launcher-dependent (Open MPI's mpirun kills the job, --enable-recovery or other launchers
 * leave survivors blocked forever), so each rank keeps one TCP connection to the next rank and
 * accepts one from the previous rank. A process that dies for any reason has its sockets closed
 * by the kernel; its neighbours read EOF without the goodbye message and know which rank is gone
 * at once, and they forward "rank k lost" around the ring so every rank can name it. A thread
 * polls those sockets and the collective timer (enter/leave around each blocking call).
 * Addresses are exchanged once through the backend's allgather; each connection is checked with
 * a per-job nonce in both directions so that a wrong address is never mistaken for a peer.
 * Tested by tests/dist/kill_rank.sh (kill -9 and SIGSTOP of a rank under mpirun) and by every
 * MPI test, which starts and stops the ring.
 */
#ifndef SHOAL_WORKER_DIST_WATCHDOG_H
#define SHOAL_WORKER_DIST_WATCHDOG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef struct shoal_watchdog shoal_watchdog;

typedef struct {
    int rank, world;
    const _Atomic uint64_t *timeout_ms; /* read on every tick: callers may change it */
    void (*on_fatal)(void *arg, int lost_rank, const char *why);
    void *on_fatal_arg;
    /* Collective exchange of `bytes` from every rank into all[world * bytes]. */
    shoal_status (*allgather)(void *ctx, const void *mine, void *all, size_t bytes);
    void *ctx;
} shoal_watchdog_config;

/* Open the ring (blocks until both neighbours are connected or *timeout_ms passes) and start
 * the thread. World size 1 gets a watchdog with a timer and no ring. */
shoal_status shoal_watchdog_start(shoal_watchdog **out, const shoal_watchdog_config *cfg);
/* Tell the neighbours this rank is leaving on purpose (they stop watching it) while the timer
 * keeps running, e.g. around MPI_Finalize. */
void shoal_watchdog_goodbye(shoal_watchdog *wd);
/* Say goodbye to the neighbours (if not yet), stop the thread, close the sockets. NULL is a
 * no-op. */
void shoal_watchdog_stop(shoal_watchdog *wd);
/* Mark the start and end of a blocking call named op (a string literal). Without
 * SHOAL_WD_CANCELLABLE (an MPI call): if a peer is lost or the timer expires while inside, the
 * watchdog logs, calls on_fatal and _exits with SHOAL_COMM_EXIT_LOST, since nothing can
 * interrupt the call. With it (an NCCL wait loop) it only records; the waiting thread polls
 * shoal_watchdog_lost() and its own timer and aborts the collective itself.
 * SHOAL_WD_LONG allows 10 times the timeout (MPI_Finalize waits for every rank to finish,
 * including one still writing its checkpoint). */
#define SHOAL_WD_CANCELLABLE 1
#define SHOAL_WD_LONG 2
void shoal_watchdog_enter(shoal_watchdog *wd, const char *op, int flags);
void shoal_watchdog_leave(shoal_watchdog *wd);
/* The first rank known to be lost, or -1. */
int shoal_watchdog_lost(const shoal_watchdog *wd);
/* Seconds the current blocking call has run (0 when none). */
double shoal_watchdog_busy_s(const shoal_watchdog *wd);
/* Host name and pid rank r reported at start ("?" / 0 when unknown). */
const char *shoal_watchdog_host(const shoal_watchdog *wd, int r);
int shoal_watchdog_pid(const shoal_watchdog *wd, int r);

/* ---- the wire, as pure functions (tests/dist/test_comm_unit.c, tests/fuzz/fuzz_watchdog_wire.c) */
#define SHOAL_WD_MSG_BYTES 5
#define SHOAL_WD_HELLO_BYTES 24
/* A 5-byte ring message: 'B' (goodbye) or 'L' + big-endian rank in [0, world). Returns 0 and
 * fills type/rank, or -1 for anything else. */
int shoal_watchdog_decode_msg(const unsigned char m[SHOAL_WD_MSG_BYTES], int world, char *type,
                              int *rank);
/* 1 when a hello carries the magic, want_rank and the job's nonce. */
int shoal_watchdog_hello_ok(const unsigned char h[SHOAL_WD_HELLO_BYTES], int want_rank,
                            uint64_t nonce);
/* Bytes of one rank's record in the start-up allgather. */
size_t shoal_watchdog_record_size(void);
/* Check world records as received (magic, rank field == index, address count, host name
 * terminated, which it forces); PROTOCOL naming the first bad rank. */
shoal_status shoal_watchdog_check_records(void *recs, int world);

#endif
