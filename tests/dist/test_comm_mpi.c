/* test_comm_mpi.c: every collective of the MPI backend checked against values computed locally,
 * nccl-tests style: each rank fills a known pattern that depends on (rank, index), and every
 * rank checks the exact result. Patterns are small multiples of 1/4, so float sums are exact
 * in any reduction order and == is the right comparison. Covers uneven, zero and large
 * (4 MB) counts, in-place forms, all dtypes MPI moves or reduces, broadcast from every root,
 * UNSUPPORTED bf16 reductions without breaking the communicator, and the bucketed all-reduce
 * (blocking and overlapped, marked in different orders on different ranks) equal to the plain
 * one bit for bit on non-exact data (2 ranks; within a few ulps for more, see same_as_plain).
 * Run by tests/dist/run_mpi.sh under `mpirun -np 2` (and by two_hosts.sh across two network
 * namespaces, with --expect-local-size 1). Label mpi.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/dtype.h"
#include "common/timeutil.h"
#include "test.h"
#include "worker/dist/comm.h"

static shoal_comm *C;
static int R, W;

static float pat(int rank, size_t i) { return (float)((int)(i % 1021) - 500 + 3 * rank) * 0.25f; }

static float sum_pat(size_t i) {
    float s = 0;
    for (int r = 0; r < W; r++) s += pat(r, i);
    return s;
}

static void check_allreduce_f32(size_t n, shoal_comm_op op) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = pat(R, i);
    CHECK_EQ_INT(shoal_comm_allreduce(C, x, n, SHOAL_DTYPE_F32, op), SHOAL_OK);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float want = op == SHOAL_COMM_AVG ? sum_pat(i) / (float)W : sum_pat(i);
        if (x[i] != want) bad++;
    }
    if (bad) fprintf(stderr, "  allreduce n=%zu op=%d: %zu wrong\n", n, (int)op, bad);
    CHECK_EQ_INT(bad, 0);
    free(x);
}

static void test_allreduce(void) {
    size_t sizes[] = {0, 1, 2, 7, 1023, 65537, 1000003 /* ~4 MB */};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        check_allreduce_f32(sizes[k], SHOAL_COMM_SUM);
        check_allreduce_f32(sizes[k], SHOAL_COMM_AVG);
    }
    /* f64, i32, i64 */
    double d[17];
    int32_t i32[17];
    int64_t i64[17];
    for (int i = 0; i < 17; i++) {
        d[i] = 0.5 * i + R;
        i32[i] = i * (R + 1) - 3;
        i64[i] = ((int64_t)1 << 40) * (R + 1) + i;
    }
    CHECK_EQ_INT(shoal_comm_allreduce(C, d, 17, SHOAL_DTYPE_F64, SHOAL_COMM_AVG), SHOAL_OK);
    CHECK_EQ_INT(shoal_comm_allreduce(C, i32, 17, SHOAL_DTYPE_I32, SHOAL_COMM_SUM), SHOAL_OK);
    CHECK_EQ_INT(shoal_comm_allreduce(C, i64, 17, SHOAL_DTYPE_I64, SHOAL_COMM_SUM), SHOAL_OK);
    int64_t rsum = (int64_t)W * (W - 1) / 2, r1sum = rsum + W;
    for (int i = 0; i < 17; i++) {
        CHECK(d[i] == (0.5 * i * W + (double)rsum) / W);
        CHECK_EQ_INT(i32[i], i * r1sum - 3 * W);
        CHECK_EQ_INT(i64[i], ((int64_t)1 << 40) * r1sum + (int64_t)i * W);
    }
}

/* counts for a layout id: uneven, one rank with zero, all zero, large */
static void layout(int id, size_t *counts) {
    for (int r = 0; r < W; r++) {
        switch (id) {
        case 0: counts[r] = 5 + 3 * (size_t)r; break;
        case 1: counts[r] = r == 0 ? 0 : 9; break;
        case 2: counts[r] = 0; break;
        case 3: counts[r] = 300001 + (size_t)r; break;
        default: counts[r] = 64; break; /* equal */
        }
    }
}

static void test_reduce_scatter(void) {
    size_t *counts = calloc((size_t)W, sizeof *counts);
    for (int id = 0; id < 5; id++) {
        layout(id, counts);
        size_t total = 0, off = 0;
        for (int r = 0; r < W; r++) {
            if (r < R) off += counts[r];
            total += counts[r];
        }
        size_t mine = counts[R];
        for (int inplace = 0; inplace < 2; inplace++) {
            for (int op = 0; op < 2; op++) {
                float *send = malloc((total + 1) * sizeof *send);
                float *recv = malloc((mine + 1) * sizeof *recv);
                for (size_t i = 0; i < total; i++) send[i] = pat(R, i);
                float *out = inplace ? send + off : recv;
                CHECK_EQ_INT(shoal_comm_reduce_scatter(C, send, out, counts, SHOAL_DTYPE_F32,
                                                       (shoal_comm_op)op),
                             SHOAL_OK);
                size_t bad = 0;
                for (size_t i = 0; i < mine; i++) {
                    float want = sum_pat(off + i);
                    if (op == SHOAL_COMM_AVG) want /= (float)W;
                    if (out[i] != want) bad++;
                }
                if (bad)
                    fprintf(stderr, "  reduce_scatter layout %d inplace %d op %d: %zu wrong\n", id,
                            inplace, op, bad);
                CHECK_EQ_INT(bad, 0);
                free(send), free(recv);
            }
        }
    }
    free(counts);
}

static void test_all_gather(void) {
    size_t *counts = calloc((size_t)W, sizeof *counts);
    for (int id = 0; id < 5; id++) {
        layout(id, counts);
        size_t total = 0, off = 0;
        for (int r = 0; r < W; r++) {
            if (r < R) off += counts[r];
            total += counts[r];
        }
        for (int inplace = 0; inplace < 2; inplace++) {
            float *recv = malloc((total + 1) * sizeof *recv);
            float *send = malloc((counts[R] + 1) * sizeof *send);
            for (size_t i = 0; i < total; i++) recv[i] = -1e9f; /* poison */
            float *src = inplace ? recv + off : send;
            for (size_t i = 0; i < counts[R]; i++) src[i] = pat(R, off + i);
            CHECK_EQ_INT(shoal_comm_all_gather(C, src, recv, counts, SHOAL_DTYPE_F32), SHOAL_OK);
            size_t bad = 0, pos = 0;
            for (int r = 0; r < W; r++)
                for (size_t i = 0; i < counts[r]; i++, pos++)
                    if (recv[pos] != pat(r, pos)) bad++;
            if (bad) fprintf(stderr, "  all_gather layout %d inplace %d: %zu wrong\n", id, inplace, bad);
            CHECK_EQ_INT(bad, 0);
            free(recv), free(send);
        }
    }
    /* bf16 blocks move bit-exactly (gathering ZeRO-1 shards of bf16 weights) */
    for (int r = 0; r < W; r++) counts[r] = 3;
    uint16_t *g = calloc(3 * (size_t)W, sizeof *g), mine[3];
    for (int i = 0; i < 3; i++) mine[i] = shoal_f32_to_bf16(pat(R, (size_t)i) + 0.125f);
    CHECK_EQ_INT(shoal_comm_all_gather(C, mine, g, counts, SHOAL_DTYPE_BF16), SHOAL_OK);
    for (int r = 0; r < W; r++)
        for (int i = 0; i < 3; i++)
            CHECK(g[r * 3 + i] == shoal_f32_to_bf16(pat(r, (size_t)i) + 0.125f));
    free(g);
    free(counts);
}

static void test_broadcast(void) {
    for (int root = 0; root < W; root++) {
        size_t n = 250007;
        float *x = malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++) x[i] = R == root ? pat(root, i) : -1e9f;
        CHECK_EQ_INT(shoal_comm_broadcast(C, x, n, SHOAL_DTYPE_F32, root), SHOAL_OK);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            if (x[i] != pat(root, i)) bad++;
        CHECK_EQ_INT(bad, 0);
        free(x);
        unsigned char bytes[33];
        for (int i = 0; i < 33; i++) bytes[i] = R == root ? (unsigned char)(i * 7 + root) : 0;
        CHECK_EQ_INT(shoal_comm_broadcast(C, bytes, 33, SHOAL_DTYPE_U8, root), SHOAL_OK);
        for (int i = 0; i < 33; i++) CHECK(bytes[i] == (unsigned char)(i * 7 + root));
    }
    CHECK_EQ_INT(shoal_comm_broadcast(C, NULL, 0, SHOAL_DTYPE_F32, 0), SHOAL_OK);
    CHECK_EQ_INT(shoal_comm_broadcast(C, &R, 1, SHOAL_DTYPE_I32, W), SHOAL_ERR_INVALID_ARG);
}

static void test_barrier_and_unsupported(void) {
    CHECK_EQ_INT(shoal_comm_barrier(C), SHOAL_OK);
    uint16_t h[4] = {0};
    /* MPI has no bf16 sum: refused on every rank, and the communicator stays usable */
    CHECK_EQ_INT(shoal_comm_allreduce(C, h, 4, SHOAL_DTYPE_BF16, SHOAL_COMM_SUM),
                 SHOAL_ERR_UNSUPPORTED);
    CHECK_EQ_INT(shoal_comm_barrier(C), SHOAL_OK);
    check_allreduce_f32(5, SHOAL_COMM_SUM);
}

/* Non-exact data: the bucketed result must still equal the plain one bit for bit. */
static void fill_noise(float *x, size_t n, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 3.1f;
    }
}

/* Two ranks: a+b is commutative, so bucketing cannot change a bit. More ranks: Open MPI picks
 * its all-reduce algorithm (and so the order of additions) by message size, so buckets may
 * round differently; then equal within a few ulps. */
static int same_as_plain(const float *b, const float *plain, size_t n) {
    if (W == 2) return memcmp(b, plain, n * sizeof *b) == 0;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (fabsf(b[i] - plain[i]) > 1e-6f * (float)W * (1.0f + fabsf(plain[i]))) bad++;
    return bad == 0;
}

static void test_bucketed(void) {
    size_t n = 1000003;
    float *plain = malloc(n * sizeof *plain), *b = malloc(n * sizeof *b);
    /* Small buckets cost one round trip each: across the veth of two_hosts.sh that is ~5-10 ms
     * (Open MPI over TCP between namespaces), so they run only when all ranks share a host. */
    size_t buckets[] = {4097, 65536, 250001, 1000003, 2000000};
    size_t first = shoal_comm_local_size(C) == W ? 0 : 1;
    for (int op = 0; op < 2; op++) {
        fill_noise(plain, n, (uint32_t)R + 1);
        CHECK_EQ_INT(shoal_comm_allreduce(C, plain, n, SHOAL_DTYPE_F32, (shoal_comm_op)op),
                     SHOAL_OK);
        for (size_t k = first; k < sizeof buckets / sizeof *buckets; k++) {
            fill_noise(b, n, (uint32_t)R + 1);
            CHECK_EQ_INT(shoal_comm_allreduce_bucketed(C, b, n, SHOAL_DTYPE_F32,
                                                       (shoal_comm_op)op, buckets[k]),
                         SHOAL_OK);
            CHECK(same_as_plain(b, plain, n));

            /* overlapped: "backward" marks ranges of odd sizes; rank 0 from the end, the others
             * from the start, so the bucketer must impose one start order by itself */
            fill_noise(b, n, (uint32_t)R + 1);
            shoal_comm_bucketer *bk = NULL;
            CHECK_EQ_INT(shoal_comm_bucketer_init(&bk, C, b, n, SHOAL_DTYPE_F32,
                                                  (shoal_comm_op)op, buckets[k]),
                         SHOAL_OK);
            if (!bk) continue;
            for (int step = 0; step < 2; step++) {
                if (step == 1) fill_noise(b, n, (uint32_t)R + 1);
                size_t chunk = 77777;
                if (R == 0) {
                    for (size_t end = n; end > 0;) {
                        size_t len = end < chunk ? end : chunk;
                        CHECK_EQ_INT(shoal_comm_bucketer_mark_ready(bk, end - len, len), SHOAL_OK);
                        end -= len;
                    }
                } else {
                    for (size_t start = 0; start < n - 5; start += chunk) {
                        size_t len = n - 5 - start < chunk ? n - 5 - start : chunk;
                        CHECK_EQ_INT(shoal_comm_bucketer_mark_ready(bk, start, len), SHOAL_OK);
                    }
                    /* the last 5 elements are left for finish() to start */
                }
                CHECK_EQ_INT(shoal_comm_bucketer_finish(bk), SHOAL_OK);
                CHECK(same_as_plain(b, plain, n));
            }
            shoal_comm_bucketer_free(bk);
        }
    }
    free(plain), free(b);
}

#define TIMED(fn)                                                                                  \
    do {                                                                                           \
        double t0_ = shoal_now_s();                                                                \
        TEST_RUN(fn);                                                                              \
        if (R == 0) fprintf(stderr, "       %s took %.2f s\n", #fn, shoal_now_s() - t0_);         \
    } while (0)

int main(int argc, char **argv) {
    int expect_local = -1;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--expect-local-size") == 0) expect_local = atoi(argv[i + 1]);
    shoal_comm_options o = {.backend = SHOAL_COMM_MPI, .timeout_ms = 20000};
    if (!shoal_comm_backend_built(SHOAL_COMM_MPI)) TEST_SKIP("MPI backend not built");
    if (shoal_comm_init(&C, &o) != SHOAL_OK) {
        fprintf(stderr, "cannot start the MPI communicator\n");
        return 1;
    }
    R = shoal_comm_rank(C), W = shoal_comm_world_size(C);
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    fprintf(stderr, "rank %d of %d on %s (local %d of %d)\n", R, W, host, shoal_comm_local_rank(C),
            shoal_comm_local_size(C));
    if (W < 2) fprintf(stderr, "warning: world size %d, run under mpirun -np 2\n", W);
    CHECK(shoal_comm_backend_of(C) == SHOAL_COMM_MPI);
    if (expect_local > 0) CHECK_EQ_INT(shoal_comm_local_size(C), expect_local);
    TIMED(test_allreduce);
    TIMED(test_reduce_scatter);
    TIMED(test_all_gather);
    TIMED(test_broadcast);
    TIMED(test_barrier_and_unsupported);
    TIMED(test_bucketed);
    shoal_comm_free(C);
    return TEST_EXIT();
}
