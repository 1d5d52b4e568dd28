/* status.h: the one status enum every fallible shoal function returns, and the check macros.
 *
 * Shaped after NCCL's ncclResult_t: a small closed set of codes, a string for each, and a few
 * macros so that error paths stay one line. A failing function logs *what* was wrong (file,
 * field, value, hint) at the point of failure; callers propagate the code upwards.
 * SHOAL_ASSERT is for our own broken invariants only, never for outside input.
 * Tested by tests/common/test_status.c.
 */
#ifndef SHOAL_COMMON_STATUS_H
#define SHOAL_COMMON_STATUS_H

#include <stdio.h>
#include <stdlib.h>

typedef enum {
    SHOAL_OK = 0,
    SHOAL_ERR_INVALID_ARG, /* caller or user passed something malformed or out of range */
    SHOAL_ERR_IO,          /* open/read/write/fsync/rename failed */
    SHOAL_ERR_NOMEM,       /* allocation failed */
    SHOAL_ERR_LIMIT,       /* a limit of common/limits.h was exceeded */
    SHOAL_ERR_FORMAT,      /* a file's content is malformed (safetensors, shards, JSON...) */
    SHOAL_ERR_PROTOCOL,    /* a peer broke the wire protocol */
    SHOAL_ERR_AUTH,        /* authentication or authorisation refused */
    SHOAL_ERR_TIMEOUT,     /* a deadline passed */
    SHOAL_ERR_COMM,        /* a collective or the transport under it failed */
    SHOAL_ERR_CUDA,        /* a CUDA, cuBLAS or NCCL call failed */
    SHOAL_ERR_REMOTE,      /* the remote side reported an error */
    SHOAL_ERR_NOT_FOUND,   /* a named object (file, job, tensor, model) does not exist */
    SHOAL_ERR_UNSUPPORTED, /* valid request, but this build or backend cannot do it */
    SHOAL_ERR_INTERNAL,    /* a bug in shoal */
    SHOAL_STATUS_COUNT
} shoal_status;

/* Stable, lower-case name of a status ("ok", "invalid argument", ...). Never NULL. */
const char *shoal_status_str(shoal_status st);

/* Propagate a failing status. */
#define SHOAL_CHECK(expr)                                                                          \
    do {                                                                                           \
        shoal_status shoal_st_ = (expr);                                                           \
        if (shoal_st_ != SHOAL_OK) return shoal_st_;                                               \
    } while (0)

/* Propagate a failing status through the function's one `cleanup:` label; needs a
 * `shoal_status st` variable in scope. */
#define SHOAL_CHECK_GOTO(expr)                                                                     \
    do {                                                                                           \
        st = (expr);                                                                               \
        if (st != SHOAL_OK) goto cleanup;                                                          \
    } while (0)

/* Set st and jump to cleanup with a logged message when cond is false. */
#define SHOAL_REQUIRE_GOTO(cond, code, ...)                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            SHOAL_LOG_ERROR(__VA_ARGS__);                                                          \
            st = (code);                                                                           \
            goto cleanup;                                                                          \
        }                                                                                          \
    } while (0)

/* Return code with a logged message when cond is false. */
#define SHOAL_REQUIRE(cond, code, ...)                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            SHOAL_LOG_ERROR(__VA_ARGS__);                                                          \
            return (code);                                                                         \
        }                                                                                          \
    } while (0)

/* Always-on invariant check for shoal's own logic. Aborts with file:line. */
#define SHOAL_ASSERT(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "shoal: internal invariant failed: %s (%s:%d)\n", #cond, __FILE__,   \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#include "common/log.h"

#endif
