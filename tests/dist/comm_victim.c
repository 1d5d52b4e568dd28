/* comm_victim.c: the program tests/dist/kill_rank.sh runs under mpirun -np 2 to check that a
 * lost or stuck rank never hangs the others. Usage: comm_victim PIDFILE TIMEOUT_MS.
 * Every rank all-reduces 1 MB in a loop; rank 1 writes its pid to PIDFILE once the loop runs
 * and pauses 10 ms per step, so rank 0 spends its time blocked inside the collective, which is
 * where the script's kill -9 or SIGSTOP of rank 1 catches it. Exits 0 only if no failure was
 * noticed within 45 s, which the script counts as a failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "worker/dist/comm.h"

/* The hook a trainer uses to tell the coordinator; the script checks it ran. */
static void on_fatal(void *arg, int lost_rank, const char *why) {
    (void)arg;
    fprintf(stderr, "comm_victim on_fatal: lost rank %d (%.40s...)\n", lost_rank, why);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: comm_victim PIDFILE TIMEOUT_MS\n");
        return 2;
    }
    shoal_comm *c = NULL;
    shoal_comm_options o = {.backend = SHOAL_COMM_MPI,
                            .timeout_ms = strtoull(argv[2], NULL, 10),
                            .on_fatal = on_fatal};
    if (shoal_comm_init(&c, &o) != SHOAL_OK) return 1;
    int rank = shoal_comm_rank(c);
    static float buf[1 << 18];
    double start = shoal_now_s();
    for (long it = 0; shoal_now_s() - start < 45; it++) {
        shoal_status st = shoal_comm_allreduce(c, buf, sizeof buf / sizeof *buf, SHOAL_DTYPE_F32,
                                               SHOAL_COMM_SUM);
        if (st != SHOAL_OK) {
            fprintf(stderr, "rank %d: allreduce returned %s\n", rank, shoal_status_str(st));
            shoal_comm_free(c);
            return 3;
        }
        if (rank == 1 && it == 5) {
            FILE *f = fopen(argv[1], "w");
            if (f) fprintf(f, "%d\n", (int)getpid()), fclose(f);
        }
        if (rank == 1) usleep(10000);
    }
    fprintf(stderr, "rank %d: no failure noticed in 45 s\n", rank);
    shoal_comm_free(c);
    return 0;
}
