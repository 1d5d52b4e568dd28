/* status.c: names of shoal_status codes. Tested by tests/common/test_status.c. */
#include "common/status.h"

const char *shoal_status_str(shoal_status st) {
    switch (st) {
    case SHOAL_OK: return "ok";
    case SHOAL_ERR_INVALID_ARG: return "invalid argument";
    case SHOAL_ERR_IO: return "i/o error";
    case SHOAL_ERR_NOMEM: return "out of memory";
    case SHOAL_ERR_LIMIT: return "limit exceeded";
    case SHOAL_ERR_FORMAT: return "malformed data";
    case SHOAL_ERR_PROTOCOL: return "protocol error";
    case SHOAL_ERR_AUTH: return "authentication failed";
    case SHOAL_ERR_TIMEOUT: return "timed out";
    case SHOAL_ERR_COMM: return "communication error";
    case SHOAL_ERR_CUDA: return "cuda error";
    case SHOAL_ERR_REMOTE: return "remote error";
    case SHOAL_ERR_NOT_FOUND: return "not found";
    case SHOAL_ERR_UNSUPPORTED: return "unsupported";
    case SHOAL_ERR_INTERNAL: return "internal error";
    case SHOAL_STATUS_COUNT: break;
    }
    return "unknown status";
}
