/* cmd_coordinator.c: `shoal coordinator`: flags -> coordinator/service.h. Dispatch only.
 * Tested by tests/coordinator/test_e2e.sh. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "coordinator/service.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: shoal coordinator --listen ADDR --data-dir DIR [options]\n\n"
            "Runs the control plane: job store, scheduler, launcher and the JobService and\n"
            "RunService RPC endpoints. Submitters authenticate with the bearer token written to\n"
            "DIR/token on first start (or a client certificate under mTLS).\n\n"
            "  --listen ADDR          e.g. 127.0.0.1:7070 (plaintext only on loopback)\n"
            "  --data-dir DIR         job store, token, launcher scratch files\n"
            "  --tls-cert F --tls-key F   serve TLS; add --tls-ca F to require client certs\n"
            "  --launcher local|hostfile|slurm   (default local)\n"
            "  --hostfile F           hostfile launcher: lines 'host slots=N [gpus=G]'\n"
            "  --slurm-conf F         slurm launcher: SLURM_CONF for sbatch/scontrol/scancel\n"
            "  --slots N --gpus G     local launcher: slots and GPUs of this host\n"
            "  --retry-base S         first retry delay in seconds (doubles per attempt)\n");
}

int shoal_cmd_coordinator(int argc, char **argv) {
    shoal_coordinator_options o = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "shoal coordinator: %s needs a value (or is unknown)\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--listen") == 0) o.listen = v;
        else if (strcmp(a, "--data-dir") == 0) o.data_dir = v;
        else if (strcmp(a, "--tls-cert") == 0) o.tls_cert = v;
        else if (strcmp(a, "--tls-key") == 0) o.tls_key = v;
        else if (strcmp(a, "--tls-ca") == 0) o.tls_ca = v;
        else if (strcmp(a, "--hostfile") == 0) o.hostfile = v;
        else if (strcmp(a, "--slurm-conf") == 0) o.slurm_conf = v;
        else if (strcmp(a, "--slots") == 0) o.cpu_slots = atoi(v);
        else if (strcmp(a, "--gpus") == 0) o.gpus = atoi(v);
        else if (strcmp(a, "--retry-base") == 0) o.retry_base_s = atof(v);
        else if (strcmp(a, "--launcher") == 0) {
            if (shoal_launcher_kind_parse(v, &o.launcher) != SHOAL_OK) return 2;
        } else {
            fprintf(stderr, "shoal coordinator: unknown option %s\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o.listen || !o.data_dir) {
        usage(stderr);
        return 2;
    }
    shoal_log_set_role("coordinator");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    shoal_status st = shoal_coordinator_run(&o, &stop_flag);
    if (st != SHOAL_OK) {
        fprintf(stderr, "shoal coordinator: %s\n", shoal_status_str(st));
        return 1;
    }
    return 0;
}
