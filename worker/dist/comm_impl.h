/* comm_impl.h: worker/dist internals shared by comm.c and the backends; not a public header.
 *
 * A backend fills a shoal_comm_vtable. comm.c has already checked every argument (non-NULL
 * buffers, counts within limits, dtype and op supported by the backend, root in range) and
 * skipped world-size-1 trivia where it can, so backends only move data. Backends return
 * SHOAL_ERR_COMM/TIMEOUT/CUDA with a logged message; comm.c then marks the communicator broken.
 * Tested through the public API (tests/dist/).
 */
#ifndef SHOAL_WORKER_DIST_COMM_IMPL_H
#define SHOAL_WORKER_DIST_COMM_IMPL_H

#include <stdatomic.h>

#include "worker/dist/comm.h"
#include "worker/dist/watchdog.h"

typedef struct {
    const char *name;
    /* bit r set: dtype r can be reduced / moved by this backend */
    unsigned reduce_dtypes, move_dtypes;
    shoal_status (*allreduce)(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                              shoal_comm_op op);
    /* displs[r] = element offset of rank r's block in send; total = sum of counts */
    shoal_status (*reduce_scatter)(shoal_comm *c, const void *send, void *recv,
                                   const size_t *counts, const size_t *displs, shoal_dtype dt,
                                   shoal_comm_op op);
    shoal_status (*all_gather)(shoal_comm *c, const void *send, void *recv, const size_t *counts,
                               const size_t *displs, shoal_dtype dt);
    shoal_status (*broadcast)(shoal_comm *c, void *buf, size_t count, shoal_dtype dt, int root);
    shoal_status (*barrier)(shoal_comm *c);
    /* Non-blocking all-reduce: req points at req_size zeroed bytes owned by the caller. */
    size_t req_size;
    shoal_status (*iallreduce)(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                               shoal_comm_op op, void *req);
    shoal_status (*wait)(shoal_comm *c, void *req);
    /* Optional: let a started request advance without blocking (MPI_Test). */
    void (*progress)(shoal_comm *c, void *req);
    void (*set_compute_stream)(shoal_comm *c, void *stream);
    void (*close)(shoal_comm *c); /* frees backend state; comm.c frees the rest */
} shoal_comm_vtable;

struct shoal_comm {
    const shoal_comm_vtable *vt;
    shoal_comm_backend backend;
    int rank, world, local_rank, local_size, device;
    _Atomic uint64_t timeout_ms;
    shoal_comm_options opts;
    int broken;                /* a collective failed: every later call fails fast */
    shoal_watchdog *wd;        /* NULL for SINGLE */
    void *mpi;                 /* comm_mpi.c state, NULL when MPI is not in use */
    void *impl;                /* backend-private state (NCCL) */
};

#define SHOAL_DTYPE_BIT(dt) (1u << (unsigned)(dt))

/* comm_mpi.c (built with SHOAL_HAVE_MPI) */
extern const shoal_comm_vtable shoal_comm_mpi_vtable;
/* MPI up (init if needed), ranks, local ranks, watchdog started. Used by MPI and NCCL. */
shoal_status shoal_comm_mpi_open(shoal_comm *c);
void shoal_comm_mpi_close(shoal_comm *c);
shoal_status shoal_comm_mpi_bcast_bytes(shoal_comm *c, void *p, size_t n, int root);
/* 1 when the environment says a launcher (mpirun, srun with PMIx/PMI) started us. */
int shoal_comm_launched_by_mpi(void);

/* comm_nccl.c (built with SHOAL_HAVE_CUDA and SHOAL_HAVE_NCCL) */
shoal_status shoal_comm_nccl_open(shoal_comm *c);

/* Element-wise buf /= world for AVG on host memory (MPI, SINGLE). */
shoal_status shoal_comm_host_scale(void *buf, size_t count, shoal_dtype dt, int world);

#endif
