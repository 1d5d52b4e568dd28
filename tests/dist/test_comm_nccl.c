/* test_comm_nccl.c: the NCCL backend on a real GPU (label gpu). World size 1 without mpirun
 * (or N under mpirun, one GPU per rank): all-reduce f32 and bf16 (sum, avg), reduce-scatter and
 * all-gather (even and uneven), broadcast, barrier and the overlapped bucketer, each checked on
 * the host against locally computed values with poisoned outputs. Exits 77 when
 * cudaGetDeviceCount fails (no driver or no device), as on CI.
 */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "test.h"
#include "worker/dist/comm.h"

static shoal_comm *C;
static int R, W;

static float pat(int rank, size_t i) { return (float)((int)(i % 251) - 125 + rank) * 0.5f; }
static float sum_pat(size_t i) {
    float s = 0;
    for (int r = 0; r < W; r++) s += pat(r, i);
    return s;
}

static void *dev_from(const void *host, size_t bytes) {
    void *d = NULL;
    if (cudaMalloc(&d, bytes ? bytes : 1) != cudaSuccess) return NULL;
    if (bytes) cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice);
    return d;
}

static void test_allreduce(void) {
    size_t n = 1000003;
    float *h = malloc(n * sizeof *h);
    uint16_t *hb = malloc(n * sizeof *hb);
    for (int op = 0; op < 2; op++) {
        for (size_t i = 0; i < n; i++) h[i] = pat(R, i), hb[i] = shoal_f32_to_bf16(pat(R, i));
        float *d = dev_from(h, n * sizeof *h);
        uint16_t *db = dev_from(hb, n * sizeof *hb);
        CHECK(d && db);
        CHECK_EQ_INT(shoal_comm_allreduce(C, d, n, SHOAL_DTYPE_F32, (shoal_comm_op)op), SHOAL_OK);
        CHECK_EQ_INT(shoal_comm_allreduce(C, db, n, SHOAL_DTYPE_BF16, (shoal_comm_op)op), SHOAL_OK);
        memset(h, 0xff, n * sizeof *h);
        cudaMemcpy(h, d, n * sizeof *h, cudaMemcpyDeviceToHost);
        cudaMemcpy(hb, db, n * sizeof *hb, cudaMemcpyDeviceToHost);
        size_t bad = 0, badb = 0;
        for (size_t i = 0; i < n; i++) {
            float want = op ? sum_pat(i) / (float)W : sum_pat(i);
            if (h[i] != want) bad++;
            /* values are multiples of 0.5 below 256: exact in bf16 too */
            if (shoal_bf16_to_f32(hb[i]) != want) badb++;
        }
        CHECK_EQ_INT(bad, 0);
        CHECK_EQ_INT(badb, 0);
        cudaFree(d), cudaFree(db);
    }
    free(h), free(hb);
}

static void test_scatter_gather_bcast(void) {
    size_t *counts = calloc((size_t)W, sizeof *counts);
    for (int even = 0; even < 2; even++) {
        size_t total = 0, off = 0;
        for (int r = 0; r < W; r++) {
            counts[r] = even ? 4096 : 1000 + 17 * (size_t)r;
            if (r < R) off += counts[r];
            total += counts[r];
        }
        float *h = malloc(total * sizeof *h);
        for (size_t i = 0; i < total; i++) h[i] = pat(R, i);
        float *send = dev_from(h, total * sizeof *h), *recv = dev_from(NULL, total * sizeof *h);
        cudaMemset(recv, 0xff, total * sizeof *h);
        CHECK_EQ_INT(shoal_comm_reduce_scatter(C, send, recv, counts, SHOAL_DTYPE_F32,
                                               SHOAL_COMM_SUM),
                     SHOAL_OK);
        cudaMemcpy(h, recv, counts[R] * sizeof *h, cudaMemcpyDeviceToHost);
        size_t bad = 0;
        for (size_t i = 0; i < counts[R]; i++)
            if (h[i] != sum_pat(off + i)) bad++;
        CHECK_EQ_INT(bad, 0);
        for (size_t i = 0; i < counts[R]; i++) h[i] = pat(R, off + i);
        cudaMemcpy(send, h, counts[R] * sizeof *h, cudaMemcpyHostToDevice);
        cudaMemset(recv, 0xff, total * sizeof *h);
        CHECK_EQ_INT(shoal_comm_all_gather(C, send, recv, counts, SHOAL_DTYPE_F32), SHOAL_OK);
        cudaMemcpy(h, recv, total * sizeof *h, cudaMemcpyDeviceToHost);
        bad = 0;
        size_t pos = 0;
        for (int r = 0; r < W; r++)
            for (size_t i = 0; i < counts[r]; i++, pos++)
                if (h[pos] != pat(r, pos)) bad++;
        CHECK_EQ_INT(bad, 0);
        for (size_t i = 0; i < total; i++) h[i] = R == 0 ? pat(7, i) : -1;
        cudaMemcpy(send, h, total * sizeof *h, cudaMemcpyHostToDevice);
        CHECK_EQ_INT(shoal_comm_broadcast(C, send, total, SHOAL_DTYPE_F32, 0), SHOAL_OK);
        cudaMemcpy(h, send, total * sizeof *h, cudaMemcpyDeviceToHost);
        bad = 0;
        for (size_t i = 0; i < total; i++)
            if (h[i] != pat(7, i)) bad++;
        CHECK_EQ_INT(bad, 0);
        cudaFree(send), cudaFree(recv), free(h);
    }
    CHECK_EQ_INT(shoal_comm_barrier(C), SHOAL_OK);
    free(counts);
}

static void test_bucketer(void) {
    size_t n = 300007;
    float *h = malloc(n * sizeof *h), *want = malloc(n * sizeof *want);
    for (size_t i = 0; i < n; i++) h[i] = pat(R, i), want[i] = sum_pat(i);
    float *d = dev_from(h, n * sizeof *h);
    shoal_comm_bucketer *b = NULL;
    CHECK_EQ_INT(shoal_comm_bucketer_init(&b, C, d, n, SHOAL_DTYPE_F32, SHOAL_COMM_SUM, 65536),
                 SHOAL_OK);
    if (b) {
        for (size_t end = n; end > 0;) {
            size_t len = end < 50000 ? end : 50000;
            CHECK_EQ_INT(shoal_comm_bucketer_mark_ready(b, end - len, len), SHOAL_OK);
            end -= len;
        }
        CHECK_EQ_INT(shoal_comm_bucketer_finish(b), SHOAL_OK);
        shoal_comm_bucketer_free(b);
    }
    cudaMemcpy(h, d, n * sizeof *h, cudaMemcpyDeviceToHost);
    CHECK(memcmp(h, want, n * sizeof *h) == 0);
    cudaFree(d), free(h), free(want);
}

int main(void) {
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev == 0) TEST_SKIP("no CUDA device");
    shoal_comm_options o = {.backend = SHOAL_COMM_NCCL, .timeout_ms = 60000};
    shoal_status st = shoal_comm_init(&C, &o);
    if (st != SHOAL_OK) {
        fprintf(stderr, "NCCL communicator failed to start: %s\n", shoal_status_str(st));
        return 1;
    }
    R = shoal_comm_rank(C), W = shoal_comm_world_size(C);
    CHECK(shoal_comm_on_device(C));
    CHECK(shoal_comm_device(C) >= 0);
    TEST_RUN(test_allreduce);
    TEST_RUN(test_scatter_gather_bcast);
    TEST_RUN(test_bucketer);
    shoal_comm_free(C);
    return TEST_EXIT();
}
