/* service.h: `shoal coordinator`: the data directory, the job store, the scheduler and the RPC
 * server serving JobService and RunService, run until asked to stop.
 *
 * What: shoal_coordinator_run() initialises DATA_DIR on first use (shoal.db, a 0600 bearer
 * token file `token`, a scratch dir for launcher files), then serves. The owner thread (the
 * caller's) runs the scheduler loop; RPC handlers run on the adapter's worker threads and use
 * only the store (thread-safe) and the scheduler's thread-safe calls. The bound address is
 * written to DATA_DIR/coordinator.addr (useful with port 0).
 * Why shaped so: STYLE.md's single owner for scheduling state; the RPC adapter (proto/rpc.h)
 * owns every grpc detail. Submitters authenticate with the bearer token or, under mTLS, a
 * client certificate (its CN becomes the submitter); ranks authenticate to RunService with the
 * per-attempt run token the scheduler hands them. Anything else gets UNAUTHENTICATED.
 * Tested by tests/coordinator/test_e2e.sh (label integration): the real binary on loopback.
 */
#ifndef SHOAL_COORDINATOR_SERVICE_H
#define SHOAL_COORDINATOR_SERVICE_H

#include <signal.h>

#include "common/status.h"
#include "proto/jobspec.h"

typedef struct {
    const char *listen;        /* "127.0.0.1:7070"; port 0: any */
    const char *data_dir;
    const char *tls_cert, *tls_key, *tls_ca; /* all NULL: insecure (loopback only) */
    shoal_launcher_kind launcher; /* DEFAULT means LOCAL */
    const char *hostfile;      /* hostfile launcher: "host slots=N" lines -> hosts table */
    const char *slurm_conf;    /* slurm launcher: SLURM_CONF for sbatch & co; may be NULL */
    int cpu_slots;             /* local launcher: slots of this host; 0: online cores */
    int gpus;                  /* local launcher: GPUs of this host */
    double retry_base_s;       /* 0: scheduler default */
} shoal_coordinator_options;

/* Serve until *stop becomes non-zero (set it from a signal handler). Blocks. */
shoal_status shoal_coordinator_run(const shoal_coordinator_options *o,
                                   volatile sig_atomic_t *stop);

/* Create DATA_DIR and its token file if missing; token_out (may be NULL) gets the token. */
shoal_status shoal_coordinator_init_data_dir(const char *dir, char token_out[65]);

#endif
