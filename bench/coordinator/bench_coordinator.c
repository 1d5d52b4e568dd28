/* bench_coordinator.c: SubmitJob and GetJob throughput and p50/p99 latency of a real
 * coordinator on loopback with 1, 8 and 64 concurrent clients, and as the baseline, the same
 * concurrency of `sbatch --wrap true` submissions to a local Slurm (SLURM_CONF; skipped when
 * unset), measured in the same run.
 *
 * The coordinator runs in this process (shoal_coordinator_run on its own thread, real gRPC on
 * 127.0.0.1, real SQLite store in a temp dir). Its one slot is held by a long first job, so
 * every submitted job stays QUEUED: the figures measure the control plane, not mpirun. Each
 * client has its own channel. Label bench (not run in CI).
 * usage: bench_coordinator [--ops N] [--sbatch-ops N] [--only get|submit]
 *        [--client threads|async|both] [--cq-threads N]
 *        (run via bench/coordinator/run.sh; --only get: GetJob alone after one 8-client
 *        SubmitJob pass that fills the store; --only submit: SubmitJob alone; for profiling)
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/limits.h"
#include "common/timeutil.h"
#include "common/version.h"
#include "coordinator/api.h"
#include "coordinator/launcher.h"
#include "coordinator/service.h"

static volatile sig_atomic_t stop_flag;
static char addr[256], token[65];

typedef struct {
    shoal_coordinator_options *o;
    shoal_status st;
} coord_arg;

static void *coord_thread(void *p) {
    coord_arg *a = p;
    a->st = shoal_coordinator_run(a->o, &stop_flag);
    return NULL;
}

typedef struct {
    int ops, mode; /* 0 submit, 1 get, 2 sbatch */
    uint64_t max_id;
    double *lat;
    int errors;
    const char *slurm_conf;
} worker;

static char *argv_true[] = {"true"};

/* The job every SubmitJob of the bench carries: a command job running `true` (its strings are
 * static, so the protobuf form that borrows them stays valid). */
static void bench_spec_pb(shoal_job_spec_pb *pb) {
    shoal_job_spec spec;
    shoal_job_spec_init(&spec);
    spec.kind = SHOAL_JOB_KIND_COMMAND;
    spec.name = "bench";
    spec.argv = argv_true;
    spec.argc = 1;
    shoal_job_spec_to_pb(&spec, pb);
}

static void *work(void *p) {
    worker *w = p;
    shoal_rpc_client *cli = NULL;
    if (w->mode < 2) {
        shoal_rpc_client_config cc = {.target = addr, .bearer_token = token};
        if (shoal_rpc_client_new(&cc, &cli) != SHOAL_OK) {
            w->errors = w->ops;
            return NULL;
        }
    }
    shoal_job_spec_pb pb;
    bench_spec_pb(&pb);
    unsigned seed = (unsigned)(uintptr_t)w;
    for (int i = 0; i < w->ops; i++) {
        double t0 = shoal_now_s();
        shoal_status st;
        ProtobufCMessage *resp = NULL;
        if (w->mode == 0) {
            Shoal__V1__SubmitJobRequest req = SHOAL__V1__SUBMIT_JOB_REQUEST__INIT;
            req.spec = &pb.spec;
            st = shoal_rpc_client_unary(cli, &shoal_api_submit_job, &req.base, 10000, &resp, NULL);
        } else if (w->mode == 1) {
            Shoal__V1__GetJobRequest req = SHOAL__V1__GET_JOB_REQUEST__INIT;
            req.id = 1 + (uint64_t)(rand_r(&seed) % (int)w->max_id);
            st = shoal_rpc_client_unary(cli, &shoal_api_get_job, &req.base, 10000, &resp, NULL);
        } else {
            char env[SHOAL_MAX_PATH + 16], out[128];
            snprintf(env, sizeof env, "SLURM_CONF=%s", w->slurm_conf);
            char *argv[] = {"sbatch", "--parsable", "--output=/dev/null", "--wrap", "true", NULL};
            char *envv[] = {env};
            int code = -1;
            st = shoal_run_capture(argv, envv, 1, 30, out, sizeof out, &code);
            if (st == SHOAL_OK && code != 0) st = SHOAL_ERR_REMOTE;
        }
        w->lat[i] = shoal_now_s() - t0;
        if (st != SHOAL_OK) w->errors++;
        shoal_rpc_msg_free(resp);
    }
    shoal_rpc_client_free(cli);
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sort the n latencies, print one row, free them. Returns ops/s. */
static double report(const char *what, const char *client, int conc, double *lat, int n,
                     double wall, int errors) {
    qsort(lat, (size_t)n, sizeof *lat, cmp_d);
    double rate = n / wall;
    printf("%-20s %-7s %6d %8d %10.0f %10.2f %10.2f %7d\n", what, client, conc, n, rate,
           lat[n / 2] * 1e3, lat[(size_t)(n * 0.99)] * 1e3, errors);
    fflush(stdout);
    free(lat);
    return rate;
}

/* Run `clients` threads of ops_each blocking calls each; print one row. Returns ops/s. */
static double run(const char *what, int mode, int clients, int ops_each, uint64_t max_id,
                  const char *slurm_conf) {
    worker *w = calloc((size_t)clients, sizeof *w);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    double *lat = calloc((size_t)clients * (size_t)ops_each, sizeof *lat);
    double t0 = shoal_now_s();
    for (int c = 0; c < clients; c++) {
        w[c] = (worker){ops_each, mode, max_id, lat + (size_t)c * ops_each, 0, slurm_conf};
        pthread_create(&th[c], NULL, work, &w[c]);
    }
    int errors = 0;
    for (int c = 0; c < clients; c++) {
        pthread_join(th[c], NULL);
        errors += w[c].errors;
    }
    double wall = shoal_now_s() - t0;
    free(th);
    free(w);
    return report(what, "threads", clients, lat, clients * ops_each, wall, errors);
}

/* The async load generator (gRPC's "async client, outstanding RPCs per channel"): one thread,
 * one channel, `conc` calls kept in flight; each is re-issued as soon as one completes. Every
 * call is still a real RPC over loopback TCP to the real server; its latency runs from its
 * start to its completion. Returns ops/s. */
static double run_async(const char *what, int mode, int conc, int ops, uint64_t max_id) {
    double *lat = calloc((size_t)ops, sizeof *lat);
    double *t_start = calloc((size_t)ops, sizeof *t_start);
    shoal_rpc_client_config cc = {.target = addr, .bearer_token = token};
    shoal_rpc_client *cli = NULL;
    shoal_rpc_async *a = NULL;
    int errors = 0, started = 0, finished = 0;
    if (shoal_rpc_client_new(&cc, &cli) != SHOAL_OK ||
        shoal_rpc_async_new(cli, conc, &a) != SHOAL_OK)
        errors = ops;
    shoal_job_spec_pb pb;
    bench_spec_pb(&pb);
    unsigned seed = 12345u + (unsigned)conc;
    double t0 = shoal_now_s();
    while (!errors && finished < ops) {
        while (started < ops && shoal_rpc_async_outstanding(a) < conc) {
            Shoal__V1__SubmitJobRequest sreq = SHOAL__V1__SUBMIT_JOB_REQUEST__INIT;
            Shoal__V1__GetJobRequest greq = SHOAL__V1__GET_JOB_REQUEST__INIT;
            sreq.spec = &pb.spec;
            greq.id = 1 + (uint64_t)(rand_r(&seed) % (int)(max_id ? max_id : 1));
            t_start[started] = shoal_now_s();
            shoal_status st = mode == 0
                                  ? shoal_rpc_async_start(a, &shoal_api_submit_job, &sreq.base,
                                                          10000, (void *)(intptr_t)started)
                                  : shoal_rpc_async_start(a, &shoal_api_get_job, &greq.base, 10000,
                                                          (void *)(intptr_t)started);
            if (st != SHOAL_OK) {
                lat[started] = 0;
                errors++;
                finished++;
            }
            started++;
        }
        if (shoal_rpc_async_outstanding(a) == 0) continue;
        shoal_rpc_async_done d;
        if (shoal_rpc_async_next(a, 0, &d) != SHOAL_OK) {
            errors += ops - finished;
            break;
        }
        int i = (int)(intptr_t)d.user;
        lat[i] = shoal_now_s() - t_start[i];
        if (d.status != SHOAL_OK) errors++;
        shoal_rpc_msg_free(d.resp);
        finished++;
    }
    double wall = shoal_now_s() - t0;
    shoal_rpc_async_free(a);
    shoal_rpc_client_free(cli);
    free(t_start);
    return report(what, "async", conc, lat, ops, wall, errors);
}

int main(int argc, char **argv) {
    int ops = 4000, sbatch_ops = 192, get_only = 0, submit_only = 0, use_threads = 1, use_async = 1;
    static const char usage[] =
        "usage: bench_coordinator [--ops N (4000)] [--sbatch-ops N (192)] [--cq-threads N]\n"
        "                         [--client threads|async|both] [--only get|submit]\n"
        "(the sbatch baseline needs SLURM_CONF: run bench/coordinator/run.sh)\n";
    for (int i = 1; i < argc; i += 2) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int known = !strcmp(f, "--ops") || !strcmp(f, "--cq-threads") || !strcmp(f, "--client") ||
                    !strcmp(f, "--sbatch-ops") || !strcmp(f, "--only");
        if (!known || !v) {
            fprintf(stderr, "%s%s", strcmp(f, "--help") && strcmp(f, "-h") ? "bad arguments\n" : "",
                    usage);
            return strcmp(f, "--help") && strcmp(f, "-h") ? 2 : 0;
        }
        if (strcmp(f, "--ops") == 0) ops = atoi(v);
        /* the server's completion-queue threads (limit rpc_cq_threads) */
        if (strcmp(f, "--cq-threads") == 0 &&
            shoal_limit_set(SHOAL_LIMIT_RPC_CQ_THREADS, (uint64_t)atoi(v)) != SHOAL_OK)
            return 2;
        if (strcmp(f, "--client") == 0) {
            use_threads = strcmp(v, "async") != 0;
            use_async = strcmp(v, "threads") != 0;
        }
        if (strcmp(f, "--sbatch-ops") == 0) sbatch_ops = atoi(v);
        /* for profiling GetJob alone: one SubmitJob pass (8 clients) fills the store */
        if (strcmp(f, "--only") == 0) {
            get_only = strcmp(v, "get") == 0;
            submit_only = strcmp(v, "submit") == 0;
        }
    }
    shoal_log_set_level(SHOAL_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/shoal-bench-coord-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    shoal_coordinator_options o = {.listen = "127.0.0.1:0", .data_dir = dir, .cpu_slots = 1};
    coord_arg ca = {&o, SHOAL_OK};
    pthread_t ct;
    pthread_create(&ct, NULL, coord_thread, &ca);
    char path[600];
    snprintf(path, sizeof path, "%s/coordinator.addr", dir);
    for (int i = 0; i < 100 && !shoal_path_exists(path); i++)
        usleep(50000);
    char *buf = NULL;
    size_t len = 0;
    if (shoal_file_read(path, sizeof addr - 1, &buf, &len) != SHOAL_OK) return 1;
    snprintf(addr, sizeof addr, "%s", buf);
    free(buf);
    snprintf(path, sizeof path, "%s/token", dir);
    if (shoal_file_read(path, sizeof token - 1, &buf, &len) != SHOAL_OK) return 1;
    snprintf(token, sizeof token, "%s", buf);
    free(buf);

    /* hold the only slot so that every benchmark job stays queued */
    {
        shoal_rpc_client_config cc = {.target = addr, .bearer_token = token};
        shoal_rpc_client *cli = NULL;
        shoal_rpc_client_new(&cc, &cli);
        char *sl[] = {"sleep", "3600"};
        shoal_job_spec spec;
        shoal_job_spec_init(&spec);
        spec.kind = SHOAL_JOB_KIND_COMMAND;
        spec.argv = sl;
        spec.argc = 2;
        shoal_job_spec_pb pb;
        shoal_job_spec_to_pb(&spec, &pb);
        Shoal__V1__SubmitJobRequest req = SHOAL__V1__SUBMIT_JOB_REQUEST__INIT;
        req.spec = &pb.spec;
        ProtobufCMessage *resp = NULL;
        shoal_rpc_client_unary(cli, &shoal_api_submit_job, &req.base, 10000, &resp, NULL);
        shoal_rpc_msg_free(resp);
        shoal_rpc_client_free(cli);
    }
    const shoal_build_info *bi = shoal_build();
    char host[64] = "";
    gethostname(host, sizeof host);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    printf("# bench_coordinator: loopback gRPC + SQLite (WAL, FULL sync on submit) on %s, %ld "
           "cores, load %.2f, commit %s\n",
           host, cores, load[0], bi->commit);
    printf("# threads: one blocking client thread per concurrent call, each on its own channel;"
           "\n# async: one thread, one channel, that many calls kept in flight\n");
    printf("# %-18s %-7s %6s %8s %10s %10s %10s %7s\n", "what", "client", "conc", "ops", "ops/s",
           "p50_ms", "p99_ms", "errors");
    const int conc[] = {1, 8, 64};
    double submit_rate[3] = {0, 0, 0}, sbatch_rate[3] = {0, 0, 0};
    uint64_t submitted = 1;
    for (int k = 0; k < 3; k++) {
        int each = ops / conc[k] > 0 ? ops / conc[k] : 1;
        if (get_only && k != 1) continue;
        if (use_threads) {
            submit_rate[k] = run("SubmitJob", 0, conc[k], each, 0, NULL);
            submitted += (uint64_t)each * conc[k];
        }
        if (use_async && !get_only) {
            double r = run_async("SubmitJob", 0, conc[k], each * conc[k], 0);
            if (!use_threads) submit_rate[k] = r;
            submitted += (uint64_t)each * conc[k];
        }
    }
    for (int k = 0; k < 3 && !submit_only; k++) {
        int each = ops / conc[k] > 0 ? ops / conc[k] : 1;
        if (use_threads) run("GetJob", 1, conc[k], each, submitted, NULL);
        if (use_async) run_async("GetJob", 1, conc[k], each * conc[k], submitted);
    }
    const char *sc = get_only || submit_only ? NULL : getenv("SLURM_CONF");
    if (sc) {
        for (int k = 0; k < 3; k++) {
            int each = sbatch_ops / conc[k] > 0 ? sbatch_ops / conc[k] : 1;
            sbatch_rate[k] = run("sbatch --wrap true", 2, conc[k], each, 0, sc);
        }
        for (int k = 0; k < 3; k++)
            printf("# SubmitJob/sbatch rate at %d client(s) (%s): %.1fx\n", conc[k],
                   use_threads ? "threads" : "async", submit_rate[k] / sbatch_rate[k]);
    } else {
        printf("# SLURM_CONF not set: no sbatch baseline (run bench/coordinator/run.sh)\n");
    }
    stop_flag = 1;
    pthread_join(ct, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return ca.st == SHOAL_OK ? 0 : 1;
}
