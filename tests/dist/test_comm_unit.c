/* test_comm_unit.c: the host-side logic of worker/dist without MPI or a GPU: backend names and
 * choice (never a silent fallback), shard and bucket arithmetic, device choice by local rank,
 * every argument check, the single backend's collectives, and the bucketer's marking rules.
 * Label unit; runs under ASan/UBSan too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "test.h"
#include "worker/dist/comm.h"
#include "worker/dist/watchdog.h"

static void test_backend_names(void) {
    shoal_comm_backend b;
    for (int i = 0; i < SHOAL_COMM_BACKEND_COUNT; i++) {
        CHECK_EQ_INT(shoal_comm_backend_parse(shoal_comm_backend_name((shoal_comm_backend)i), &b),
                     SHOAL_OK);
        CHECK_EQ_INT(b, i);
    }
    CHECK_EQ_INT(shoal_comm_backend_parse("gloo", &b), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_comm_backend_parse(NULL, &b), SHOAL_ERR_INVALID_ARG);
    CHECK_STR(shoal_comm_backend_name((shoal_comm_backend)42), "invalid");
    CHECK(shoal_comm_backend_built(SHOAL_COMM_SINGLE));
    CHECK(shoal_comm_backend_built(SHOAL_COMM_AUTO));
    CHECK(!shoal_comm_backend_built((shoal_comm_backend)42));
}

static void test_shard(void) {
    /* Blocks tile [0, total) in rank order; sizes differ by at most one. */
    size_t totals[] = {0, 1, 2, 7, 10, 1000003};
    int worlds[] = {1, 2, 3, 4, 7, 16};
    for (size_t t = 0; t < sizeof totals / sizeof *totals; t++) {
        for (size_t w = 0; w < sizeof worlds / sizeof *worlds; w++) {
            size_t expect_off = 0, minc = SIZE_MAX, maxc = 0;
            for (int r = 0; r < worlds[w]; r++) {
                size_t off, cnt;
                shoal_comm_shard(totals[t], worlds[w], r, &off, &cnt);
                CHECK_EQ_INT(off, expect_off);
                expect_off += cnt;
                if (cnt < minc) minc = cnt;
                if (cnt > maxc) maxc = cnt;
            }
            CHECK_EQ_INT(expect_off, totals[t]);
            CHECK(maxc - minc <= 1);
        }
    }
    size_t off, cnt;
    shoal_comm_shard(10, 3, 0, &off, &cnt);
    CHECK_EQ_INT(cnt, 4);
    shoal_comm_shard(10, 3, 2, &off, &cnt);
    CHECK_EQ_INT(off, 7);
    CHECK_EQ_INT(cnt, 3);
    shoal_comm_shard(10, 3, 3, &off, &cnt); /* out of range: empty */
    CHECK_EQ_INT(cnt, 0);
    shoal_comm_shard(10, 0, 0, &off, &cnt);
    CHECK_EQ_INT(cnt, 0);
}

static void test_pick_device(void) {
    int d = 99;
    CHECK_EQ_INT(shoal_comm_pick_device(0, 1, 1, &d), SHOAL_OK);
    CHECK_EQ_INT(d, 0);
    CHECK_EQ_INT(shoal_comm_pick_device(3, 4, 8, &d), SHOAL_OK);
    CHECK_EQ_INT(d, 3);
    CHECK_EQ_INT(shoal_comm_pick_device(1, 2, 2, &d), SHOAL_OK);
    CHECK_EQ_INT(d, 1);
    /* more ranks on the host than visible GPUs: refused, not shared */
    CHECK_EQ_INT(shoal_comm_pick_device(0, 4, 2, &d), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(d, -1);
    CHECK_EQ_INT(shoal_comm_pick_device(0, 1, 0, &d), SHOAL_ERR_CUDA);
    CHECK_EQ_INT(shoal_comm_pick_device(2, 2, 4, &d), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_comm_pick_device(-1, 2, 4, &d), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_comm_pick_device(0, 0, 4, &d), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_comm_pick_device(0, 1, 1, NULL), SHOAL_ERR_INVALID_ARG);
}

static void test_bucket_count(void) {
    CHECK_EQ_INT(shoal_comm_bucket_count(0, 4), 0);
    CHECK_EQ_INT(shoal_comm_bucket_count(1, 4), 1);
    CHECK_EQ_INT(shoal_comm_bucket_count(4, 4), 1);
    CHECK_EQ_INT(shoal_comm_bucket_count(5, 4), 2);
    CHECK_EQ_INT(shoal_comm_bucket_count(1000003, 1000), 1001);
    CHECK_EQ_INT(shoal_comm_bucket_count(10, 0), 0);
}

static void test_init_choice(void) {
    shoal_comm *c = (shoal_comm *)1;
    /* AUTO without a launcher in the environment is SINGLE. */
    unsetenv("OMPI_COMM_WORLD_SIZE"), unsetenv("PMIX_RANK"), unsetenv("PMI_SIZE"),
        unsetenv("PMI_RANK");
    CHECK_EQ_INT(shoal_comm_init(&c, NULL), SHOAL_OK);
    CHECK_EQ_INT(shoal_comm_backend_of(c), SHOAL_COMM_SINGLE);
    CHECK_EQ_INT(shoal_comm_world_size(c), 1);
    CHECK_EQ_INT(shoal_comm_rank(c), 0);
    CHECK_EQ_INT(shoal_comm_local_size(c), 1);
    CHECK_EQ_INT(shoal_comm_device(c), -1);
    CHECK(!shoal_comm_on_device(c));
    shoal_comm_free(c);

    shoal_comm_options o = {.backend = (shoal_comm_backend)9};
    c = (shoal_comm *)1;
    CHECK_EQ_INT(shoal_comm_init(&c, &o), SHOAL_ERR_INVALID_ARG);
    CHECK(c == NULL);
    o = (shoal_comm_options){.backend = SHOAL_COMM_SINGLE, .timeout_ms = 86400001};
    CHECK_EQ_INT(shoal_comm_init(&c, &o), SHOAL_ERR_LIMIT);
    CHECK_EQ_INT(shoal_comm_init(NULL, NULL), SHOAL_ERR_INVALID_ARG);

    /* NCCL asked for: either it starts on a real GPU or init fails; never a host fallback. */
    o = (shoal_comm_options){.backend = SHOAL_COMM_NCCL};
    shoal_status st = shoal_comm_init(&c, &o);
    if (!shoal_comm_backend_built(SHOAL_COMM_NCCL)) {
        CHECK_EQ_INT(st, SHOAL_ERR_UNSUPPORTED);
        CHECK(c == NULL);
    } else if (st == SHOAL_OK) {
        CHECK_EQ_INT(shoal_comm_backend_of(c), SHOAL_COMM_NCCL);
        CHECK(shoal_comm_on_device(c));
        shoal_comm_free(c);
    } else {
        CHECK(st == SHOAL_ERR_CUDA || st == SHOAL_ERR_INVALID_ARG);
        CHECK(c == NULL);
    }
    /* AUTO under a launcher means MPI: an error when MPI is not built, never single. */
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    if (!shoal_comm_backend_built(SHOAL_COMM_MPI)) {
        CHECK_EQ_INT(shoal_comm_init(&c, NULL), SHOAL_ERR_UNSUPPORTED);
        CHECK(c == NULL);
    }
    unsetenv("OMPI_COMM_WORLD_SIZE");
}

static shoal_comm *single(void) {
    shoal_comm *c = NULL;
    shoal_comm_options o = {.backend = SHOAL_COMM_SINGLE};
    if (shoal_comm_init(&c, &o) != SHOAL_OK) {
        fprintf(stderr, "cannot start the single backend\n");
        exit(1);
    }
    return c;
}

static void test_single_collectives(void) {
    shoal_comm *c = single();
    float x[5] = {1, 2, 3, 4.5f, -7};
    float y[5];
    CHECK_EQ_INT(shoal_comm_allreduce(c, x, 5, SHOAL_DTYPE_F32, SHOAL_COMM_SUM), SHOAL_OK);
    CHECK(x[3] == 4.5f);
    CHECK_EQ_INT(shoal_comm_allreduce(c, x, 5, SHOAL_DTYPE_F32, SHOAL_COMM_AVG), SHOAL_OK);
    CHECK(x[4] == -7.0f);
    size_t counts[1] = {5};
    memset(y, 0, sizeof y);
    CHECK_EQ_INT(shoal_comm_reduce_scatter(c, x, y, counts, SHOAL_DTYPE_F32, SHOAL_COMM_SUM),
                 SHOAL_OK);
    CHECK(memcmp(x, y, sizeof x) == 0);
    memset(y, 0, sizeof y);
    CHECK_EQ_INT(shoal_comm_all_gather(c, x, y, counts, SHOAL_DTYPE_F32), SHOAL_OK);
    CHECK(memcmp(x, y, sizeof x) == 0);
    /* in place forms */
    CHECK_EQ_INT(shoal_comm_all_gather(c, y, y, counts, SHOAL_DTYPE_F32), SHOAL_OK);
    CHECK_EQ_INT(shoal_comm_reduce_scatter(c, y, y, counts, SHOAL_DTYPE_F32, SHOAL_COMM_SUM),
                 SHOAL_OK);
    CHECK(memcmp(x, y, sizeof x) == 0);
    CHECK_EQ_INT(shoal_comm_broadcast(c, x, 5, SHOAL_DTYPE_F32, 0), SHOAL_OK);
    CHECK_EQ_INT(shoal_comm_barrier(c), SHOAL_OK);
    uint16_t h[3] = {1, 2, 3};
    CHECK_EQ_INT(shoal_comm_broadcast(c, h, 3, SHOAL_DTYPE_BF16, 0), SHOAL_OK);
    /* zero counts with NULL buffers are fine */
    CHECK_EQ_INT(shoal_comm_allreduce(c, NULL, 0, SHOAL_DTYPE_F32, SHOAL_COMM_SUM), SHOAL_OK);
    size_t zero[1] = {0};
    CHECK_EQ_INT(shoal_comm_reduce_scatter(c, NULL, NULL, zero, SHOAL_DTYPE_F32, SHOAL_COMM_SUM),
                 SHOAL_OK);
    CHECK_EQ_INT(shoal_comm_all_gather(c, NULL, NULL, zero, SHOAL_DTYPE_F32), SHOAL_OK);
    shoal_comm_free(c);
}

static void test_argument_checks(void) {
    shoal_comm *c = single();
    float x[8] = {0};
    size_t counts[1] = {8};
    CHECK_EQ_INT(shoal_comm_allreduce(NULL, x, 8, SHOAL_DTYPE_F32, SHOAL_COMM_SUM),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_comm_allreduce(c, NULL, 8, SHOAL_DTYPE_F32, SHOAL_COMM_SUM),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_comm_allreduce(c, x, 8, SHOAL_DTYPE_INVALID, SHOAL_COMM_SUM),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_comm_allreduce(c, x, 8, (shoal_dtype)77, SHOAL_COMM_SUM),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_comm_allreduce(c, x, 8, SHOAL_DTYPE_F32, (shoal_comm_op)5),
                 SHOAL_ERR_INVALID_ARG);
    /* host backends do not reduce bf16: said so, not converted silently */
    CHECK_EQ_INT(shoal_comm_allreduce(c, x, 8, SHOAL_DTYPE_BF16, SHOAL_COMM_SUM),
                 SHOAL_ERR_UNSUPPORTED);
    CHECK_EQ_INT(shoal_comm_allreduce(c, x, 8, SHOAL_DTYPE_I32, SHOAL_COMM_AVG),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_comm_allreduce(c, x, 8, SHOAL_DTYPE_BOOL, SHOAL_COMM_SUM),
                 SHOAL_ERR_UNSUPPORTED);
    uint64_t lim = shoal_limit(SHOAL_LIMIT_TENSOR_ELEMENTS);
    CHECK_EQ_INT(shoal_comm_allreduce(c, x, (size_t)lim + 1, SHOAL_DTYPE_F32, SHOAL_COMM_SUM),
                 SHOAL_ERR_LIMIT);
    CHECK_EQ_INT(shoal_comm_broadcast(c, x, 8, SHOAL_DTYPE_F32, 1), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_comm_broadcast(c, x, 8, SHOAL_DTYPE_F32, -1), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_comm_reduce_scatter(c, x, x, NULL, SHOAL_DTYPE_F32, SHOAL_COMM_SUM),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_comm_reduce_scatter(c, NULL, x, counts, SHOAL_DTYPE_F32, SHOAL_COMM_SUM),
                 SHOAL_ERR_INVALID_ARG);
    /* partial overlap that is not the in-place form */
    size_t four[1] = {4};
    CHECK_EQ_INT(shoal_comm_reduce_scatter(c, x, x + 2, four, SHOAL_DTYPE_F32, SHOAL_COMM_SUM),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_comm_all_gather(c, x + 2, x, four, SHOAL_DTYPE_F32), SHOAL_ERR_INVALID_ARG);
    size_t huge[1] = {SIZE_MAX / 2};
    CHECK_EQ_INT(shoal_comm_all_gather(c, x, x + 1, huge, SHOAL_DTYPE_F32), SHOAL_ERR_LIMIT);
    CHECK_EQ_INT(shoal_comm_set_timeout(c, 86400001), SHOAL_ERR_LIMIT);
    CHECK_EQ_INT(shoal_comm_set_timeout(c, 5), SHOAL_OK);
    CHECK_EQ_INT(shoal_comm_set_timeout(c, 0), SHOAL_OK);
    CHECK_EQ_INT(shoal_comm_set_timeout(NULL, 5), SHOAL_ERR_INVALID_ARG);
    /* argument errors do not break the communicator */
    CHECK_EQ_INT(shoal_comm_allreduce(c, x, 8, SHOAL_DTYPE_F32, SHOAL_COMM_SUM), SHOAL_OK);
    CHECK_EQ_INT(shoal_comm_allreduce_bucketed(c, x, 8, SHOAL_DTYPE_F32, SHOAL_COMM_SUM, 0),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_comm_allreduce_bucketed(c, x, 8, SHOAL_DTYPE_F32, SHOAL_COMM_SUM, 3),
                 SHOAL_OK);
    shoal_comm_set_compute_stream(c, NULL); /* host backend: ignored */
    shoal_comm_free(c);
    shoal_comm_free(NULL);
}

static void test_bucketer_rules(void) {
    shoal_comm *c = single();
    float g[10] = {0};
    shoal_comm_bucketer *b = NULL;
    CHECK_EQ_INT(shoal_comm_bucketer_init(&b, c, g, 10, SHOAL_DTYPE_F32, SHOAL_COMM_SUM, 0),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_comm_bucketer_init(&b, c, g, 10, SHOAL_DTYPE_BF16, SHOAL_COMM_SUM, 4),
                 SHOAL_ERR_UNSUPPORTED);
    CHECK_EQ_INT(shoal_comm_bucketer_init(&b, c, NULL, 10, SHOAL_DTYPE_F32, SHOAL_COMM_SUM, 4),
                 SHOAL_ERR_INVALID_ARG);
    /* buckets [0,4) [4,8) [8,10) start last to first */
    CHECK_EQ_INT(shoal_comm_bucketer_init(&b, c, g, 10, SHOAL_DTYPE_F32, SHOAL_COMM_SUM, 4),
                 SHOAL_OK);
    for (int step = 0; step < 2; step++) {
        CHECK_EQ_INT(shoal_comm_bucketer_mark_ready(b, 0, 4), SHOAL_OK); /* bucket 0 complete */
        CHECK_EQ_INT(shoal_comm_bucketer_started(b), 0); /* but later buckets have not started */
        CHECK_EQ_INT(shoal_comm_bucketer_mark_ready(b, 9, 1), SHOAL_OK);
        CHECK_EQ_INT(shoal_comm_bucketer_started(b), 0);
        CHECK_EQ_INT(shoal_comm_bucketer_mark_ready(b, 8, 1), SHOAL_OK); /* bucket 2 complete */
        CHECK_EQ_INT(shoal_comm_bucketer_started(b), 1);
        CHECK_EQ_INT(shoal_comm_bucketer_mark_ready(b, 8, 1), SHOAL_ERR_INVALID_ARG); /* twice */
        CHECK_EQ_INT(shoal_comm_bucketer_mark_ready(b, 5, 3), SHOAL_OK);
        CHECK_EQ_INT(shoal_comm_bucketer_started(b), 1);
        /* a range spanning buckets 1 and 0 where bucket 0 is already full: refused whole */
        CHECK_EQ_INT(shoal_comm_bucketer_mark_ready(b, 3, 3), SHOAL_ERR_INVALID_ARG);
        CHECK_EQ_INT(shoal_comm_bucketer_mark_ready(b, 4, 1), SHOAL_OK); /* 1, then 0, start */
        CHECK_EQ_INT(shoal_comm_bucketer_started(b), 3);
        CHECK_EQ_INT(shoal_comm_bucketer_mark_ready(b, 10, 1), SHOAL_ERR_INVALID_ARG);
        CHECK_EQ_INT(shoal_comm_bucketer_mark_ready(b, 11, 0), SHOAL_ERR_INVALID_ARG);
        CHECK_EQ_INT(shoal_comm_bucketer_mark_ready(b, 10, 0), SHOAL_OK);
        CHECK_EQ_INT(shoal_comm_bucketer_finish(b), SHOAL_OK);
        CHECK_EQ_INT(shoal_comm_bucketer_started(b), 0);
    }
    /* finish with nothing marked starts every bucket */
    CHECK_EQ_INT(shoal_comm_bucketer_mark_ready(b, 2, 1), SHOAL_OK);
    CHECK_EQ_INT(shoal_comm_bucketer_finish(b), SHOAL_OK);
    shoal_comm_bucketer_free(b);
    shoal_comm_bucketer_free(NULL);
    /* empty buffer */
    CHECK_EQ_INT(shoal_comm_bucketer_init(&b, c, NULL, 0, SHOAL_DTYPE_F32, SHOAL_COMM_SUM, 4),
                 SHOAL_OK);
    CHECK_EQ_INT(shoal_comm_bucketer_mark_ready(b, 0, 0), SHOAL_OK);
    CHECK_EQ_INT(shoal_comm_bucketer_finish(b), SHOAL_OK);
    shoal_comm_bucketer_free(b);
    shoal_comm_free(c);
}

/* The liveness ring's wire: malformed input is refused, never trusted. */
static void test_watchdog_wire(void) {
    char type = 0;
    int rank = 0;
    const unsigned char bye[5] = {'B', 0, 0, 0, 0}, lost1[5] = {'L', 0, 0, 0, 1},
                        lost_big[5] = {'L', 0, 0, 0, 4}, lost_neg[5] = {'L', 0xff, 0xff, 0xff, 0xff},
                        junk[5] = {'X', 0, 0, 0, 0};
    CHECK_EQ_INT(shoal_watchdog_decode_msg(bye, 4, &type, &rank), 0);
    CHECK(type == 'B' && rank == -1);
    CHECK_EQ_INT(shoal_watchdog_decode_msg(lost1, 4, &type, &rank), 0);
    CHECK(type == 'L' && rank == 1);
    CHECK_EQ_INT(shoal_watchdog_decode_msg(lost_big, 4, &type, &rank), -1);
    CHECK_EQ_INT(shoal_watchdog_decode_msg(lost_neg, 4, &type, &rank), -1);
    CHECK_EQ_INT(shoal_watchdog_decode_msg(junk, 4, &type, &rank), -1);
    CHECK_EQ_INT(shoal_watchdog_decode_msg(lost1, 0, &type, &rank), -1);

    unsigned char h[SHOAL_WD_HELLO_BYTES] = {0x53, 0x48, 0x57, 0x4b, 0, 0, 0, 3};
    uint64_t nonce = 0x0102030405060708ull;
    for (int i = 0; i < 8; i++) h[8 + i] = (unsigned char)(nonce >> (56 - 8 * i));
    CHECK(shoal_watchdog_hello_ok(h, 3, nonce));
    CHECK(!shoal_watchdog_hello_ok(h, 2, nonce));     /* wrong rank */
    CHECK(!shoal_watchdog_hello_ok(h, 3, nonce + 1)); /* another job */
    h[0] = 'X';
    CHECK(!shoal_watchdog_hello_ok(h, 3, nonce)); /* not our protocol */

    size_t rs = shoal_watchdog_record_size();
    CHECK(rs >= 64);
    unsigned char *recs = calloc(2, rs);
    memset(recs, 0xab, 2 * rs);
    CHECK_EQ_INT(shoal_watchdog_check_records(recs, 2), SHOAL_ERR_PROTOCOL);
    free(recs);
}

int main(void) {
    TEST_RUN(test_backend_names);
    TEST_RUN(test_shard);
    TEST_RUN(test_pick_device);
    TEST_RUN(test_bucket_count);
    TEST_RUN(test_init_choice);
    TEST_RUN(test_single_collectives);
    TEST_RUN(test_argument_checks);
    TEST_RUN(test_bucketer_rules);
    TEST_RUN(test_watchdog_wire);
    return TEST_EXIT();
}
