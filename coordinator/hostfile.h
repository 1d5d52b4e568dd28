/* hostfile.h: the coordinator's hostfile (`--hostfile F` of the hostfile launcher).
 *
 * Format: one host per line, `NAME [slots=N] [gpus=G]` (Open MPI's hostfile with a gpus
 * field added), '#' starts a comment, blank lines are ignored. slots defaults to 1.
 * Why shaped so: users already have Open MPI hostfiles; the same file feeds our slot table and
 * (rewritten per attempt from the allocation) mpirun. It is outside input, so every field is
 * checked: names of [A-Za-z0-9._-] up to 127 bytes, 1 <= slots <= SHOAL_MAX_JOB_RANKS,
 * 0 <= gpus <= 1024, no duplicate hosts, at most SHOAL_MAX_HOSTS hosts.
 * Tested by tests/coordinator/test_hostfile.c and tests/fuzz/fuzz_hostfile.c.
 */
#ifndef SHOAL_COORDINATOR_HOSTFILE_H
#define SHOAL_COORDINATOR_HOSTFILE_H

#include <stddef.h>

#include "coordinator/store.h"

/* Hosts in one hostfile: a cluster a small-model coordinator drives is tens of nodes. */
#define SHOAL_MAX_HOSTS 4096

/* Parse len bytes (`what` names the file in errors). On success *out is a malloc'd array of
 * *n hosts (addr = name); FORMAT/INVALID_ARG/LIMIT with the line number logged otherwise. */
shoal_status shoal_hostfile_parse(const char *buf, size_t len, const char *what,
                                  shoal_host **out, int *n);

#endif
