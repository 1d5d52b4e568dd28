/* scheduler.c: see scheduler.h. Everything here but the functions marked thread-safe runs on
 * the owner thread; `mu` guards only the request queue and the change counter. */
#define _GNU_SOURCE /* pipe2 */
#define SHOAL_LOG_SUBSYS "scheduler"
#include "coordinator/scheduler.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/sha256.h"
#include "common/timeutil.h"

#define MAX_HOSTS 1024
#define QUEUE_SCAN 1000 /* queued jobs looked at per scheduling pass, at most */
#define QUEUE_PAGE 32   /* read from the store at a time */

typedef struct {
    uint64_t job_id;
    int attempt;
    int nalloc;
    int *host; /* indices into the hosts of the pass that started it, by name below */
    char (*host_name)[128];
    int *ranks;
    int gpus_per_rank;
    int cancel_requested;
    char cancel_reason[SHOAL_STORE_REASON_MAX];
} active_job;

typedef struct request {
    uint64_t id;
    char reason[SHOAL_STORE_REASON_MAX];
    int done;
    shoal_status st;
    shoal_job_state state;
    struct request *next;
} request;

struct shoal_scheduler {
    shoal_store *store;
    shoal_launcher_kind kind;
    shoal_launcher launcher;
    char scratch[SHOAL_LAUNCHER_SCRATCH_MAX];
    char coord_addr[512];
    char shoal_bin[SHOAL_MAX_PATH];
    double retry_base_s, retry_max_s;
    int wake_r, wake_w;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    request *requests; /* FIFO */
    uint64_t gen;
    active_job *act;
    int nact, cap;
    int dirty;
    double next_timer; /* wall time of the earliest retry backoff expiry; 0: none */
};

/* ---- change notification (thread-safe) ----------------------------------------------- */

static void bump(shoal_scheduler *s) {
    pthread_mutex_lock(&s->mu);
    s->gen++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void shoal_scheduler_wake(shoal_scheduler *s) {
    char c = 1;
    /* a full pipe already means "wake up": EAGAIN is fine */
    if (write(s->wake_w, &c, 1) < 0 && errno != EAGAIN)
        SHOAL_LOG_WARN("wake pipe: %s", strerror(errno));
    bump(s);
}

int shoal_scheduler_wait_change(shoal_scheduler *s, uint64_t *gen, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (s->gen == *gen) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) break;
    }
    int changed = s->gen != *gen;
    *gen = s->gen;
    pthread_mutex_unlock(&s->mu);
    return changed;
}

shoal_status shoal_scheduler_report_progress(shoal_scheduler *s, uint64_t id,
                                             const shoal_job_progress *p) {
    SHOAL_CHECK(shoal_store_job_set_progress(s->store, id, p));
    bump(s);
    return SHOAL_OK;
}

shoal_status shoal_scheduler_report_checkpoint(shoal_scheduler *s, uint64_t id,
                                               const char *path) {
    SHOAL_REQUIRE(path && path[0] == '/', SHOAL_ERR_INVALID_ARG,
                  "job %llu: checkpoint path must be absolute", (unsigned long long)id);
    SHOAL_CHECK(shoal_store_job_set_checkpoint(s->store, id, path));
    bump(s);
    return SHOAL_OK;
}

shoal_status shoal_scheduler_cancel(shoal_scheduler *s, uint64_t id, const char *reason,
                                    int timeout_ms, shoal_job_state *state) {
    request *r = calloc(1, sizeof *r);
    SHOAL_REQUIRE(r, SHOAL_ERR_NOMEM, "out of memory");
    r->id = id;
    snprintf(r->reason, sizeof r->reason, "%s", reason && reason[0] ? reason : "cancelled");
    pthread_mutex_lock(&s->mu);
    request **pp = &s->requests;
    while (*pp) pp = &(*pp)->next;
    *pp = r;
    pthread_mutex_unlock(&s->mu);
    shoal_scheduler_wake(s);
    double end = shoal_now_s() + timeout_ms / 1000.0;
    pthread_mutex_lock(&s->mu);
    while (!r->done && shoal_now_s() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    shoal_status st;
    if (r->done) {
        st = r->st;
        if (state) *state = r->state;
        free(r);
    } else {
        /* the owner frees it when it gets to it */
        r->done = -1;
        st = SHOAL_ERR_TIMEOUT;
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* ---- active attempts ------------------------------------------------------------------ */

static active_job *find_active(shoal_scheduler *s, uint64_t id) {
    for (int i = 0; i < s->nact; i++)
        if (s->act[i].job_id == id) return &s->act[i];
    return NULL;
}

static void free_active(active_job *a) {
    free(a->host);
    free(a->host_name);
    free(a->ranks);
}

static void remove_active(shoal_scheduler *s, uint64_t id) {
    for (int i = 0; i < s->nact; i++) {
        if (s->act[i].job_id != id) continue;
        free_active(&s->act[i]);
        s->act[i] = s->act[--s->nact];
        s->dirty = 1; /* slots freed */
        return;
    }
}

int shoal_scheduler_running(shoal_scheduler *s) { return s->nact; }

/* ---- checkpoints and models ------------------------------------------------------------- */

static long long trailing_number(const char *name) {
    size_t n = strlen(name), i = n;
    while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9') i--;
    return i < n ? atoll(name + i) : -1;
}

shoal_status shoal_find_checkpoint(const char *output_dir, char *out, size_t cap) {
    char dir[SHOAL_MAX_PATH], done[SHOAL_MAX_PATH + 300];
    out[0] = 0;
    if (!output_dir) return SHOAL_ERR_NOT_FOUND;
    SHOAL_CHECK(shoal_path_join(dir, sizeof dir, output_dir, "checkpoints"));
    DIR *d = opendir(dir);
    if (!d) return SHOAL_ERR_NOT_FOUND;
    long long best = -2;
    char best_name[256] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(done, sizeof done, "%s/%s/DONE", dir, e->d_name);
        if (!shoal_path_exists(done)) continue; /* incomplete: no DONE marker */
        long long k = trailing_number(e->d_name);
        if (k > best || (k == best && strcmp(e->d_name, best_name) > 0)) {
            best = k;
            snprintf(best_name, sizeof best_name, "%s", e->d_name);
        }
    }
    closedir(d);
    if (!best_name[0]) return SHOAL_ERR_NOT_FOUND;
    int n = snprintf(out, cap, "%s/%s", dir, best_name);
    SHOAL_REQUIRE(n > 0 && (size_t)n < cap, SHOAL_ERR_LIMIT, "checkpoint path too long");
    return SHOAL_OK;
}

static void register_model(shoal_scheduler *s, const shoal_job_record *r) {
    if (r->spec.kind != SHOAL_JOB_KIND_FINETUNE || !r->spec.output_dir) return;
    char path[SHOAL_MAX_PATH], hex[SHOAL_SHA256_HEX_LEN];
    if (shoal_path_join(path, sizeof path, r->spec.output_dir, "model.safetensors") != SHOAL_OK ||
        !shoal_path_exists(path))
        return;
    /* Hashing runs on the owner thread: fine for small models; big ones belong on a worker. */
    if (shoal_sha256_file(path, hex) != SHOAL_OK) return;
    if (shoal_store_model_register(s->store, r->id, r->spec.output_dir, hex, NULL) == SHOAL_OK)
        SHOAL_LOG_INFO("job %llu: registered model %s (sha256 %.12s...)",
                       (unsigned long long)r->id, r->spec.output_dir, hex);
}

/* ---- launcher callbacks (owner thread, from poll) ---------------------------------------- */

static void on_log(void *ctx, uint64_t job_id, int attempt, int rank, int stream,
                   const char *line) {
    shoal_scheduler *s = ctx;
    (void)attempt;
    if (shoal_store_log_append(s->store, job_id, rank, stream, line, NULL) == SHOAL_OK) bump(s);
}

static void on_running(void *ctx, uint64_t job_id, int attempt) {
    shoal_scheduler *s = ctx;
    char reason[64];
    snprintf(reason, sizeof reason, "attempt %d running", attempt);
    if (shoal_store_job_transition(s->store, job_id, SHOAL_JOB_RUNNING, reason, 0, 0, NULL) ==
        SHOAL_OK)
        bump(s);
}

static double retry_delay(const shoal_scheduler *s, int attempt) {
    double d = s->retry_base_s * pow(2.0, attempt < 30 ? attempt : 30);
    return d < s->retry_max_s ? d : s->retry_max_s;
}

static void finish(shoal_scheduler *s, uint64_t job_id, shoal_job_state to, const char *reason,
                   int exit_code, double retry_at) {
    shoal_job_state from = 0;
    shoal_status st =
        shoal_store_job_transition(s->store, job_id, to, reason, exit_code, retry_at, &from);
    if (st == SHOAL_ERR_INVALID_ARG && from == SHOAL_JOB_STARTING && to == SHOAL_JOB_SUCCEEDED) {
        /* ended before it was seen running: record both steps */
        shoal_store_job_transition(s->store, job_id, SHOAL_JOB_RUNNING, "running", 0, 0, NULL);
        st = shoal_store_job_transition(s->store, job_id, to, reason, exit_code, retry_at, NULL);
    }
    if (st != SHOAL_OK)
        SHOAL_LOG_ERROR("job %llu: could not record %s (%s)", (unsigned long long)job_id,
                        shoal_job_state_str(to), shoal_status_str(st));
    bump(s);
}

static void on_exit_cb(void *ctx, uint64_t job_id, int attempt, const shoal_launch_result *res) {
    shoal_scheduler *s = ctx;
    active_job *a = find_active(s, job_id);
    int cancel_requested = a && a->cancel_requested;
    char cancel_reason[SHOAL_STORE_REASON_MAX];
    snprintf(cancel_reason, sizeof cancel_reason, "%s", a ? a->cancel_reason : "cancelled");
    remove_active(s, job_id);
    shoal_job_record r;
    if (shoal_store_job_get(s->store, job_id, &r) != SHOAL_OK) return;
    char reason[SHOAL_STORE_REASON_MAX];
    if (cancel_requested || res->cancelled) {
        finish(s, job_id, SHOAL_JOB_CANCELLED, cancel_requested ? cancel_reason : res->reason,
               res->exit_code, 0);
    } else if (res->exit_code == 0) {
        finish(s, job_id, SHOAL_JOB_SUCCEEDED, res->reason, 0, 0);
        register_model(s, &r);
    } else if (attempt < r.spec.max_retries) {
        double delay = retry_delay(s, attempt);
        snprintf(reason, sizeof reason, "attempt %d failed (%.160s); retry %d of %d in %.1f s",
                 attempt, res->reason, attempt + 1, r.spec.max_retries, delay);
        finish(s, job_id, SHOAL_JOB_QUEUED, reason, res->exit_code, shoal_wall_s() + delay);
        s->next_timer = s->next_timer == 0 || shoal_wall_s() + delay < s->next_timer
                            ? shoal_wall_s() + delay
                            : s->next_timer;
    } else {
        snprintf(reason, sizeof reason, "%.200s%s", res->reason,
                 r.spec.max_retries ? " (no retries left)" : "");
        finish(s, job_id, SHOAL_JOB_FAILED, reason, res->exit_code, 0);
    }
    shoal_job_record_free(&r);
    s->dirty = 1;
}

/* ---- init / free ------------------------------------------------------------------------ */

/* Kill what a previous coordinator left of an attempt, if anything. */
static void kill_leftover(shoal_scheduler *s, const char *handle,
                          const shoal_launcher_config *lc) {
    if (strncmp(handle, "pid:", 4) == 0) {
        int pid = atoi(handle + 4);
        char path[64], comm[64] = "";
        snprintf(path, sizeof path, "/proc/%d/comm", pid);
        FILE *f = pid > 1 ? fopen(path, "r") : NULL;
        if (f) {
            if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
            fclose(f);
        }
        /* only if that pid is still an mpirun: after a reboot the number means nothing */
        if (strncmp(comm, "mpirun", 6) == 0 || strncmp(comm, "orterun", 7) == 0 ||
            strncmp(comm, "mpiexec", 7) == 0) {
            int n = shoal_kill_session_wait(pid, 5.0);
            if (n < 0)
                SHOAL_LOG_ERROR("%d leftover process(es) of session %d survived SIGKILL", -n, pid);
            else
                SHOAL_LOG_WARN("killed leftover processes of session %d (%d signals)", pid, n);
        }
    } else if (strncmp(handle, "slurm:", 6) == 0) {
        char conf[SHOAL_MAX_PATH + 16] = "", out[256];
        if (lc->slurm_conf) snprintf(conf, sizeof conf, "SLURM_CONF=%s", lc->slurm_conf);
        char *argv[] = {"scancel", (char *)handle + 6, NULL};
        char *env[] = {conf};
        int code;
        shoal_run_capture(argv, env, conf[0] ? 1 : 0, 30, out, sizeof out, &code);
    }
    (void)s;
}

static shoal_status recover(shoal_scheduler *s, const shoal_launcher_config *lc) {
    shoal_job_record *recs = NULL;
    int n = 0;
    unsigned mask = SHOAL_JOB_STATE_BIT(SHOAL_JOB_STARTING) | SHOAL_JOB_STATE_BIT(SHOAL_JOB_RUNNING);
    SHOAL_CHECK(shoal_store_job_list(s->store, mask, NULL, 0, 0, &recs, &n));
    for (int i = 0; i < n; i++) {
        if (recs[i].launch_handle[0]) kill_leftover(s, recs[i].launch_handle, lc);
        shoal_store_job_transition(s->store, recs[i].id, SHOAL_JOB_QUEUED,
                                   "coordinator restarted; relaunching from the last checkpoint",
                                   0, 0, NULL);
        SHOAL_LOG_WARN("job %llu: was %s when the coordinator stopped; requeued",
                       (unsigned long long)recs[i].id, shoal_job_state_str(recs[i].state));
    }
    shoal_job_records_free(recs, n);
    return SHOAL_OK;
}

shoal_status shoal_scheduler_init(const shoal_scheduler_config *cfg, shoal_scheduler **out) {
    *out = NULL;
    SHOAL_REQUIRE(cfg && cfg->store, SHOAL_ERR_INVALID_ARG, "scheduler: no store");
    shoal_scheduler *s = calloc(1, sizeof *s);
    SHOAL_REQUIRE(s, SHOAL_ERR_NOMEM, "out of memory");
    shoal_status st = SHOAL_OK;
    s->store = cfg->store;
    s->kind = cfg->launcher;
    s->wake_r = s->wake_w = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    snprintf(s->coord_addr, sizeof s->coord_addr, "%s",
             cfg->coordinator_addr ? cfg->coordinator_addr : "");
    snprintf(s->shoal_bin, sizeof s->shoal_bin, "%s", cfg->shoal_bin ? cfg->shoal_bin : "shoal");
    snprintf(s->scratch, sizeof s->scratch, "%s",
             cfg->launch.scratch_dir ? cfg->launch.scratch_dir : "");
    s->retry_base_s = cfg->retry_base_s > 0 ? cfg->retry_base_s : 5.0;
    s->retry_max_s = cfg->retry_max_s > 0 ? cfg->retry_max_s : 300.0;
    s->dirty = 1;
    int p[2];
    SHOAL_REQUIRE_GOTO(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0, SHOAL_ERR_IO, "pipe: %s",
                       strerror(errno));
    s->wake_r = p[0];
    s->wake_w = p[1];
    shoal_launcher_config lc = cfg->launch;
    lc.wake_fd = s->wake_r;
    shoal_launcher_callbacks cb = {s, on_log, on_running, on_exit_cb};
    SHOAL_CHECK_GOTO(recover(s, &lc));
    SHOAL_CHECK_GOTO(shoal_launcher_init(&s->launcher, cfg->launcher, &lc, &cb));
    *out = s;
cleanup:
    if (st != SHOAL_OK) shoal_scheduler_free(s);
    return st;
}

void shoal_scheduler_free(shoal_scheduler *s) {
    if (!s) return;
    shoal_launcher_free(&s->launcher);
    for (int i = 0; i < s->nact; i++) free_active(&s->act[i]);
    free(s->act);
    for (request *r = s->requests, *next; r; r = next) {
        next = r->next;
        free(r);
    }
    if (s->wake_r >= 0) close(s->wake_r);
    if (s->wake_w >= 0) close(s->wake_w);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* ---- requests (owner thread) ------------------------------------------------------------- */

static void handle_cancel(shoal_scheduler *s, request *q) {
    shoal_job_record r;
    q->st = shoal_store_job_get(s->store, q->id, &r);
    if (q->st != SHOAL_OK) return;
    q->state = r.state;
    if (r.state == SHOAL_JOB_QUEUED) {
        q->st = shoal_store_job_transition(s->store, q->id, SHOAL_JOB_CANCELLED, q->reason, 0, 0,
                                           NULL);
        if (q->st == SHOAL_OK) q->state = SHOAL_JOB_CANCELLED;
        bump(s);
    } else if (!shoal_job_state_terminal(r.state)) {
        active_job *a = find_active(s, q->id);
        if (a && !a->cancel_requested) {
            a->cancel_requested = 1;
            snprintf(a->cancel_reason, sizeof a->cancel_reason, "%s", q->reason);
            q->st = shoal_launcher_cancel(&s->launcher, q->id);
        }
        if (!a || q->st == SHOAL_ERR_NOT_FOUND) {
            /* no attempt behind it (it cannot happen on one owner; be safe anyway) */
            if (a) remove_active(s, q->id);
            q->st = shoal_store_job_transition(s->store, q->id, SHOAL_JOB_CANCELLED, q->reason,
                                               0, 0, NULL);
            if (q->st == SHOAL_OK) q->state = SHOAL_JOB_CANCELLED;
            bump(s);
        }
    }
    shoal_job_record_free(&r);
}

static void handle_requests(shoal_scheduler *s) {
    char buf[64];
    int woke = 0;
    while (read(s->wake_r, buf, sizeof buf) > 0) woke = 1;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        request *q = s->requests;
        if (q) s->requests = q->next;
        pthread_mutex_unlock(&s->mu);
        if (!q) break;
        handle_cancel(s, q);
        pthread_mutex_lock(&s->mu);
        if (q->done == -1) {
            free(q); /* the caller gave up waiting */
        } else {
            q->done = 1;
        }
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    if (woke) s->dirty = 1; /* a wake-up usually means a submission */
}

/* ---- scheduling ------------------------------------------------------------------------- */

typedef struct {
    shoal_host h;
    int cpu_free, gpu_free;
} slot_host;

static int load_slots(shoal_scheduler *s, slot_host **out) {
    shoal_host *hs = NULL;
    int n = 0;
    *out = NULL;
    if (shoal_store_host_list(s->store, &hs, &n) != SHOAL_OK) return -1;
    if (n == 0 && s->kind == SHOAL_LAUNCHER_LOCAL) {
        /* no hosts table: this host, one CPU slot per online core */
        hs = calloc(1, sizeof *hs);
        if (!hs) return -1;
        snprintf(hs->name, sizeof hs->name, "localhost");
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        hs->cpu_slots = c > 0 ? (int)c : 1;
        n = 1;
    }
    slot_host *sh = calloc((size_t)(n > 0 ? n : 1), sizeof *sh);
    if (!sh) {
        free(hs);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        sh[i].h = hs[i];
        sh[i].cpu_free = hs[i].cpu_slots;
        sh[i].gpu_free = hs[i].gpus;
    }
    free(hs);
    /* subtract what running attempts hold */
    for (int a = 0; a < s->nact; a++)
        for (int k = 0; k < s->act[a].nalloc; k++)
            for (int i = 0; i < n; i++)
                if (strcmp(sh[i].h.name, s->act[a].host_name[k]) == 0) {
                    sh[i].cpu_free -= s->act[a].ranks[k];
                    sh[i].gpu_free -= s->act[a].ranks[k] * s->act[a].gpus_per_rank;
                }
    *out = sh;
    return n;
}

/* Ranks host i can take for this job. */
static int fits(const slot_host *h, int g, int use_free) {
    int cpu = use_free ? h->cpu_free : h->h.cpu_slots;
    int gpu = use_free ? h->gpu_free : h->h.gpus;
    if (cpu < 0) cpu = 0;
    if (g > 0) {
        int by_gpu = gpu > 0 ? gpu / g : 0;
        return by_gpu < cpu ? by_gpu : cpu;
    }
    return cpu;
}

static void fail_unlaunched(shoal_scheduler *s, uint64_t id, const char *reason) {
    shoal_store_job_transition(s->store, id, SHOAL_JOB_STARTING, "scheduling", 0, 0, NULL);
    finish(s, id, SHOAL_JOB_FAILED, reason, 0, 0);
}

/* 128 random bits as hex: the secret ranks of one attempt present to RunService. */
static shoal_status random_token(char out[33]) {
    unsigned char b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, b, sizeof b) : -1;
    if (fd >= 0) close(fd);
    SHOAL_REQUIRE(n == (ssize_t)sizeof b, SHOAL_ERR_IO, "cannot read /dev/urandom");
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
    return SHOAL_OK;
}

/* Build the per-rank environment and command, and launch. */
static shoal_status launch(shoal_scheduler *s, const shoal_job_record *r, active_job *a,
                           const char *alloc) {
    const shoal_job_spec *sp = &r->spec;
    shoal_status st = SHOAL_OK;
    char resume[SHOAL_MAX_PATH] = "", spec_path[SHOAL_MAX_PATH + 64] = "";
    char e_id[48], e_att[48], e_coord[600], e_resume[SHOAL_MAX_PATH + 32], e_tok[80];
    char token[33];
    char **env = NULL, **argv = NULL;
    int nenv = 0, argc = 0;
    if (r->attempt > 0) {
        if (r->last_checkpoint[0])
            snprintf(resume, sizeof resume, "%s", r->last_checkpoint);
        else
            shoal_find_checkpoint(sp->output_dir, resume, sizeof resume);
    }
    SHOAL_CHECK_GOTO(random_token(token));
    env = calloc((size_t)sp->nenv + 5, sizeof *env);
    argv = calloc((size_t)sp->argc + 8, sizeof *argv);
    SHOAL_REQUIRE_GOTO(env && argv, SHOAL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < sp->nenv; i++) env[nenv++] = sp->env[i];
    snprintf(e_id, sizeof e_id, "SHOAL_JOB_ID=%llu", (unsigned long long)r->id);
    snprintf(e_att, sizeof e_att, "SHOAL_ATTEMPT=%d", r->attempt);
    env[nenv++] = e_id;
    env[nenv++] = e_att;
    snprintf(e_tok, sizeof e_tok, "SHOAL_RUN_TOKEN=%s", token);
    env[nenv++] = e_tok;
    /* stored before the ranks exist, so their first report is recognised */
    SHOAL_CHECK_GOTO(shoal_store_job_set_run_token(s->store, r->id, token));
    if (s->coord_addr[0]) {
        snprintf(e_coord, sizeof e_coord, "SHOAL_COORDINATOR=%s", s->coord_addr);
        env[nenv++] = e_coord;
    }
    if (resume[0]) {
        snprintf(e_resume, sizeof e_resume, "SHOAL_RESUME_FROM=%s", resume);
        env[nenv++] = e_resume;
    }
    if (sp->kind == SHOAL_JOB_KIND_COMMAND) {
        for (int i = 0; i < sp->argc; i++) argv[argc++] = sp->argv[i];
    } else {
        /* shoal train reads the whole validated spec from a file */
        char *json = NULL;
        snprintf(spec_path, sizeof spec_path, "%s/job-%llu.json", s->scratch,
                 (unsigned long long)r->id);
        SHOAL_CHECK_GOTO(shoal_job_spec_to_string(sp, &json));
        st = shoal_file_write_atomic(spec_path, json, strlen(json));
        free(json);
        if (st != SHOAL_OK) goto cleanup;
        argv[argc++] = s->shoal_bin;
        argv[argc++] = "train";
        argv[argc++] = "--spec";
        argv[argc++] = spec_path;
        if (resume[0]) {
            argv[argc++] = "--resume";
            argv[argc++] = resume;
        }
    }
    shoal_launch_req req = {.job_id = r->id,
                            .attempt = r->attempt,
                            .name = sp->name,
                            .ranks = sp->ranks,
                            .gpus_per_rank = sp->gpus_per_rank,
                            .argv = argv,
                            .argc = argc,
                            .env = env,
                            .nenv = nenv,
                            .workdir = sp->workdir,
                            .alloc = alloc,
                            .time_limit_s = sp->time_limit_s};
    char handle[SHOAL_STORE_HANDLE_MAX];
    SHOAL_CHECK_GOTO(shoal_launcher_start(&s->launcher, &req, handle, sizeof handle));
    a->job_id = r->id;
    a->attempt = r->attempt;
    shoal_store_job_set_launch(s->store, r->id, handle, alloc);
    if (resume[0])
        SHOAL_LOG_INFO("job %llu attempt %d: resuming from %s", (unsigned long long)r->id,
                       r->attempt, resume);
cleanup:
    free(env);
    free(argv);
    return st;
}

static void start_job(shoal_scheduler *s, const shoal_job_record *r, slot_host *hosts,
                      int nhosts, const int *take) {
    active_job a;
    memset(&a, 0, sizeof a);
    char alloc[1024] = "";
    size_t n = 0;
    for (int i = 0; i < nhosts; i++)
        if (take[i] > 0) a.nalloc++;
    if (a.nalloc > 0) {
        a.host_name = calloc((size_t)a.nalloc, sizeof *a.host_name);
        a.ranks = calloc((size_t)a.nalloc, sizeof *a.ranks);
        a.host = calloc((size_t)a.nalloc, sizeof *a.host);
        if (!a.host_name || !a.ranks || !a.host) {
            free_active(&a);
            return; /* stays queued; tried again next pass */
        }
    }
    int k = 0;
    for (int i = 0; i < nhosts; i++) {
        if (take[i] <= 0) continue;
        snprintf(a.host_name[k], sizeof a.host_name[k], "%s", hosts[i].h.name);
        a.ranks[k] = take[i];
        a.host[k] = i;
        k++;
        int w = snprintf(alloc + n, sizeof alloc - n, "%s%s:%d", n ? "," : "",
                         hosts[i].h.addr[0] ? hosts[i].h.addr : hosts[i].h.name, take[i]);
        if (w > 0 && (size_t)w < sizeof alloc - n) n += (size_t)w;
    }
    a.gpus_per_rank = r->spec.gpus_per_rank;
    char reason[SHOAL_STORE_REASON_MAX];
    snprintf(reason, sizeof reason, "attempt %d starting%s%.200s", r->attempt, alloc[0] ? " on " : "",
             alloc);
    if (shoal_store_job_transition(s->store, r->id, SHOAL_JOB_STARTING, reason, 0, 0, NULL) !=
        SHOAL_OK) {
        free_active(&a);
        return;
    }
    bump(s);
    shoal_status st = launch(s, r, &a, alloc);
    if (st != SHOAL_OK) {
        free_active(&a);
        char why[SHOAL_STORE_REASON_MAX];
        if (r->attempt < r->spec.max_retries) {
            double delay = retry_delay(s, r->attempt);
            snprintf(why, sizeof why, "launch failed (%s); retry in %.1f s", shoal_status_str(st),
                     delay);
            finish(s, r->id, SHOAL_JOB_QUEUED, why, 0, shoal_wall_s() + delay);
        } else {
            snprintf(why, sizeof why, "launch failed (%s)", shoal_status_str(st));
            finish(s, r->id, SHOAL_JOB_FAILED, why, 0, 0);
        }
        return;
    }
    for (int i = 0; i < nhosts; i++) {
        hosts[i].cpu_free -= take[i];
        hosts[i].gpu_free -= take[i] * r->spec.gpus_per_rank;
    }
    if (s->nact == s->cap) {
        int cap = s->cap ? s->cap * 2 : 8;
        active_job *na = realloc(s->act, (size_t)cap * sizeof *na);
        if (!na) {
            /* cannot track it: stop it rather than lose it */
            shoal_launcher_cancel(&s->launcher, r->id);
            free_active(&a);
            return;
        }
        s->act = na;
        s->cap = cap;
    }
    s->act[s->nact++] = a;
}

static void schedule(shoal_scheduler *s) {
    slot_host *hosts = NULL;
    int nh = s->kind == SHOAL_LAUNCHER_SLURM ? 0 : load_slots(s, &hosts);
    int *take = calloc((size_t)(nh > 0 ? nh : 1), sizeof *take);
    double now = shoal_wall_s();
    s->next_timer = 0;
    /* Read the queue a page at a time: usually the pass stops at the first job that does not
     * fit, so a long queue costs one small page, not QUEUE_SCAN parsed records. Jobs started or
     * failed leave the QUEUED state, so the next page starts after the ones left in it. */
    /* Pages grow 1, 2, 4, .. QUEUE_PAGE: when the head of the queue waits for slots (the
     * usual case under a burst of submissions) a pass parses one spec, not a page of them. */
    int still_queued = 0, scanned = 0, blocked = 0, page = 1;
    while (!blocked && nh >= 0 && take && scanned < QUEUE_SCAN) {
        shoal_job_record *q = NULL;
        int nq = 0;
        if (shoal_store_job_queue(s->store, SHOAL_JOB_STATE_BIT(SHOAL_JOB_QUEUED), still_queued,
                                  page, &q, &nq) != SHOAL_OK)
            break;
        scanned += nq;
        for (int j = 0; j < nq && !blocked; j++) {
            const shoal_job_record *r = &q[j];
            if (r->not_before > now) {
                if (s->next_timer == 0 || r->not_before < s->next_timer)
                    s->next_timer = r->not_before;
                still_queued++;
                continue; /* backing off: does not block the queue */
            }
            if (r->spec.launcher != SHOAL_LAUNCHER_DEFAULT && r->spec.launcher != s->kind) {
                char why[160];
                snprintf(why, sizeof why, "asks for the %s launcher; this coordinator runs %s",
                         shoal_launcher_kind_str(r->spec.launcher),
                         shoal_launcher_kind_str(s->kind));
                fail_unlaunched(s, r->id, why);
                continue;
            }
            if (s->kind == SHOAL_LAUNCHER_SLURM) {
                start_job(s, r, NULL, 0, take);
                continue;
            }
            int g = r->spec.gpus_per_rank, cap_total = 0, free_total = 0;
            for (int i = 0; i < nh; i++) {
                cap_total += fits(&hosts[i], g, 0);
                free_total += fits(&hosts[i], g, 1);
            }
            if (cap_total < r->spec.ranks) {
                char why[200];
                snprintf(why, sizeof why,
                         "needs %d rank(s) with %d GPU(s) each; all hosts together fit only %d",
                         r->spec.ranks, g, cap_total);
                fail_unlaunched(s, r->id, why);
                continue;
            }
            if (free_total < r->spec.ranks) {
                blocked = 1; /* gang: all or nothing, in order */
                break;
            }
            /* pack: fullest-fitting hosts first keeps big holes for big jobs */
            int left = r->spec.ranks;
            memset(take, 0, (size_t)nh * sizeof *take);
            while (left > 0) {
                int best = -1, best_fit = 0;
                for (int i = 0; i < nh; i++) {
                    int f = fits(&hosts[i], g, 1) - take[i];
                    if (f > best_fit) {
                        best = i;
                        best_fit = f;
                    }
                }
                if (best < 0) break;
                int t = best_fit < left ? best_fit : left;
                take[best] += t;
                left -= t;
            }
            if (left > 0) {
                blocked = 1;
                break;
            }
            start_job(s, r, hosts, nh, take);
        }
        shoal_job_records_free(q, nq);
        if (nq < page) break;
        if (page < QUEUE_PAGE) page *= 2;
    }
    free(take);
    free(hosts);
}

shoal_status shoal_scheduler_step(shoal_scheduler *s, int max_wait_ms) {
    handle_requests(s);
    double now = shoal_wall_s();
    if (s->next_timer && now >= s->next_timer) s->dirty = 1;
    if (s->dirty) {
        s->dirty = 0;
        schedule(s);
    }
    int wait = max_wait_ms;
    if (s->next_timer) {
        double ms = (s->next_timer - shoal_wall_s()) * 1000.0;
        if (ms < 0) ms = 0;
        if (wait < 0 || ms < wait) wait = (int)ceil(ms);
    }
    if (s->dirty) wait = 0;
    SHOAL_CHECK(shoal_launcher_poll(&s->launcher, wait));
    return SHOAL_OK;
}
