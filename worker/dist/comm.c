/* comm.c: the public side of comm.h: backend choice, argument checks, the broken-communicator
 * rule, and the SINGLE backend (world size 1, host buffers, no MPI).
 *
 * Every argument is checked here once, so backends only move data: NULL buffers with a
 * non-zero count, counts above SHOAL_LIMIT_TENSOR_ELEMENTS, byte sizes that overflow,
 * dtypes or ops the backend cannot do (UNSUPPORTED naming the backend, never a silent
 * conversion), roots out of range. A failed collective marks the communicator broken so that
 * ranks do not continue with diverged state. Tested by tests/dist/test_comm_unit.c and the
 * MPI tests.
 */
#define SHOAL_LOG_SUBSYS "dist"
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "worker/dist/comm_impl.h"

static const char *backend_names[SHOAL_COMM_BACKEND_COUNT] = {"auto", "single", "mpi", "nccl"};

const char *shoal_comm_backend_name(shoal_comm_backend b) {
    return ((unsigned)b < SHOAL_COMM_BACKEND_COUNT) ? backend_names[b] : "invalid";
}

shoal_status shoal_comm_backend_parse(const char *name, shoal_comm_backend *out) {
    for (int i = 0; i < SHOAL_COMM_BACKEND_COUNT; i++) {
        if (name && strcmp(name, backend_names[i]) == 0) {
            *out = (shoal_comm_backend)i;
            return SHOAL_OK;
        }
    }
    SHOAL_LOG_ERROR("unknown communicator backend '%s' (expected auto, single, mpi or nccl)",
                    name ? name : "(null)");
    return SHOAL_ERR_INVALID_ARG;
}

int shoal_comm_backend_built(shoal_comm_backend b) {
    switch (b) {
    case SHOAL_COMM_AUTO:
    case SHOAL_COMM_SINGLE: return 1;
#ifdef SHOAL_DIST_MPI
    case SHOAL_COMM_MPI: return 1;
#endif
#if defined(SHOAL_DIST_NCCL)
    case SHOAL_COMM_NCCL: return 1;
#endif
    default: return 0;
    }
}

#ifndef SHOAL_DIST_MPI
int shoal_comm_launched_by_mpi(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}
#endif

/* ---- SINGLE backend: world size 1, so every collective is a copy at most ---- */

static shoal_status single_allreduce(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                                     shoal_comm_op op) {
    (void)c, (void)buf, (void)count, (void)dt, (void)op; /* x/1 == x exactly: nothing to do */
    return SHOAL_OK;
}

static shoal_status single_reduce_scatter(shoal_comm *c, const void *send, void *recv,
                                          const size_t *counts, const size_t *displs,
                                          shoal_dtype dt, shoal_comm_op op) {
    (void)c, (void)displs, (void)op;
    if (counts[0] && send != recv) memmove(recv, send, counts[0] * shoal_dtype_size(dt));
    return SHOAL_OK;
}

static shoal_status single_all_gather(shoal_comm *c, const void *send, void *recv,
                                      const size_t *counts, const size_t *displs,
                                      shoal_dtype dt) {
    (void)c, (void)displs;
    if (counts[0] && send != recv) memmove(recv, send, counts[0] * shoal_dtype_size(dt));
    return SHOAL_OK;
}

static shoal_status single_broadcast(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                                     int root) {
    (void)c, (void)buf, (void)count, (void)dt, (void)root;
    return SHOAL_OK;
}

static shoal_status single_barrier(shoal_comm *c) {
    (void)c;
    return SHOAL_OK;
}

static shoal_status single_iallreduce(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                                      shoal_comm_op op, void *req) {
    (void)req;
    return single_allreduce(c, buf, count, dt, op);
}

static shoal_status single_wait(shoal_comm *c, void *req) {
    (void)c, (void)req;
    return SHOAL_OK;
}

static void single_close(shoal_comm *c) { (void)c; }

#define HOST_REDUCE                                                                                \
    (SHOAL_DTYPE_BIT(SHOAL_DTYPE_F32) | SHOAL_DTYPE_BIT(SHOAL_DTYPE_F64) |                         \
     SHOAL_DTYPE_BIT(SHOAL_DTYPE_I32) | SHOAL_DTYPE_BIT(SHOAL_DTYPE_I64))
#define HOST_MOVE                                                                                  \
    (HOST_REDUCE | SHOAL_DTYPE_BIT(SHOAL_DTYPE_BF16) | SHOAL_DTYPE_BIT(SHOAL_DTYPE_F16) |          \
     SHOAL_DTYPE_BIT(SHOAL_DTYPE_U8))

static const shoal_comm_vtable single_vtable = {
    .name = "single",
    .reduce_dtypes = HOST_REDUCE,
    .move_dtypes = HOST_MOVE,
    .allreduce = single_allreduce,
    .reduce_scatter = single_reduce_scatter,
    .all_gather = single_all_gather,
    .broadcast = single_broadcast,
    .barrier = single_barrier,
    .req_size = 1,
    .iallreduce = single_iallreduce,
    .wait = single_wait,
    .close = single_close,
};

shoal_status shoal_comm_host_scale(void *buf, size_t count, shoal_dtype dt, int world) {
    if (dt == SHOAL_DTYPE_F32) {
        float *x = buf, w = (float)world;
        for (size_t i = 0; i < count; i++) x[i] /= w;
    } else if (dt == SHOAL_DTYPE_F64) {
        double *x = buf, w = (double)world;
        for (size_t i = 0; i < count; i++) x[i] /= w;
    } else {
        SHOAL_LOG_ERROR("average of dtype %s on host is not supported", shoal_dtype_name(dt));
        return SHOAL_ERR_UNSUPPORTED;
    }
    return SHOAL_OK;
}

/* ---- init / free / accessors ---- */

shoal_status shoal_comm_init(shoal_comm **out, const shoal_comm_options *opts) {
    shoal_status st = SHOAL_OK;
    SHOAL_REQUIRE(out, SHOAL_ERR_INVALID_ARG, "shoal_comm_init: out is NULL");
    *out = NULL;
    shoal_comm_options o = {0};
    if (opts) o = *opts;
    SHOAL_REQUIRE((unsigned)o.backend < SHOAL_COMM_BACKEND_COUNT, SHOAL_ERR_INVALID_ARG,
                  "communicator backend %d is not one of auto, single, mpi, nccl", (int)o.backend);
    const shoal_limit_info *tl = shoal_limit_describe(SHOAL_LIMIT_COMM_TIMEOUT_MS);
    SHOAL_REQUIRE(o.timeout_ms <= tl->ceiling, SHOAL_ERR_LIMIT,
                  "communicator timeout %llu ms is above the ceiling of comm_timeout_ms (%llu)",
                  (unsigned long long)o.timeout_ms, (unsigned long long)tl->ceiling);

    shoal_comm_backend b = o.backend;
    if (b == SHOAL_COMM_AUTO) {
        b = shoal_comm_launched_by_mpi() ? SHOAL_COMM_MPI : SHOAL_COMM_SINGLE;
        if (b == SHOAL_COMM_MPI && !shoal_comm_backend_built(b)) {
            SHOAL_LOG_ERROR("started by an MPI launcher (OMPI_COMM_WORLD_SIZE/PMIX_RANK/PMI_SIZE "
                            "set) but this build has no MPI; rebuild with -DSHOAL_MPI=ON or run "
                            "without mpirun/srun");
            return SHOAL_ERR_UNSUPPORTED;
        }
    }
    if (!shoal_comm_backend_built(b)) {
        SHOAL_LOG_ERROR("communicator backend '%s' is not built in (%s); rebuild with it or pick "
                        "another backend",
                        shoal_comm_backend_name(b),
                        b == SHOAL_COMM_MPI ? "configure with -DSHOAL_MPI=ON"
                                            : "configure with -DSHOAL_CUDA=ON and NCCL present");
        return SHOAL_ERR_UNSUPPORTED;
    }

    shoal_comm *c = calloc(1, sizeof *c);
    SHOAL_REQUIRE(c, SHOAL_ERR_NOMEM, "shoal_comm_init: out of memory");
    c->opts = o;
    c->backend = b;
    c->world = 1, c->local_size = 1, c->device = -1;
    atomic_store(&c->timeout_ms,
                 o.timeout_ms ? o.timeout_ms : shoal_limit(SHOAL_LIMIT_COMM_TIMEOUT_MS));
    switch (b) {
    case SHOAL_COMM_SINGLE:
        if (shoal_comm_launched_by_mpi())
            SHOAL_LOG_WARN("backend 'single' chosen although an MPI launcher started this "
                           "process: every rank will train alone");
        c->vt = &single_vtable;
        break;
#ifdef SHOAL_DIST_MPI
    case SHOAL_COMM_MPI:
        SHOAL_CHECK_GOTO(shoal_comm_mpi_open(c));
        c->vt = &shoal_comm_mpi_vtable;
        break;
#endif
#if defined(SHOAL_DIST_NCCL)
    case SHOAL_COMM_NCCL:
        SHOAL_CHECK_GOTO(shoal_comm_nccl_open(c)); /* sets c->vt */
        break;
#endif
    default:
        SHOAL_LOG_ERROR("backend %s not built", shoal_comm_backend_name(b));
        st = SHOAL_ERR_INTERNAL;
        goto cleanup;
    }
    SHOAL_LOG_DEBUG("communicator %s: rank %d of %d (local %d of %d, device %d)", c->vt->name,
                    c->rank, c->world, c->local_rank, c->local_size, c->device);
    *out = c;
    return SHOAL_OK;
cleanup:
    free(c);
    return st;
}

void shoal_comm_free(shoal_comm *c) {
    if (!c) return;
    if (c->vt && c->vt->close) c->vt->close(c);
#ifdef SHOAL_DIST_MPI
    if (c->mpi) shoal_comm_mpi_close(c);
#endif
    free(c);
}

int shoal_comm_rank(const shoal_comm *c) { return c ? c->rank : 0; }
int shoal_comm_world_size(const shoal_comm *c) { return c ? c->world : 1; }
int shoal_comm_local_rank(const shoal_comm *c) { return c ? c->local_rank : 0; }
int shoal_comm_local_size(const shoal_comm *c) { return c ? c->local_size : 1; }
int shoal_comm_device(const shoal_comm *c) { return c ? c->device : -1; }
shoal_comm_backend shoal_comm_backend_of(const shoal_comm *c) {
    return c ? c->backend : SHOAL_COMM_AUTO;
}
int shoal_comm_on_device(const shoal_comm *c) { return c && c->backend == SHOAL_COMM_NCCL; }

shoal_status shoal_comm_set_timeout(shoal_comm *c, uint64_t timeout_ms) {
    SHOAL_REQUIRE(c, SHOAL_ERR_INVALID_ARG, "shoal_comm_set_timeout: NULL communicator");
    const shoal_limit_info *tl = shoal_limit_describe(SHOAL_LIMIT_COMM_TIMEOUT_MS);
    SHOAL_REQUIRE(timeout_ms <= tl->ceiling, SHOAL_ERR_LIMIT,
                  "communicator timeout %llu ms is above the ceiling of comm_timeout_ms (%llu)",
                  (unsigned long long)timeout_ms, (unsigned long long)tl->ceiling);
    atomic_store(&c->timeout_ms,
                 timeout_ms ? timeout_ms : shoal_limit(SHOAL_LIMIT_COMM_TIMEOUT_MS));
    return SHOAL_OK;
}

void shoal_comm_set_compute_stream(shoal_comm *c, void *cuda_stream) {
    if (c && c->vt && c->vt->set_compute_stream) c->vt->set_compute_stream(c, cuda_stream);
}

/* ---- argument checks shared by the collectives ---- */

static shoal_status check_usable(const shoal_comm *c, const char *what) {
    SHOAL_REQUIRE(c && c->vt, SHOAL_ERR_INVALID_ARG, "%s: NULL communicator", what);
    SHOAL_REQUIRE(!c->broken, SHOAL_ERR_COMM,
                  "%s: the communicator is broken by an earlier failed collective; "
                  "free it and relaunch", what);
    int lost = shoal_watchdog_lost(c->wd);
    SHOAL_REQUIRE(lost < 0, SHOAL_ERR_COMM, "%s: lost rank %d (pid %d on %s); relaunch to resume",
                  what, lost, shoal_watchdog_pid(c->wd, lost), shoal_watchdog_host(c->wd, lost));
    return SHOAL_OK;
}

static shoal_status check_dtype(const shoal_comm *c, shoal_dtype dt, int reducing,
                                shoal_comm_op op, const char *what) {
    SHOAL_REQUIRE((unsigned)dt < SHOAL_DTYPE_COUNT && dt != SHOAL_DTYPE_INVALID,
                  SHOAL_ERR_INVALID_ARG, "%s: invalid dtype %d", what, (int)dt);
    unsigned mask = reducing ? c->vt->reduce_dtypes : c->vt->move_dtypes;
    SHOAL_REQUIRE(mask & SHOAL_DTYPE_BIT(dt), SHOAL_ERR_UNSUPPORTED,
                  "%s: backend %s cannot %s dtype %s", what, c->vt->name,
                  reducing ? "reduce" : "move", shoal_dtype_name(dt));
    if (reducing) {
        SHOAL_REQUIRE((unsigned)op < SHOAL_COMM_OP_COUNT, SHOAL_ERR_INVALID_ARG,
                      "%s: invalid reduction op %d", what, (int)op);
        SHOAL_REQUIRE(op != SHOAL_COMM_AVG || dt == SHOAL_DTYPE_F32 || dt == SHOAL_DTYPE_F64 ||
                          dt == SHOAL_DTYPE_BF16 || dt == SHOAL_DTYPE_F16,
                      SHOAL_ERR_INVALID_ARG, "%s: average needs a floating dtype, not %s", what,
                      shoal_dtype_name(dt));
    }
    return SHOAL_OK;
}

static shoal_status check_count(size_t count, shoal_dtype dt, const char *what) {
    uint64_t lim = shoal_limit(SHOAL_LIMIT_TENSOR_ELEMENTS);
    SHOAL_REQUIRE(count <= lim, SHOAL_ERR_LIMIT, "%s: %zu elements is above tensor_elements=%llu",
                  what, count, (unsigned long long)lim);
    SHOAL_REQUIRE(count <= SIZE_MAX / shoal_dtype_size(dt), SHOAL_ERR_LIMIT,
                  "%s: %zu elements overflow a byte size", what, count);
    return SHOAL_OK;
}

/* Offsets of each rank's block; total in *total. */
static shoal_status block_layout(const shoal_comm *c, const size_t *counts, shoal_dtype dt,
                                 size_t *displs, size_t *total, const char *what) {
    SHOAL_REQUIRE(counts, SHOAL_ERR_INVALID_ARG, "%s: counts is NULL", what);
    size_t t = 0;
    for (int r = 0; r < c->world; r++) {
        displs[r] = t;
        SHOAL_REQUIRE(counts[r] <= SIZE_MAX - t, SHOAL_ERR_LIMIT, "%s: counts overflow", what);
        t += counts[r];
    }
    SHOAL_CHECK(check_count(t, dt, what));
    *total = t;
    return SHOAL_OK;
}

static shoal_status finish(shoal_comm *c, shoal_status st) {
    if (st != SHOAL_OK && st != SHOAL_ERR_INVALID_ARG && st != SHOAL_ERR_UNSUPPORTED &&
        st != SHOAL_ERR_LIMIT)
        c->broken = 1;
    return st;
}

shoal_status shoal_comm_allreduce(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                                  shoal_comm_op op) {
    SHOAL_CHECK(check_usable(c, "allreduce"));
    SHOAL_CHECK(check_dtype(c, dt, 1, op, "allreduce"));
    SHOAL_CHECK(check_count(count, dt, "allreduce"));
    SHOAL_REQUIRE(buf || count == 0, SHOAL_ERR_INVALID_ARG, "allreduce: NULL buffer for %zu "
                  "elements", count);
    if (count == 0) return SHOAL_OK;
    return finish(c, c->vt->allreduce(c, buf, count, dt, op));
}

shoal_status shoal_comm_reduce_scatter(shoal_comm *c, const void *send, void *recv,
                                       const size_t *counts, shoal_dtype dt, shoal_comm_op op) {
    SHOAL_CHECK(check_usable(c, "reduce_scatter"));
    SHOAL_CHECK(check_dtype(c, dt, 1, op, "reduce_scatter"));
    size_t *displs = malloc((size_t)c->world * sizeof *displs), total = 0;
    SHOAL_REQUIRE(displs, SHOAL_ERR_NOMEM, "reduce_scatter: out of memory");
    shoal_status st = block_layout(c, counts, dt, displs, &total, "reduce_scatter");
    if (st == SHOAL_OK && ((total && !send) || (counts[c->rank] && !recv))) {
        SHOAL_LOG_ERROR("reduce_scatter: NULL buffer (send %p for %zu, recv %p for %zu elements)",
                        send, total, recv, counts[c->rank]);
        st = SHOAL_ERR_INVALID_ARG;
    }
    if (st == SHOAL_OK && total) {
        /* Overlap is allowed only as the documented in-place form. */
        size_t es = shoal_dtype_size(dt);
        const char *s = send, *r = recv;
        const char *me = s + displs[c->rank] * es;
        if (r != me && r < s + total * es && r + counts[c->rank] * es > s) {
            SHOAL_LOG_ERROR("reduce_scatter: recv overlaps send but is not this rank's block");
            st = SHOAL_ERR_INVALID_ARG;
        }
    }
    if (st == SHOAL_OK && total)
        st = finish(c, c->vt->reduce_scatter(c, send, recv, counts, displs, dt, op));
    free(displs);
    return st;
}

shoal_status shoal_comm_all_gather(shoal_comm *c, const void *send, void *recv,
                                   const size_t *counts, shoal_dtype dt) {
    SHOAL_CHECK(check_usable(c, "all_gather"));
    SHOAL_CHECK(check_dtype(c, dt, 0, SHOAL_COMM_SUM, "all_gather"));
    size_t *displs = malloc((size_t)c->world * sizeof *displs), total = 0;
    SHOAL_REQUIRE(displs, SHOAL_ERR_NOMEM, "all_gather: out of memory");
    shoal_status st = block_layout(c, counts, dt, displs, &total, "all_gather");
    if (st == SHOAL_OK && ((total && !recv) || (counts[c->rank] && !send))) {
        SHOAL_LOG_ERROR("all_gather: NULL buffer (send %p for %zu, recv %p for %zu elements)",
                        send, counts[c->rank], recv, total);
        st = SHOAL_ERR_INVALID_ARG;
    }
    if (st == SHOAL_OK && total) {
        size_t es = shoal_dtype_size(dt);
        const char *s = send, *r = recv;
        const char *me = r + displs[c->rank] * es;
        if (s != me && s < r + total * es && s + counts[c->rank] * es > r) {
            SHOAL_LOG_ERROR("all_gather: send overlaps recv but is not this rank's block");
            st = SHOAL_ERR_INVALID_ARG;
        }
    }
    if (st == SHOAL_OK && total)
        st = finish(c, c->vt->all_gather(c, send, recv, counts, displs, dt));
    free(displs);
    return st;
}

shoal_status shoal_comm_broadcast(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                                  int root) {
    SHOAL_CHECK(check_usable(c, "broadcast"));
    SHOAL_CHECK(check_dtype(c, dt, 0, SHOAL_COMM_SUM, "broadcast"));
    SHOAL_CHECK(check_count(count, dt, "broadcast"));
    SHOAL_REQUIRE(root >= 0 && root < c->world, SHOAL_ERR_INVALID_ARG,
                  "broadcast: root %d is not a rank of this world of %d", root, c->world);
    SHOAL_REQUIRE(buf || count == 0, SHOAL_ERR_INVALID_ARG, "broadcast: NULL buffer for %zu "
                  "elements", count);
    if (count == 0) return SHOAL_OK;
    return finish(c, c->vt->broadcast(c, buf, count, dt, root));
}

shoal_status shoal_comm_barrier(shoal_comm *c) {
    SHOAL_CHECK(check_usable(c, "barrier"));
    return finish(c, c->vt->barrier(c));
}

/* ---- host helpers ---- */

void shoal_comm_shard(size_t total, int world, int rank, size_t *offset, size_t *count) {
    if (world <= 0 || rank < 0 || rank >= world) {
        *offset = 0, *count = 0;
        return;
    }
    size_t w = (size_t)world, r = (size_t)rank, base = total / w, extra = total % w;
    *count = base + (r < extra ? 1 : 0);
    *offset = r * base + (r < extra ? r : extra);
}

shoal_status shoal_comm_pick_device(int local_rank, int local_size, int device_count,
                                    int *device) {
    SHOAL_REQUIRE(device, SHOAL_ERR_INVALID_ARG, "pick_device: device is NULL");
    *device = -1;
    SHOAL_REQUIRE(local_size >= 1 && local_rank >= 0 && local_rank < local_size,
                  SHOAL_ERR_INVALID_ARG, "local rank %d is not in [0, %d)", local_rank,
                  local_size);
    SHOAL_REQUIRE(device_count >= 1, SHOAL_ERR_CUDA,
                  "no CUDA device visible (CUDA_VISIBLE_DEVICES=%s)",
                  getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES") : "(unset)");
    SHOAL_REQUIRE(local_size <= device_count, SHOAL_ERR_INVALID_ARG,
                  "%d ranks on this host but only %d visible CUDA devices "
                  "(CUDA_VISIBLE_DEVICES=%s); NCCL needs one GPU per rank: start fewer ranks per "
                  "node or expose more devices",
                  local_size, device_count,
                  getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES") : "(unset)");
    *device = local_rank;
    return SHOAL_OK;
}
