/* version.h: what this build of shoal is: version, git commit, and which backends it has. */
#ifndef SHOAL_COMMON_VERSION_H
#define SHOAL_COMMON_VERSION_H

typedef struct {
    const char *version;  /* "0.1.0" */
    const char *commit;   /* short git hash at configure time, or "unknown" */
    const char *build_type;
    int cuda, nccl, mpi, rpc, blas; /* 1 when built in */
} shoal_build_info;

const shoal_build_info *shoal_build(void);

#endif
