/* cmd_version.c: `shoal version`: version, git commit, build type and built backends. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "common/version.h"

int shoal_cmd_version(int argc, char **argv) {
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: shoal version\n");
        return 0;
    }
    const shoal_build_info *b = shoal_build();
    printf("shoal %s (commit %s, %s)\n", b->version, b->commit, b->build_type);
    printf("backends: CUDA %s, NCCL %s, MPI %s, BLAS %s, RPC %s\n", b->cuda ? "yes" : "no",
           b->nccl ? "yes" : "no", b->mpi ? "yes" : "no", b->blas ? "yes" : "no",
           b->rpc ? "yes" : "no");
    return 0;
}
