/* comm_bucket.c: bucketed all-reduce of one flat gradient buffer, blocking or overlapped with
 * backward (comm.h).
 *
 * Why this order: backward produces gradients from the last layer to the first, i.e. from the
 * end of the flat buffer to its start, so buckets are started from last to first. A bucket
 * starts only when it is complete *and* every later bucket has started: MPI requires all ranks
 * to start non-blocking collectives on a communicator in the same order, and this rule makes the
 * order independent of how each rank happens to mark ranges. Each bucket is an element-wise
 * all-reduce of a sub-range, so the result equals one all-reduce of the whole buffer bit for bit.
 * Tested by tests/dist/test_comm_unit.c (bucket math and marking rules on the single backend)
 * and tests/dist/test_comm_mpi.c (bit-for-bit against the plain all-reduce, 2 ranks).
 */
#define SHOAL_LOG_SUBSYS "dist"
#include <stdlib.h>
#include <string.h>

#include "worker/dist/comm_impl.h"

struct shoal_comm_bucketer {
    shoal_comm *c;
    char *buf;
    size_t count, bucket_elems, nbuckets, esize;
    shoal_dtype dt;
    shoal_comm_op op;
    size_t *ready;     /* (nbuckets) elements marked final in each bucket */
    unsigned char *reqs; /* (nbuckets * req_size) backend requests */
    size_t next;       /* buckets [next, nbuckets) have started; counts down from nbuckets */
    size_t started;
};

size_t shoal_comm_bucket_count(size_t count, size_t bucket_elems) {
    if (bucket_elems == 0) return 0;
    return count / bucket_elems + (count % bucket_elems ? 1 : 0);
}

static size_t bucket_len(const shoal_comm_bucketer *b, size_t i) {
    size_t start = i * b->bucket_elems;
    return b->count - start < b->bucket_elems ? b->count - start : b->bucket_elems;
}

shoal_status shoal_comm_allreduce_bucketed(shoal_comm *c, void *buf, size_t count, shoal_dtype dt,
                                           shoal_comm_op op, size_t bucket_elems) {
    SHOAL_REQUIRE(bucket_elems > 0, SHOAL_ERR_INVALID_ARG, "bucketed allreduce: bucket size 0");
    SHOAL_REQUIRE(buf || count == 0, SHOAL_ERR_INVALID_ARG,
                  "bucketed allreduce: NULL buffer for %zu elements", count);
    size_t n = shoal_comm_bucket_count(count, bucket_elems);
    size_t es = shoal_dtype_size(dt);
    SHOAL_REQUIRE(es > 0, SHOAL_ERR_INVALID_ARG, "bucketed allreduce: invalid dtype %d", (int)dt);
    for (size_t i = n; i-- > 0;) {
        size_t start = i * bucket_elems, len = count - start < bucket_elems ? count - start
                                                                             : bucket_elems;
        SHOAL_CHECK(shoal_comm_allreduce(c, (char *)buf + start * es, len, dt, op));
    }
    return SHOAL_OK;
}

shoal_status shoal_comm_bucketer_init(shoal_comm_bucketer **out, shoal_comm *c, void *buf,
                                      size_t count, shoal_dtype dt, shoal_comm_op op,
                                      size_t bucket_elems) {
    shoal_status st = SHOAL_OK;
    SHOAL_REQUIRE(out, SHOAL_ERR_INVALID_ARG, "bucketer: out is NULL");
    *out = NULL;
    SHOAL_REQUIRE(c && c->vt, SHOAL_ERR_INVALID_ARG, "bucketer: NULL communicator");
    SHOAL_REQUIRE(bucket_elems > 0, SHOAL_ERR_INVALID_ARG, "bucketer: bucket size 0");
    SHOAL_REQUIRE(buf || count == 0, SHOAL_ERR_INVALID_ARG, "bucketer: NULL buffer for %zu "
                  "elements", count);
    SHOAL_REQUIRE((unsigned)dt < SHOAL_DTYPE_COUNT && (c->vt->reduce_dtypes & SHOAL_DTYPE_BIT(dt)),
                  SHOAL_ERR_UNSUPPORTED, "bucketer: backend %s cannot reduce dtype %s",
                  c->vt->name, shoal_dtype_name(dt));
    SHOAL_REQUIRE((unsigned)op < SHOAL_COMM_OP_COUNT, SHOAL_ERR_INVALID_ARG,
                  "bucketer: invalid op %d", (int)op);
    shoal_comm_bucketer *b = calloc(1, sizeof *b);
    SHOAL_REQUIRE(b, SHOAL_ERR_NOMEM, "bucketer: out of memory");
    b->c = c, b->buf = buf, b->count = count, b->bucket_elems = bucket_elems, b->dt = dt,
    b->op = op, b->esize = shoal_dtype_size(dt);
    b->nbuckets = shoal_comm_bucket_count(count, bucket_elems);
    b->next = b->nbuckets;
    if (b->nbuckets) {
        b->ready = calloc(b->nbuckets, sizeof *b->ready);
        SHOAL_REQUIRE_GOTO(b->nbuckets <= SIZE_MAX / c->vt->req_size, SHOAL_ERR_LIMIT,
                           "bucketer: %zu buckets is too many", b->nbuckets);
        b->reqs = calloc(b->nbuckets, c->vt->req_size);
        SHOAL_REQUIRE_GOTO(b->ready && b->reqs, SHOAL_ERR_NOMEM, "bucketer: out of memory for "
                           "%zu buckets", b->nbuckets);
    }
    *out = b;
    return SHOAL_OK;
cleanup:
    free(b->ready);
    free(b->reqs);
    free(b);
    return st;
}

/* Start every bucket that may start now (complete, and all later ones started). */
static shoal_status start_ready(shoal_comm_bucketer *b, int all) {
    while (b->next > 0) {
        size_t i = b->next - 1;
        if (!all && b->ready[i] < bucket_len(b, i)) break;
        shoal_comm *c = b->c;
        /* Same checks as the blocking call; a broken communicator fails here. */
        SHOAL_REQUIRE(!c->broken, SHOAL_ERR_COMM, "bucketer: the communicator is broken");
        int lost = shoal_watchdog_lost(c->wd);
        SHOAL_REQUIRE(lost < 0, SHOAL_ERR_COMM, "bucketer: lost rank %d (pid %d on %s)", lost,
                      shoal_watchdog_pid(c->wd, lost), shoal_watchdog_host(c->wd, lost));
        shoal_status st = c->vt->iallreduce(c, b->buf + i * b->bucket_elems * b->esize,
                                            bucket_len(b, i), b->dt, b->op,
                                            b->reqs + i * c->vt->req_size);
        if (st != SHOAL_OK) {
            c->broken = 1;
            return st;
        }
        b->next = i;
        b->started++;
    }
    return SHOAL_OK;
}

shoal_status shoal_comm_bucketer_mark_ready(shoal_comm_bucketer *b, size_t offset, size_t n) {
    SHOAL_REQUIRE(b, SHOAL_ERR_INVALID_ARG, "bucketer: NULL");
    SHOAL_REQUIRE(offset <= b->count && n <= b->count - offset, SHOAL_ERR_INVALID_ARG,
                  "bucketer: range [%zu, %zu+%zu) is outside the %zu-element buffer", offset,
                  offset, n, b->count);
    /* Check the whole range first so that a bad call changes nothing. */
    for (size_t pos = offset; pos < offset + n;) {
        size_t i = pos / b->bucket_elems, end = (i + 1) * b->bucket_elems;
        size_t take = (end < offset + n ? end : offset + n) - pos;
        SHOAL_REQUIRE(b->ready[i] + take <= bucket_len(b, i) && i < b->next,
                      SHOAL_ERR_INVALID_ARG,
                      "bucketer: elements of bucket %zu marked twice in one step", i);
        pos += take;
    }
    for (size_t pos = offset; pos < offset + n;) {
        size_t i = pos / b->bucket_elems, end = (i + 1) * b->bucket_elems;
        size_t take = (end < offset + n ? end : offset + n) - pos;
        b->ready[i] += take;
        pos += take;
    }
    SHOAL_CHECK(start_ready(b, 0));
    /* Open MPI progresses non-blocking collectives only inside MPI calls: poke the started
     * ones so they move while backward computes. */
    if (b->c->vt->progress)
        for (size_t i = b->nbuckets; i-- > b->next;)
            b->c->vt->progress(b->c, b->reqs + i * b->c->vt->req_size);
    return SHOAL_OK;
}

static shoal_status wait_all(shoal_comm_bucketer *b) {
    shoal_status first = SHOAL_OK;
    for (size_t i = b->nbuckets; i-- > b->next;) {
        shoal_comm *c = b->c;
        void *req = b->reqs + i * c->vt->req_size;
        shoal_status st = c->vt->wait(c, req);
        if (st != SHOAL_OK) {
            c->broken = 1;
            if (first == SHOAL_OK) first = st;
        }
        memset(req, 0, c->vt->req_size);
    }
    return first;
}

shoal_status shoal_comm_bucketer_finish(shoal_comm_bucketer *b) {
    SHOAL_REQUIRE(b, SHOAL_ERR_INVALID_ARG, "bucketer: NULL");
    shoal_status st = start_ready(b, 1);
    shoal_status wst = wait_all(b);
    if (st == SHOAL_OK) st = wst;
    if (b->nbuckets) memset(b->ready, 0, b->nbuckets * sizeof *b->ready);
    b->next = b->nbuckets;
    b->started = 0;
    return st;
}

size_t shoal_comm_bucketer_started(const shoal_comm_bucketer *b) { return b ? b->started : 0; }

void shoal_comm_bucketer_free(shoal_comm_bucketer *b) {
    if (!b) return;
    (void)wait_all(b);
    free(b->ready);
    free(b->reqs);
    free(b);
}
