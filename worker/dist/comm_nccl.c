/* comm_nccl.c: the NCCL backend (CUDA device buffers).
 *
 * Why shaped so: NCCL's own recipe for a communicator that can never hang the process. The
 * communicator is created non-blocking (config.blocking = 0) so that init, every enqueue and
 * finalisation can be polled; collectives run on a communication stream of our own (ordered
 * after the caller's compute stream with an event), and the host waits by polling the stream's
 * event together with ncclCommGetAsyncError, the watchdog's lost-rank flag and the timeout
 * (SHOAL_LIMIT_COMM_TIMEOUT_MS). Any of those firing calls ncclCommAbort, which unblocks the GPU
 * work, and the call returns SHOAL_ERR_COMM or SHOAL_ERR_TIMEOUT; the communicator is then
 * broken. The ncclUniqueId goes from rank 0 to the others over MPI (comm_mpi.c); without MPI
 * (the GPU machine builds with SHOAL_MPI=OFF) only world size 1 is possible and the id stays
 * local. The GPU is shoal_comm_pick_device(local rank), so CUDA_VISIBLE_DEVICES decides which
 * physical GPUs a host's ranks get. Uneven reduce-scatter / all-gather are grouped
 * ncclReduce / ncclBroadcast calls, one per rank's block.
 * Compiles with gcc as C (cuda_runtime.h and nccl.h are C-clean). Tested by
 * tests/dist/test_comm_nccl.c (label gpu; exits 77 when cudaGetDeviceCount fails, as on CI).
 */
#define SHOAL_LOG_SUBSYS "dist"
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/timeutil.h"
#include "worker/dist/comm_impl.h"

typedef struct {
    ncclComm_t comm;
    cudaStream_t stream;  /* communication stream (ours) */
    cudaStream_t compute; /* caller's stream; NULL = legacy default stream */
    cudaEvent_t order_ev; /* compute -> stream ordering */
    cudaEvent_t done_ev;  /* completion of blocking collectives */
    float *scratch;       /* (1) device float for barrier */
    int aborted;
    int uses_mpi;
} nccl_state;

typedef struct {
    cudaEvent_t ev;
    int active;
} nccl_req;

static nccl_state *st_of(shoal_comm *c) { return c->impl; }

static ncclDataType_t nccl_type(shoal_dtype dt) {
    switch (dt) {
    case SHOAL_DTYPE_F32: return ncclFloat32;
    case SHOAL_DTYPE_F64: return ncclFloat64;
    case SHOAL_DTYPE_BF16: return ncclBfloat16;
    case SHOAL_DTYPE_F16: return ncclFloat16;
    case SHOAL_DTYPE_I32: return ncclInt32;
    case SHOAL_DTYPE_I64: return ncclInt64;
    default: return ncclUint8;
    }
}

static ncclRedOp_t nccl_op(shoal_comm_op op) { return op == SHOAL_COMM_AVG ? ncclAvg : ncclSum; }

static void nap(void) {
    struct timespec ts = {0, 20 * 1000}; /* 20 us: latency well under a collective's */
    nanosleep(&ts, NULL);
}

static shoal_status do_abort(shoal_comm *c, shoal_status why) {
    nccl_state *s = st_of(c);
    if (!s->aborted && s->comm) {
        ncclCommAbort(s->comm);
        s->aborted = 1;
    }
    return why;
}

/* Why to stop waiting now (lost peer or timeout), or SHOAL_OK to keep waiting. */
static shoal_status should_stop(shoal_comm *c, uint64_t start_ns, const char *what) {
    int lost = shoal_watchdog_lost(c->wd);
    if (lost >= 0) {
        SHOAL_LOG_ERROR("%s: lost rank %d (pid %d on %s); aborting the NCCL communicator", what,
                        lost, shoal_watchdog_pid(c->wd, lost), shoal_watchdog_host(c->wd, lost));
        return SHOAL_ERR_COMM;
    }
    uint64_t limit_ms = atomic_load(&c->timeout_ms);
    if ((shoal_now_ns() - start_ns) / 1000000ull > limit_ms) {
        SHOAL_LOG_ERROR("%s hung: rank %d waited more than %llu ms (comm_timeout_ms); aborting the "
                        "NCCL communicator",
                        what, c->rank, (unsigned long long)limit_ms);
        return SHOAL_ERR_TIMEOUT;
    }
    return SHOAL_OK;
}

static shoal_status async_error(shoal_comm *c, const char *what, int *in_progress) {
    nccl_state *s = st_of(c);
    ncclResult_t ar = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(s->comm, &ar);
    *in_progress = 0;
    if (r == ncclSuccess && ar == ncclInProgress) {
        *in_progress = 1;
        return SHOAL_OK;
    }
    if (r != ncclSuccess || ar != ncclSuccess) {
        SHOAL_LOG_ERROR("%s: NCCL error on rank %d: %s (%s)", what, c->rank,
                        ncclGetErrorString(r != ncclSuccess ? r : ar), ncclGetLastError(s->comm));
        return SHOAL_ERR_COMM;
    }
    return SHOAL_OK;
}

/* After a non-blocking NCCL call: wait until the communicator leaves ncclInProgress. */
static shoal_status nccl_settle(shoal_comm *c, ncclResult_t r, const char *what) {
    nccl_state *s = st_of(c);
    if (r != ncclSuccess && r != ncclInProgress) {
        SHOAL_LOG_ERROR("%s: NCCL call failed on rank %d: %s (%s)", what, c->rank,
                        ncclGetErrorString(r), s->comm ? ncclGetLastError(s->comm) : "");
        return do_abort(c, SHOAL_ERR_COMM);
    }
    uint64_t start = shoal_now_ns();
    for (;;) {
        int busy = 0;
        shoal_status st = async_error(c, what, &busy);
        if (st != SHOAL_OK) return do_abort(c, st);
        if (!busy) return SHOAL_OK;
        st = should_stop(c, start, what);
        if (st != SHOAL_OK) return do_abort(c, st);
        nap();
    }
}

static shoal_status cuda_fail(shoal_comm *c, cudaError_t e, const char *what) {
    SHOAL_LOG_ERROR("%s: CUDA error on rank %d: %s", what, c->rank, cudaGetErrorString(e));
    return SHOAL_ERR_CUDA;
}

/* Poll ev until done, watching NCCL's async error, lost peers and the timeout. */
static shoal_status wait_event(shoal_comm *c, cudaEvent_t ev, const char *what) {
    uint64_t start = shoal_now_ns();
    shoal_watchdog_enter(c->wd, what, SHOAL_WD_CANCELLABLE);
    shoal_status st = SHOAL_OK;
    for (;;) {
        cudaError_t e = cudaEventQuery(ev);
        if (e == cudaSuccess) break;
        if (e != cudaErrorNotReady) {
            st = do_abort(c, cuda_fail(c, e, what));
            break;
        }
        int busy = 0;
        st = async_error(c, what, &busy);
        if (st == SHOAL_OK) st = should_stop(c, start, what);
        if (st != SHOAL_OK) {
            do_abort(c, st);
            break;
        }
        nap();
    }
    shoal_watchdog_leave(c->wd);
    return st;
}

static shoal_status order_after_compute(shoal_comm *c) {
    nccl_state *s = st_of(c);
    cudaError_t e = cudaEventRecord(s->order_ev, s->compute);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(s->stream, s->order_ev, 0);
    return e == cudaSuccess ? SHOAL_OK : cuda_fail(c, e, "ordering after the compute stream");
}

static shoal_status finish_blocking(shoal_comm *c, ncclResult_t r, const char *what) {
    nccl_state *s = st_of(c);
    SHOAL_CHECK(nccl_settle(c, r, what));
    cudaError_t e = cudaEventRecord(s->done_ev, s->stream);
    if (e != cudaSuccess) return do_abort(c, cuda_fail(c, e, what));
    return wait_event(c, s->done_ev, what);
}

static shoal_status n_allreduce(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                                shoal_comm_op op) {
    nccl_state *s = st_of(c);
    SHOAL_CHECK(order_after_compute(c));
    ncclResult_t r =
        ncclAllReduce(buf, buf, count, nccl_type(dt), nccl_op(op), s->comm, s->stream);
    return finish_blocking(c, r, "allreduce");
}

static int all_equal(const size_t *counts, int world) {
    for (int r = 1; r < world; r++)
        if (counts[r] != counts[0]) return 0;
    return 1;
}

static shoal_status n_reduce_scatter(shoal_comm *c, const void *send, void *recv,
                                     const size_t *counts, const size_t *displs, shoal_dtype dt,
                                     shoal_comm_op op) {
    nccl_state *s = st_of(c);
    size_t es = shoal_dtype_size(dt);
    SHOAL_CHECK(order_after_compute(c));
    ncclResult_t r;
    if (all_equal(counts, c->world)) {
        r = ncclReduceScatter(send, recv, counts[0], nccl_type(dt), nccl_op(op), s->comm,
                              s->stream);
    } else {
        r = ncclGroupStart();
        for (int k = 0; k < c->world && (r == ncclSuccess || r == ncclInProgress); k++) {
            if (!counts[k]) continue;
            const char *blk = (const char *)send + displs[k] * es;
            r = ncclReduce(blk, k == c->rank ? recv : (void *)blk, counts[k], nccl_type(dt),
                           nccl_op(op), k, s->comm, s->stream);
        }
        ncclResult_t g = ncclGroupEnd();
        if (r == ncclSuccess || r == ncclInProgress) r = g;
    }
    return finish_blocking(c, r, "reduce_scatter");
}

static shoal_status n_all_gather(shoal_comm *c, const void *send, void *recv,
                                 const size_t *counts, const size_t *displs, shoal_dtype dt) {
    nccl_state *s = st_of(c);
    size_t es = shoal_dtype_size(dt);
    SHOAL_CHECK(order_after_compute(c));
    ncclResult_t r;
    if (all_equal(counts, c->world)) {
        r = ncclAllGather(send, recv, counts[0], nccl_type(dt), s->comm, s->stream);
    } else {
        r = ncclGroupStart();
        for (int k = 0; k < c->world && (r == ncclSuccess || r == ncclInProgress); k++) {
            if (!counts[k]) continue;
            char *blk = (char *)recv + displs[k] * es;
            r = ncclBroadcast(k == c->rank ? send : blk, blk, counts[k], nccl_type(dt), k,
                              s->comm, s->stream);
        }
        ncclResult_t g = ncclGroupEnd();
        if (r == ncclSuccess || r == ncclInProgress) r = g;
    }
    return finish_blocking(c, r, "all_gather");
}

static shoal_status n_broadcast(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                                int root) {
    nccl_state *s = st_of(c);
    SHOAL_CHECK(order_after_compute(c));
    ncclResult_t r = ncclBroadcast(buf, buf, count, nccl_type(dt), root, s->comm, s->stream);
    return finish_blocking(c, r, "broadcast");
}

static shoal_status n_barrier(shoal_comm *c) {
    nccl_state *s = st_of(c);
    SHOAL_CHECK(order_after_compute(c));
    ncclResult_t r = ncclAllReduce(s->scratch, s->scratch, 1, ncclFloat32, ncclSum, s->comm,
                                   s->stream);
    return finish_blocking(c, r, "barrier");
}

static shoal_status n_iallreduce(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                                 shoal_comm_op op, void *req) {
    nccl_state *s = st_of(c);
    nccl_req *q = req;
    SHOAL_CHECK(order_after_compute(c));
    ncclResult_t r =
        ncclAllReduce(buf, buf, count, nccl_type(dt), nccl_op(op), s->comm, s->stream);
    SHOAL_CHECK(nccl_settle(c, r, "iallreduce"));
    cudaError_t e = cudaEventCreateWithFlags(&q->ev, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventRecord(q->ev, s->stream);
    if (e != cudaSuccess) return do_abort(c, cuda_fail(c, e, "iallreduce"));
    q->active = 1;
    return SHOAL_OK;
}

static shoal_status n_wait(shoal_comm *c, void *req) {
    nccl_req *q = req;
    if (!q->active) return SHOAL_OK;
    q->active = 0;
    shoal_status st = st_of(c)->aborted ? SHOAL_ERR_COMM
                                        : wait_event(c, q->ev, "allreduce (bucket wait)");
    cudaEventDestroy(q->ev);
    return st;
}

static void n_set_compute_stream(shoal_comm *c, void *stream) {
    st_of(c)->compute = (cudaStream_t)stream;
}

static void state_free(shoal_comm *c) {
    nccl_state *s = st_of(c);
    if (!s) return;
    if (s->comm && !s->aborted) {
        /* Finalize flushes outstanding work; poll it like any other call, abort on trouble. */
        shoal_status st = nccl_settle(c, ncclCommFinalize(s->comm), "finalize");
        if (st == SHOAL_OK) ncclCommDestroy(s->comm);
    }
    if (s->scratch) cudaFree(s->scratch);
    if (s->done_ev) cudaEventDestroy(s->done_ev);
    if (s->order_ev) cudaEventDestroy(s->order_ev);
    if (s->stream) cudaStreamDestroy(s->stream);
    free(s);
    c->impl = NULL;
}

static void n_close(shoal_comm *c) { state_free(c); }

#define NCCL_DTYPES                                                                                \
    (SHOAL_DTYPE_BIT(SHOAL_DTYPE_F32) | SHOAL_DTYPE_BIT(SHOAL_DTYPE_F64) |                         \
     SHOAL_DTYPE_BIT(SHOAL_DTYPE_BF16) | SHOAL_DTYPE_BIT(SHOAL_DTYPE_F16) |                        \
     SHOAL_DTYPE_BIT(SHOAL_DTYPE_I32) | SHOAL_DTYPE_BIT(SHOAL_DTYPE_I64) |                         \
     SHOAL_DTYPE_BIT(SHOAL_DTYPE_U8))

static const shoal_comm_vtable nccl_vtable = {
    .name = "nccl",
    .reduce_dtypes = NCCL_DTYPES,
    .move_dtypes = NCCL_DTYPES,
    .allreduce = n_allreduce,
    .reduce_scatter = n_reduce_scatter,
    .all_gather = n_all_gather,
    .broadcast = n_broadcast,
    .barrier = n_barrier,
    .req_size = sizeof(nccl_req),
    .iallreduce = n_iallreduce,
    .wait = n_wait,
    .set_compute_stream = n_set_compute_stream,
    .close = n_close,
};

shoal_status shoal_comm_nccl_open(shoal_comm *c) {
    shoal_status st = SHOAL_OK;
    cudaError_t e;
    nccl_state *s = NULL;
    if (shoal_comm_launched_by_mpi()) {
#ifdef SHOAL_DIST_MPI
        SHOAL_CHECK(shoal_comm_mpi_open(c));
#else
        SHOAL_LOG_ERROR("started by an MPI launcher but this build has no MPI to exchange the "
                        "NCCL id; rebuild with -DSHOAL_MPI=ON or run one process without mpirun");
        return SHOAL_ERR_UNSUPPORTED;
#endif
    }
    int ndev = 0;
    e = cudaGetDeviceCount(&ndev);
    SHOAL_REQUIRE_GOTO(e == cudaSuccess, SHOAL_ERR_CUDA,
                       "NCCL backend: no usable CUDA device on rank %d (%s)", c->rank,
                       cudaGetErrorString(e));
    SHOAL_CHECK_GOTO(shoal_comm_pick_device(c->local_rank, c->local_size, ndev, &c->device));
    e = cudaSetDevice(c->device);
    SHOAL_REQUIRE_GOTO(e == cudaSuccess, SHOAL_ERR_CUDA, "cudaSetDevice(%d): %s", c->device,
                       cudaGetErrorString(e));

    s = calloc(1, sizeof *s);
    SHOAL_REQUIRE_GOTO(s, SHOAL_ERR_NOMEM, "NCCL backend: out of memory");
    c->impl = s;
    s->uses_mpi = c->mpi != NULL;
    e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&s->order_ev, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&s->done_ev, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaMalloc((void **)&s->scratch, sizeof(float));
    if (e == cudaSuccess) e = cudaMemset(s->scratch, 0, sizeof(float));
    SHOAL_REQUIRE_GOTO(e == cudaSuccess, SHOAL_ERR_CUDA, "NCCL backend set-up: %s",
                       cudaGetErrorString(e));

    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (c->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        SHOAL_REQUIRE_GOTO(r == ncclSuccess, SHOAL_ERR_COMM, "ncclGetUniqueId: %s",
                           ncclGetErrorString(r));
    }
#ifdef SHOAL_DIST_MPI
    if (c->world > 1) SHOAL_CHECK_GOTO(shoal_comm_mpi_bcast_bytes(c, &id, sizeof id, 0));
#endif
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&s->comm, c->world, id, c->rank, &config);
    SHOAL_CHECK_GOTO(nccl_settle(c, r, "ncclCommInitRankConfig"));
    c->vt = &nccl_vtable;
    return SHOAL_OK;
cleanup:
    if (s) state_free(c);
#ifdef SHOAL_DIST_MPI
    if (c->mpi) {
        c->broken = 1; /* peers may be blocked elsewhere: skip MPI_Finalize */
        shoal_comm_mpi_close(c);
        c->broken = 0;
    }
#endif
    return st;
}
