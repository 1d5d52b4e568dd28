/* comm.h: the communicator every data-parallel rank talks through: all-reduce (sum, avg),
 * reduce-scatter, all-gather, broadcast and barrier, plus a bucketed all-reduce for one flat
 * gradient buffer that can overlap with backward.
 *
 * Why shaped so: one interface, several backends behind a small table of function pointers
 * (STYLE.md, like ggml's backends): SINGLE (one process, no MPI: `shoal train` runs without
 * mpirun), MPI (host buffers, Open MPI) and NCCL (device buffers, the NCCL unique id broadcast
 * over MPI, its own CUDA stream, async-error polling and ncclCommAbort). The backend is chosen
 * once in shoal_comm_init() and never falls back silently: asking for one that is not built or
 * cannot start is an error. Semantics follow MPI/NCCL: every rank calls the same collectives in
 * the same order with the same counts; results are exact for SUM of two ranks and otherwise
 * whatever the backend's reduction order gives.
 *
 * A hung collective is a bug: with MPI or NCCL a watchdog thread keeps a TCP liveness ring
 * between ranks. When a peer dies (kill -9, node loss) its neighbours see the connection close
 * at once and spread "rank k lost" around the ring; when a collective blocks longer than the
 * timeout (SHOAL_LIMIT_COMM_TIMEOUT_MS) it is declared hung. MPI collectives cannot be
 * cancelled, so an MPI rank blocked in one then logs the error (naming the lost rank) and exits
 * the process with SHOAL_COMM_EXIT_LOST; a rank not blocked gets SHOAL_ERR_COMM from its next
 * call. NCCL collectives are aborted (ncclCommAbort) and return SHOAL_ERR_COMM/TIMEOUT.
 * After any failed collective the communicator is broken: later calls fail fast.
 *
 * Tested by tests/dist/test_comm_unit.c (argument checks, shard and bucket math, device choice,
 * the single backend), tests/dist/test_comm_mpi.c under `mpirun -np 2` (every collective against
 * locally computed values; label mpi), tests/dist/kill_rank.sh (kill -9 and SIGSTOP of a rank),
 * tests/dist/two_hosts.sh (two network namespaces over veth) and tests/dist/test_comm_nccl.c
 * (label gpu; skipped without a device).
 */
#ifndef SHOAL_WORKER_DIST_COMM_H
#define SHOAL_WORKER_DIST_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "common/dtype.h"
#include "common/status.h"

/* Exit status of a process the watchdog ends because a peer was lost or a collective hung
 * (EX_TEMPFAIL: relaunching resumes from the last complete checkpoint). */
#define SHOAL_COMM_EXIT_LOST 75

typedef enum {
    SHOAL_COMM_AUTO = 0, /* MPI when started by a launcher (mpirun, srun), else SINGLE */
    SHOAL_COMM_SINGLE,   /* world size 1, host buffers, no MPI */
    SHOAL_COMM_MPI,      /* host buffers over MPI */
    SHOAL_COMM_NCCL,     /* CUDA device buffers over NCCL (bootstrap over MPI when world > 1) */
    SHOAL_COMM_BACKEND_COUNT
} shoal_comm_backend;

typedef enum {
    SHOAL_COMM_SUM = 0,
    SHOAL_COMM_AVG, /* sum divided by the world size; floating dtypes only */
    SHOAL_COMM_OP_COUNT
} shoal_comm_op;

typedef struct shoal_comm shoal_comm;

typedef struct {
    shoal_comm_backend backend;
    /* Longest wait in one collective, ms; 0 = shoal_limit(SHOAL_LIMIT_COMM_TIMEOUT_MS). Values
     * above that limit's ceiling are refused. */
    uint64_t timeout_ms;
    /* Called on the watchdog thread just before it ends the process (MPI backend, peer lost or
     * collective hung), e.g. to tell the coordinator. lost_rank is -1 for a plain timeout. Must
     * not call the communicator. May be NULL. */
    void (*on_fatal)(void *arg, int lost_rank, const char *why);
    void *on_fatal_arg;
} shoal_comm_options;

/* Start a communicator. opts NULL means defaults (AUTO, limit timeout). With MPI this calls
 * MPI_Init_thread when MPI is not initialised yet (and shoal_comm_free then finalises it);
 * MPI can be initialised only once per process. With NCCL it picks the GPU
 * shoal_comm_pick_device() names for this rank's local rank (CUDA_VISIBLE_DEVICES is honoured
 * by CUDA itself). Blocks until every rank has joined or the timeout passes. Errors:
 * UNSUPPORTED (backend not built), CUDA (no device), COMM, TIMEOUT, INVALID_ARG. */
shoal_status shoal_comm_init(shoal_comm **out, const shoal_comm_options *opts);
/* Say goodbye on the liveness ring, destroy the backend, finalise MPI if init started it.
 * NULL is a no-op. */
void shoal_comm_free(shoal_comm *c);

int shoal_comm_rank(const shoal_comm *c);
int shoal_comm_world_size(const shoal_comm *c);
int shoal_comm_local_rank(const shoal_comm *c); /* rank among the ranks on this host */
int shoal_comm_local_size(const shoal_comm *c);
int shoal_comm_device(const shoal_comm *c);     /* CUDA device index, -1 for host backends */
shoal_comm_backend shoal_comm_backend_of(const shoal_comm *c);
/* 1 when collectives take CUDA device pointers (NCCL), 0 for host pointers. */
int shoal_comm_on_device(const shoal_comm *c);
/* "auto", "single", "mpi", "nccl"; "invalid" for bad values. */
const char *shoal_comm_backend_name(shoal_comm_backend b);
/* Parse a backend name; INVALID_ARG naming the value when unknown. */
shoal_status shoal_comm_backend_parse(const char *name, shoal_comm_backend *out);
/* 1 when this build has the backend (SINGLE always; MPI with SHOAL_HAVE_MPI; NCCL with CUDA and
 * NCCL). */
int shoal_comm_backend_built(shoal_comm_backend b);
/* Change the collective timeout (e.g. around a long checkpoint barrier); 0 restores the limit.
 * LIMIT when above the ceiling. */
shoal_status shoal_comm_set_timeout(shoal_comm *c, uint64_t timeout_ms);
/* NCCL: order collectives after work already queued on this cudaStream_t (the compute stream)
 * by making the communication stream wait on it; NULL = the legacy default stream. Ignored by
 * host backends. */
void shoal_comm_set_compute_stream(shoal_comm *c, void *cuda_stream);

/* ---- collectives: blocking; every rank must call them in the same order ----
 * dtypes: MPI reduces F32, F64, I32, I64 and moves any of those plus BF16, F16, U8; NCCL
 * reduces and moves F32, F64, BF16, F16, I32, I64, U8. Anything else is UNSUPPORTED. */

/* In place: buf (count elements) becomes the element-wise sum (or mean) over all ranks. */
shoal_status shoal_comm_allreduce(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                                  shoal_comm_op op);
/* counts[r] (world entries) is the block rank r receives; send holds sum(counts) elements,
 * block after block; recv gets counts[rank] elements: the reduction of this rank's block over
 * all ranks. Uneven and zero counts are allowed. In place when recv == send + offset of this
 * rank's block (the other blocks of send are then left undefined). */
shoal_status shoal_comm_reduce_scatter(shoal_comm *c, const void *send, void *recv,
                                       const size_t *counts, shoal_dtype dt, shoal_comm_op op);
/* send holds counts[rank] elements; recv (sum(counts) elements) gets every rank's block in
 * rank order. In place when send == recv + offset of this rank's block. */
shoal_status shoal_comm_all_gather(shoal_comm *c, const void *send, void *recv,
                                   const size_t *counts, shoal_dtype dt);
/* buf (count elements) of rank root is copied to every rank. */
shoal_status shoal_comm_broadcast(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                                  int root);
shoal_status shoal_comm_barrier(shoal_comm *c);

/* ---- bucketed all-reduce of one flat gradient buffer ----
 * Buckets are [i*B, min((i+1)*B, count)) for B = bucket_elems. With 2 ranks the result equals
 * shoal_comm_allreduce on the whole buffer bit for bit (a+b is commutative); with more, MPI and
 * NCCL choose their reduction order by message size, so buckets may differ in the last bits. */
size_t shoal_comm_bucket_count(size_t count, size_t bucket_elems); /* 0 when bucket_elems 0 */
/* Blocking: all buckets, last to first. */
shoal_status shoal_comm_allreduce_bucketed(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                                           shoal_comm_op op, size_t bucket_elems);

/* Overlap with backward: mark gradient ranges final as backward produces them; each bucket
 * starts (MPI_Iallreduce / NCCL on the communication stream) once it is complete and every
 * later bucket has started, so all ranks start them in the same order (last to first) whatever
 * order they mark in. finish() starts what is left, waits for all, and resets the marks for the
 * next step. The bucketer borrows comm and buf; buf must not be touched between a bucket's start
 * and finish(). */
typedef struct shoal_comm_bucketer shoal_comm_bucketer;
shoal_status shoal_comm_bucketer_init(shoal_comm_bucketer **out, shoal_comm *c, void *buf,
                                      size_t count, shoal_dtype dt, shoal_comm_op op,
                                      size_t bucket_elems);
/* Elements [offset, offset+n) are final for this step. INVALID_ARG when out of range or marked
 * twice. Errors from starting a bucket are returned here. */
shoal_status shoal_comm_bucketer_mark_ready(shoal_comm_bucketer *b, size_t offset, size_t n);
shoal_status shoal_comm_bucketer_finish(shoal_comm_bucketer *b);
/* Buckets started so far in this step (for tests and progress). */
size_t shoal_comm_bucketer_started(const shoal_comm_bucketer *b);
/* Frees the bucketer; waits for started buckets first. NULL is a no-op. */
void shoal_comm_bucketer_free(shoal_comm_bucketer *b);

/* ---- host helpers (pure, no communication) ---- */

/* Split total elements over world ranks as evenly as possible, the first total%world ranks
 * getting one more: rank's block is [*offset, *offset + *count). */
void shoal_comm_shard(size_t total, int world, int rank, size_t *offset, size_t *count);
/* The CUDA device a rank uses: local_rank itself. INVALID_ARG when local_rank is out of
 * [0, local_size) or more ranks share this host than it has visible devices (NCCL refuses two
 * ranks on one GPU); the message names CUDA_VISIBLE_DEVICES. */
shoal_status shoal_comm_pick_device(int local_rank, int local_size, int device_count,
                                    int *device);

#endif
