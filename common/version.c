/* version.c: see version.h. Values come from the generated build_info.h. */
#include "common/version.h"

#include <string.h>

#include "common/build_info.h"
#include "common/gitinfo.h"

static int on(const char *s) { return strcmp(s, "ON") == 0; }

const shoal_build_info *shoal_build(void) {
    static shoal_build_info info;
    info.version = SHOAL_VERSION_STRING;
    info.commit = SHOAL_GIT_COMMIT;
    info.build_type = SHOAL_BUILD_TYPE;
    info.cuda = on(SHOAL_BUILT_CUDA);
    info.nccl = on(SHOAL_BUILT_NCCL);
    info.mpi = on(SHOAL_BUILT_MPI);
    info.rpc = on(SHOAL_BUILT_RPC);
    info.blas = on(SHOAL_BUILT_BLAS);
    return &info;
}
