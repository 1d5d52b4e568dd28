/* comm_mpi.c: the MPI backend (host buffers) and the MPI bootstrap the NCCL backend reuses.
 *
 * Why shaped so: the collectives run on a duplicate of MPI_COMM_WORLD whose error handler is
 * MPI_ERRORS_RETURN, so an MPI failure comes back as SHOAL_ERR_COMM with MPI's own message
 * rather than aborting the job from inside the library. Every blocking call is wrapped in the
 * watchdog's enter/leave so that a dead or stuck peer ends this rank with a message instead of a
 * hang (watchdog.h). Counts above INT_MAX are split into chunks for allreduce and broadcast;
 * the "v" collectives need each block to fit an int (8 GiB of fp32), which is checked.
 * AVG is a SUM followed by a division by the world size on this rank, identical on every rank.
 * Local rank comes from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED), which works under mpirun and
 * srun alike. Tested by tests/dist/test_comm_mpi.c, kill_rank.sh and two_hosts.sh (label mpi).
 */
#define SHOAL_LOG_SUBSYS "dist"
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "worker/dist/comm_impl.h"

#define MPI_CHUNK ((size_t)1 << 30) /* elements per MPI call: below INT_MAX, a round number */

typedef struct {
    MPI_Comm comm;
    int we_initialised;
} mpi_state;

typedef struct {
    MPI_Request req;
    void *buf;
    size_t count;
    shoal_dtype dt;
    int avg, active;
} mpi_req;

static MPI_Comm comm_of(const shoal_comm *c) { return ((const mpi_state *)c->mpi)->comm; }

static MPI_Datatype mpi_type(shoal_dtype dt) {
    switch (dt) {
    case SHOAL_DTYPE_F32: return MPI_FLOAT;
    case SHOAL_DTYPE_F64: return MPI_DOUBLE;
    case SHOAL_DTYPE_I32: return MPI_INT32_T;
    case SHOAL_DTYPE_I64: return MPI_INT64_T;
    case SHOAL_DTYPE_U8: return MPI_UINT8_T;
    case SHOAL_DTYPE_BF16:
    case SHOAL_DTYPE_F16: return MPI_UINT16_T; /* moved as bits, never reduced */
    default: return MPI_DATATYPE_NULL;
    }
}

static shoal_status mpi_fail(const shoal_comm *c, int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    int lost = shoal_watchdog_lost(c->wd);
    if (lost >= 0)
        SHOAL_LOG_ERROR("%s failed on rank %d: %s (lost rank %d, pid %d on %s)", what, c->rank,
                        msg, lost, shoal_watchdog_pid(c->wd, lost),
                        shoal_watchdog_host(c->wd, lost));
    else
        SHOAL_LOG_ERROR("%s failed on rank %d: %s", what, c->rank, msg);
    return SHOAL_ERR_COMM;
}

#define MPI_CALL(c, what, call)                                                                    \
    do {                                                                                           \
        shoal_watchdog_enter((c)->wd, what, 0);                                                    \
        int rc_ = (call);                                                                          \
        shoal_watchdog_leave((c)->wd);                                                             \
        if (rc_ != MPI_SUCCESS) return mpi_fail((c), rc_, what);                                   \
    } while (0)

int shoal_comm_launched_by_mpi(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

static shoal_status wd_allgather(void *ctx, const void *mine, void *all, size_t bytes) {
    shoal_comm *c = ctx;
    SHOAL_REQUIRE(bytes <= INT_MAX, SHOAL_ERR_LIMIT, "allgather of %zu bytes", bytes);
    MPI_CALL(c, "watchdog set-up allgather",
             MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, comm_of(c)));
    return SHOAL_OK;
}

shoal_status shoal_comm_mpi_open(shoal_comm *c) {
    shoal_status st = SHOAL_OK;
    int inited = 0, finalized = 0, rc;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    SHOAL_REQUIRE(!finalized, SHOAL_ERR_UNSUPPORTED,
                  "MPI was already finalised in this process; MPI allows one init per process");
    mpi_state *m = calloc(1, sizeof *m);
    SHOAL_REQUIRE(m, SHOAL_ERR_NOMEM, "out of memory");
    m->comm = MPI_COMM_NULL;
    c->mpi = m;
    if (!inited) {
        int provided = 0;
        /* FUNNELED: only the main thread calls MPI; the watchdog thread never does. */
        rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        SHOAL_REQUIRE_GOTO(rc == MPI_SUCCESS, SHOAL_ERR_COMM, "MPI_Init_thread failed (%d)", rc);
        m->we_initialised = 1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
    SHOAL_REQUIRE_GOTO(rc == MPI_SUCCESS, SHOAL_ERR_COMM, "MPI_Comm_dup failed (%d)", rc);
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(m->comm, &c->rank);
    MPI_Comm_size(m->comm, &c->world);
    uint64_t max_ranks = shoal_limit(SHOAL_LIMIT_COMM_RANKS);
    SHOAL_REQUIRE_GOTO((uint64_t)c->world <= max_ranks, SHOAL_ERR_LIMIT,
                       "world size %d is above the limit comm_ranks=%llu", c->world,
                       (unsigned long long)max_ranks);
    MPI_Comm local = MPI_COMM_NULL;
    rc = MPI_Comm_split_type(m->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &local);
    SHOAL_REQUIRE_GOTO(rc == MPI_SUCCESS, SHOAL_ERR_COMM, "MPI_Comm_split_type failed (%d)", rc);
    MPI_Comm_rank(local, &c->local_rank);
    MPI_Comm_size(local, &c->local_size);
    MPI_Comm_free(&local);

    shoal_watchdog_config wc = {
        .rank = c->rank,
        .world = c->world,
        .timeout_ms = &c->timeout_ms,
        .on_fatal = c->opts.on_fatal,
        .on_fatal_arg = c->opts.on_fatal_arg,
        .allgather = wd_allgather,
        .ctx = c,
    };
    SHOAL_CHECK_GOTO(shoal_watchdog_start(&c->wd, &wc));
    return SHOAL_OK;
cleanup:
    c->broken = 1; /* peers may be gone: do not block in MPI_Finalize */
    shoal_comm_mpi_close(c);
    c->broken = 0;
    return st;
}

void shoal_comm_mpi_close(shoal_comm *c) {
    mpi_state *m = c->mpi;
    if (!m) return;
    /* After a failure or a lost peer MPI's state is unknown and finalising may block on the
     * dead rank: skip it and let process exit tear the connections down. Otherwise tell the
     * neighbours we are leaving on purpose, then finalise under the watchdog's timer (it
     * synchronises with the other ranks, so it can hang like any collective). */
    if (!c->broken && shoal_watchdog_lost(c->wd) < 0) {
        shoal_watchdog_goodbye(c->wd);
        if (m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
        if (m->we_initialised) {
            shoal_watchdog_enter(c->wd, "MPI_Finalize", SHOAL_WD_LONG);
            MPI_Finalize();
            shoal_watchdog_leave(c->wd);
        }
    }
    shoal_watchdog_stop(c->wd);
    c->wd = NULL;
    free(m);
    c->mpi = NULL;
}

shoal_status shoal_comm_mpi_bcast_bytes(shoal_comm *c, void *p, size_t n, int root) {
    SHOAL_REQUIRE(n <= INT_MAX, SHOAL_ERR_LIMIT, "broadcast of %zu bytes", n);
    MPI_CALL(c, "broadcast", MPI_Bcast(p, (int)n, MPI_BYTE, root, comm_of(c)));
    return SHOAL_OK;
}

static shoal_status m_allreduce(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                                shoal_comm_op op) {
    size_t es = shoal_dtype_size(dt);
    for (size_t off = 0; off < count; off += MPI_CHUNK) {
        size_t n = count - off < MPI_CHUNK ? count - off : MPI_CHUNK;
        MPI_CALL(c, "allreduce",
                 MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * es, (int)n, mpi_type(dt),
                               MPI_SUM, comm_of(c)));
    }
    if (op == SHOAL_COMM_AVG) return shoal_comm_host_scale(buf, count, dt, c->world);
    return SHOAL_OK;
}

static shoal_status int_counts(const shoal_comm *c, const size_t *counts, const size_t *displs,
                               int **ic, int **id, const char *what) {
    *ic = malloc((size_t)c->world * sizeof **ic);
    *id = malloc((size_t)c->world * sizeof **id);
    if (!*ic || !*id) {
        free(*ic), free(*id);
        SHOAL_LOG_ERROR("%s: out of memory", what);
        return SHOAL_ERR_NOMEM;
    }
    for (int r = 0; r < c->world; r++) {
        if (counts[r] > INT_MAX || (displs && displs[r] > INT_MAX)) {
            free(*ic), free(*id);
            SHOAL_LOG_ERROR("%s: rank %d's block (%zu elements at %zu) does not fit MPI's int "
                            "counts; use more ranks or smaller blocks",
                            what, r, counts[r], displs ? displs[r] : 0);
            return SHOAL_ERR_LIMIT;
        }
        (*ic)[r] = (int)counts[r];
        (*id)[r] = displs ? (int)displs[r] : 0;
    }
    return SHOAL_OK;
}

static shoal_status m_reduce_scatter(shoal_comm *c, const void *send, void *recv,
                                     const size_t *counts, const size_t *displs, shoal_dtype dt,
                                     shoal_comm_op op) {
    int *ic = NULL, *id = NULL;
    SHOAL_CHECK(int_counts(c, counts, displs, &ic, &id, "reduce_scatter"));
    size_t es = shoal_dtype_size(dt), mine = counts[c->rank];
    char *me = (char *)send + displs[c->rank] * es;
    int rc;
    shoal_watchdog_enter(c->wd, "reduce_scatter", 0);
    if ((char *)recv == me) {
        /* MPI's in-place form leaves the result at the start of the buffer: move it home. */
        rc = MPI_Reduce_scatter(MPI_IN_PLACE, (void *)send, ic, mpi_type(dt), MPI_SUM,
                                comm_of(c));
        if (rc == MPI_SUCCESS && me != send && mine) memmove(me, send, mine * es);
    } else {
        rc = MPI_Reduce_scatter(send, recv, ic, mpi_type(dt), MPI_SUM, comm_of(c));
    }
    shoal_watchdog_leave(c->wd);
    free(ic), free(id);
    if (rc != MPI_SUCCESS) return mpi_fail(c, rc, "reduce_scatter");
    if (op == SHOAL_COMM_AVG) return shoal_comm_host_scale(recv, mine, dt, c->world);
    return SHOAL_OK;
}

static shoal_status m_all_gather(shoal_comm *c, const void *send, void *recv,
                                 const size_t *counts, const size_t *displs, shoal_dtype dt) {
    int *ic = NULL, *id = NULL;
    SHOAL_CHECK(int_counts(c, counts, displs, &ic, &id, "all_gather"));
    size_t es = shoal_dtype_size(dt);
    const void *s = (const char *)send == (char *)recv + displs[c->rank] * es ? MPI_IN_PLACE : send;
    shoal_watchdog_enter(c->wd, "all_gather", 0);
    int rc = MPI_Allgatherv(s, ic[c->rank], mpi_type(dt), recv, ic, id, mpi_type(dt), comm_of(c));
    shoal_watchdog_leave(c->wd);
    free(ic), free(id);
    if (rc != MPI_SUCCESS) return mpi_fail(c, rc, "all_gather");
    return SHOAL_OK;
}

static shoal_status m_broadcast(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                                int root) {
    size_t es = shoal_dtype_size(dt);
    for (size_t off = 0; off < count; off += MPI_CHUNK) {
        size_t n = count - off < MPI_CHUNK ? count - off : MPI_CHUNK;
        MPI_CALL(c, "broadcast",
                 MPI_Bcast((char *)buf + off * es, (int)n, mpi_type(dt), root, comm_of(c)));
    }
    return SHOAL_OK;
}

static shoal_status m_barrier(shoal_comm *c) {
    MPI_CALL(c, "barrier", MPI_Barrier(comm_of(c)));
    return SHOAL_OK;
}

static shoal_status m_iallreduce(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                                 shoal_comm_op op, void *req) {
    mpi_req *r = req;
    SHOAL_REQUIRE(count <= INT_MAX, SHOAL_ERR_LIMIT,
                  "non-blocking allreduce of %zu elements: use buckets below 2^31 elements", count);
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, mpi_type(dt), MPI_SUM, comm_of(c),
                            &r->req);
    if (rc != MPI_SUCCESS) return mpi_fail(c, rc, "iallreduce");
    r->buf = buf, r->count = count, r->dt = dt, r->avg = op == SHOAL_COMM_AVG, r->active = 1;
    return SHOAL_OK;
}

static shoal_status m_wait(shoal_comm *c, void *req) {
    mpi_req *r = req;
    if (!r->active) return SHOAL_OK;
    r->active = 0;
    MPI_CALL(c, "allreduce (bucket wait)", MPI_Wait(&r->req, MPI_STATUS_IGNORE));
    if (r->avg) return shoal_comm_host_scale(r->buf, r->count, r->dt, c->world);
    return SHOAL_OK;
}

static void m_progress(shoal_comm *c, void *req) {
    (void)c;
    mpi_req *r = req;
    int done = 0;
    /* A completed request becomes MPI_REQUEST_NULL, which m_wait then returns at once for; an
     * error here shows up again in m_wait, where it is reported. */
    if (r->active) MPI_Test(&r->req, &done, MPI_STATUS_IGNORE);
}

static void m_close(shoal_comm *c) { (void)c; /* shoal_comm_free closes the MPI state */ }

const shoal_comm_vtable shoal_comm_mpi_vtable = {
    .name = "mpi",
    .reduce_dtypes = SHOAL_DTYPE_BIT(SHOAL_DTYPE_F32) | SHOAL_DTYPE_BIT(SHOAL_DTYPE_F64) |
                     SHOAL_DTYPE_BIT(SHOAL_DTYPE_I32) | SHOAL_DTYPE_BIT(SHOAL_DTYPE_I64),
    .move_dtypes = SHOAL_DTYPE_BIT(SHOAL_DTYPE_F32) | SHOAL_DTYPE_BIT(SHOAL_DTYPE_F64) |
                   SHOAL_DTYPE_BIT(SHOAL_DTYPE_I32) | SHOAL_DTYPE_BIT(SHOAL_DTYPE_I64) |
                   SHOAL_DTYPE_BIT(SHOAL_DTYPE_BF16) | SHOAL_DTYPE_BIT(SHOAL_DTYPE_F16) |
                   SHOAL_DTYPE_BIT(SHOAL_DTYPE_U8),
    .allreduce = m_allreduce,
    .reduce_scatter = m_reduce_scatter,
    .all_gather = m_all_gather,
    .broadcast = m_broadcast,
    .barrier = m_barrier,
    .req_size = sizeof(mpi_req),
    .iallreduce = m_iallreduce,
    .wait = m_wait,
    .progress = m_progress,
    .close = m_close,
};
