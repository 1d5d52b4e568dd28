/* mpi_hello.c: the smallest real MPI program, used as the rank command in launcher tests:
 * MPI_Init through whatever PMI the launcher set up (mpirun's, or srun --mpi=pmix), an
 * all-reduce of the ranks, one line per rank. Exit code argv[1] on rank 1 if given, so tests
 * can make one rank fail. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, size = 0, sum = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("hello from rank %d of %d, sum of ranks %d\n", rank, size, sum);
    fflush(stdout);
    int code = argc > 1 && rank == 1 ? atoi(argv[1]) : 0;
    MPI_Finalize();
    return code;
}
