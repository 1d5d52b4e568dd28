/* bench_allreduce.c: all-reduce throughput through shoal's communicator (MPI backend) against
 * raw MPI_Allreduce on MPI_COMM_WORLD, in the same run, nccl-tests style.
 * Usage (under mpirun): bench_allreduce [--max-bytes N] [--min-bytes N]
 * For each size (x4 steps ending at --max-bytes, fp32 SUM in place) both paths run in alternating rounds; the best
 * time of each is kept (least disturbed by the shared machine). Printed: algbw = bytes / time
 * and busbw = algbw * 2(n-1)/n (the bytes each rank's link carries in a ring all-reduce), and
 * ours/raw as a percentage of raw MPI's throughput (target >= 95%). Also the machine, ranks,
 * cores and commit. Label bench: not run in CI.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/version.h"
#include "worker/dist/comm.h"

static double best_of(int ours, shoal_comm *c, float *buf, size_t n, int iters) {
    double best = 1e30;
    for (int i = 0; i < iters; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t = MPI_Wtime();
        if (ours) {
            if (shoal_comm_allreduce(c, buf, n, SHOAL_DTYPE_F32, SHOAL_COMM_SUM) != SHOAL_OK)
                MPI_Abort(MPI_COMM_WORLD, 1);
        } else {
            MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        }
        t = MPI_Wtime() - t;
        /* every rank must agree on the time, or ranks would pick different iteration counts */
        MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv) {
    size_t max_bytes = 64u << 20, min_bytes = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--max-bytes") == 0) max_bytes = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--min-bytes") == 0) min_bytes = strtoull(argv[i + 1], NULL, 10);
    }
    if (min_bytes < 4 || max_bytes < min_bytes || max_bytes > (2048ull << 20)) {
        fprintf(stderr, "bench_allreduce: need 4 <= --min-bytes <= --max-bytes <= 2 GiB\n");
        return 2;
    }
    shoal_comm *c = NULL;
    shoal_comm_options o = {.backend = SHOAL_COMM_MPI, .timeout_ms = 600000};
    if (shoal_comm_init(&c, &o) != SHOAL_OK) return 1;
    int rank = shoal_comm_rank(c), world = shoal_comm_world_size(c);
    float *buf = calloc(max_bytes / 4, sizeof *buf);
    if (!buf) MPI_Abort(MPI_COMM_WORLD, 1);
    if (rank == 0) {
        char host[64] = "";
        gethostname(host, sizeof host - 1);
        printf("# bench_allreduce: fp32 sum in place, %d ranks on %s (%ld cores), commit %s\n",
               world, host, sysconf(_SC_NPROCESSORS_ONLN), shoal_build()->commit);
        printf("# %12s %10s %10s %10s %10s %10s %10s %8s\n", "bytes", "ours_us", "raw_us",
               "ours_alg", "ours_bus", "raw_alg", "raw_bus", "ours/raw");
        printf("# %12s %10s %10s %10s %10s %10s %10s %8s\n", "", "", "", "GB/s", "GB/s", "GB/s",
               "GB/s", "%");
    }
    double busf = 2.0 * (world - 1) / world;
    for (size_t bytes = min_bytes;; bytes *= 4) {
        if (bytes > max_bytes) bytes = max_bytes; /* always end on the largest size asked for */
        size_t n = bytes / 4;
        /* aim at ~0.3 s per path per size, between 3 and 200 iterations */
        double probe = best_of(0, c, buf, n, 2);
        int iters = (int)(0.1 / (probe > 1e-7 ? probe : 1e-7));
        if (iters < 3) iters = 3;
        if (iters > 200) iters = 200;
        double ours = 1e30, raw = 1e30;
        for (int round = 0; round < 3; round++) {
            double a = best_of(1, c, buf, n, iters), b = best_of(0, c, buf, n, iters);
            if (a < ours) ours = a;
            if (b < raw) raw = b;
        }
        if (rank == 0)
            printf("  %12zu %10.1f %10.1f %10.3f %10.3f %10.3f %10.3f %8.1f\n", bytes, ours * 1e6,
                   raw * 1e6, bytes / ours / 1e9, bytes / ours / 1e9 * busf, bytes / raw / 1e9,
                   bytes / raw / 1e9 * busf, 100.0 * raw / ours);
        fflush(stdout);
        if (bytes == max_bytes) break;
    }
    free(buf);
    shoal_comm_free(c);
    return 0;
}
