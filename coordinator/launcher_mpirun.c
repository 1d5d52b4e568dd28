/* launcher_mpirun.c: the local and hostfile launchers. Both run Open MPI's `mpirun` as a
 * supervised child: local with `-np N` on this host, hostfile with a per-attempt
 * `--hostfile` written from the scheduler's allocation ("host slots=k" lines).
 *
 * Why shaped so: mpirun already does process placement, rank numbering, output forwarding
 * and teardown; we add supervision. The child starts a new session (setsid) so that every
 * rank, even one Open MPI moved to its own process group (it does: each rank gets its own
 * pgid), stays findable by session id; cancel sends SIGTERM to mpirun's group and to the
 * session, then SIGKILL after the grace time, and when mpirun exits any straggler left in
 * the session is killed before the exit is reported. Exits are detected through a pidfd in
 * the same poll() as the output pipes; without pidfd support a 100 ms waitid(WNOHANG) tick
 * does it. `--tag-output` prefixes each line with "[job,rank]<stdout>:", which gives the
 * rank and stream of every line. As root Open MPI refuses to run without
 * --allow-run-as-root; the local launcher adds --oversubscribe and --bind-to none because
 * our scheduler, not Open MPI's core count, decides how many ranks fit on this host
 * (research/infra.md §3.1).
 * Tested by tests/coordinator/test_launcher.c (label mpi).
 */
#define _GNU_SOURCE /* pipe2 */
#define SHOAL_LOG_SUBSYS "launcher"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/limits.h"
#include "common/timeutil.h"
#include "coordinator/launcher.h"

typedef struct run {
    uint64_t job_id;
    int attempt;
    pid_t pid;            /* mpirun; also the session id of the attempt */
    int pidfd;            /* -1 when the kernel has no pidfd_open */
    int fd[2];            /* stdout, stderr read ends; -1 once at EOF */
    shoal_line_buf lb[2];
    int exited, status;
    double exit_at;       /* when mpirun was reaped */
    int cancelled;
    int announced;        /* on_running delivered */
    double kill_at;       /* SIGKILL due at this time (0: not scheduled) */
    char hostfile[SHOAL_MAX_PATH];
    struct run *next;
} run;

typedef struct {
    int use_hostfile;
    shoal_launcher_callbacks cb;
    char scratch[SHOAL_LAUNCHER_SCRATCH_MAX];
    char mpirun[SHOAL_MAX_PATH];
    double grace_s;
    int wake_fd;
    run *runs;
} mpirun_launcher;

/* After mpirun exits, how long we still wait for its pipes to reach EOF (a rank's orphaned
 * child could hold them open) before reporting the exit. */
#define DRAIN_GRACE_S 2.0
#define ENV_NAME_MAX 128

static shoal_status create_common(const shoal_launcher_config *cfg,
                                  const shoal_launcher_callbacks *cb, int use_hostfile,
                                  void **impl) {
    mpirun_launcher *m = calloc(1, sizeof *m);
    SHOAL_REQUIRE(m, SHOAL_ERR_NOMEM, "out of memory");
    m->use_hostfile = use_hostfile;
    m->cb = *cb;
    snprintf(m->scratch, sizeof m->scratch, "%s", cfg->scratch_dir);
    snprintf(m->mpirun, sizeof m->mpirun, "%s", cfg->mpirun ? cfg->mpirun : "mpirun");
    m->grace_s = cfg->kill_grace_s > 0 ? cfg->kill_grace_s : 5.0;
    m->wake_fd = cfg->wake_fd > 0 ? cfg->wake_fd : -1;
    *impl = m;
    return SHOAL_OK;
}

static shoal_status create_local(const shoal_launcher_config *cfg,
                                 const shoal_launcher_callbacks *cb, void **impl) {
    return create_common(cfg, cb, 0, impl);
}

static shoal_status create_hostfile(const shoal_launcher_config *cfg,
                                    const shoal_launcher_callbacks *cb, void **impl) {
    return create_common(cfg, cb, 1, impl);
}

static void free_run(run *r) {
    for (int i = 0; i < 2; i++) {
        if (r->fd[i] >= 0) close(r->fd[i]);
        shoal_line_buf_free(&r->lb[i]);
    }
    if (r->pidfd >= 0) close(r->pidfd);
    if (r->hostfile[0]) unlink(r->hostfile);
    free(r);
}

static void destroy(void *impl) {
    mpirun_launcher *m = impl;
    if (!m) return;
    for (run *r = m->runs, *next; r; r = next) {
        next = r->next;
        if (!r->exited) {
            kill(-r->pid, SIGKILL);
            shoal_kill_session_wait(r->pid, 2.0);
            while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR) {
            }
        }
        free_run(r);
    }
    free(m);
}

/* "a:2,b:1" -> "a slots=2\nb slots=1\n" into path. */
static shoal_status write_hostfile(const char *alloc, const char *path) {
    SHOAL_REQUIRE(alloc && alloc[0], SHOAL_ERR_INVALID_ARG,
                  "hostfile launcher: the job has no host allocation");
    char text[4096];
    size_t n = 0;
    const char *p = alloc;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        SHOAL_REQUIRE(colon && colon > p, SHOAL_ERR_INVALID_ARG,
                      "hostfile launcher: bad allocation entry in \"%s\"", alloc);
        int slots = atoi(colon + 1);
        SHOAL_REQUIRE(slots > 0, SHOAL_ERR_INVALID_ARG,
                      "hostfile launcher: bad slot count in \"%s\"", alloc);
        int k = snprintf(text + n, sizeof text - n, "%.*s slots=%d\n", (int)(colon - p), p,
                         slots);
        SHOAL_REQUIRE(k > 0 && (size_t)k < sizeof text - n, SHOAL_ERR_LIMIT,
                      "hostfile launcher: allocation too long");
        n += (size_t)k;
        p += len;
        if (*p == ',') p++;
    }
    return shoal_file_write_atomic(path, text, n);
}

static shoal_status start(void *impl, const shoal_launch_req *req, char *handle,
                          size_t handle_cap) {
    mpirun_launcher *m = impl;
    shoal_status st = SHOAL_OK;
    char np[16];
    const char **argv = NULL;
    char (*names)[ENV_NAME_MAX] = NULL;
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    run *r = calloc(1, sizeof *r);
    SHOAL_REQUIRE(r, SHOAL_ERR_NOMEM, "out of memory");
    r->job_id = req->job_id;
    r->attempt = req->attempt;
    r->fd[0] = r->fd[1] = r->pidfd = -1;
    for (run *x = m->runs; x; x = x->next)
        SHOAL_REQUIRE_GOTO(x->job_id != req->job_id, SHOAL_ERR_INVALID_ARG,
                           "job %llu already has a running attempt",
                           (unsigned long long)req->job_id);

    /* mpirun [opts] -x K ... -- argv... */
    size_t max = (size_t)(16 + 2 * req->nenv + req->argc + 1);
    argv = calloc(max, sizeof *argv);
    SHOAL_REQUIRE_GOTO(argv, SHOAL_ERR_NOMEM, "out of memory");
    int a = 0;
    argv[a++] = m->mpirun;
    argv[a++] = "--tag-output";
    snprintf(np, sizeof np, "%d", req->ranks);
    argv[a++] = "-np";
    argv[a++] = np;
    if (geteuid() == 0) argv[a++] = "--allow-run-as-root";
    if (m->use_hostfile) {
        snprintf(r->hostfile, sizeof r->hostfile, "%s/job-%llu-%d.hosts", m->scratch,
                 (unsigned long long)req->job_id, req->attempt);
        SHOAL_CHECK_GOTO(write_hostfile(req->alloc, r->hostfile));
        argv[a++] = "--hostfile";
        argv[a++] = r->hostfile;
    } else {
        argv[a++] = "--oversubscribe";
        argv[a++] = "--bind-to";
        argv[a++] = "none";
    }
    argv[a++] = "--wdir";
    argv[a++] = req->workdir ? req->workdir : m->scratch;
    if (req->nenv > 0) {
        names = calloc((size_t)req->nenv, ENV_NAME_MAX);
        SHOAL_REQUIRE_GOTO(names, SHOAL_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < req->nenv; i++) {
        /* The value travels in mpirun's own environment (set in the child below); -x NAME
         * forwards it to every rank, remote ones too. The name is validated upstream. */
        const char *eq = strchr(req->env[i], '=');
        size_t nl = eq ? (size_t)(eq - req->env[i]) : strlen(req->env[i]);
        SHOAL_REQUIRE_GOTO(nl > 0 && nl < ENV_NAME_MAX, SHOAL_ERR_INVALID_ARG,
                           "job %llu: bad environment entry \"%s\"",
                           (unsigned long long)req->job_id, req->env[i]);
        memcpy(names[i], req->env[i], nl);
        names[i][nl] = 0;
        argv[a++] = "-x";
        argv[a++] = names[i];
    }
    argv[a++] = "--";
    for (int i = 0; i < req->argc; i++) argv[a++] = req->argv[i];
    argv[a] = NULL;

    SHOAL_REQUIRE_GOTO(pipe2(po, O_CLOEXEC) == 0 && pipe2(pe, O_CLOEXEC) == 0, SHOAL_ERR_IO,
                       "pipe: %s", strerror(errno));
    pid_t pid = fork();
    SHOAL_REQUIRE_GOTO(pid >= 0, SHOAL_ERR_IO, "fork: %s", strerror(errno));
    if (pid == 0) {
        setsid();
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        for (int i = 0; i < req->nenv; i++) putenv(req->env[i]);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "shoal: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    po[1] = pe[1] = -1;
    r->pid = pid;
    r->fd[0] = po[0];
    r->fd[1] = pe[0];
    po[0] = pe[0] = -1;
    for (int i = 0; i < 2; i++) fcntl(r->fd[i], F_SETFL, fcntl(r->fd[i], F_GETFL) | O_NONBLOCK);
#ifdef SYS_pidfd_open
    r->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
    r->next = m->runs;
    m->runs = r;
    snprintf(handle, handle_cap, "pid:%d", (int)pid);
    SHOAL_LOG_INFO("job %llu attempt %d: started %s with %d rank(s) (pid %d)",
                   (unsigned long long)req->job_id, req->attempt, m->mpirun, req->ranks,
                   (int)pid);
    r = NULL;
cleanup:
    for (int i = 0; i < 2; i++) {
        if (po[i] >= 0) close(po[i]);
        if (pe[i] >= 0) close(pe[i]);
    }
    free(argv);
    free(names);
    if (r) free_run(r);
    return st;
}

static shoal_status cancel(void *impl, uint64_t job_id) {
    mpirun_launcher *m = impl;
    for (run *r = m->runs; r; r = r->next) {
        if (r->job_id != job_id) continue;
        r->cancelled = 1;
        if (!r->exited && !r->kill_at) {
            kill(-r->pid, SIGTERM);
            shoal_kill_session(r->pid, SIGTERM);
            r->kill_at = shoal_now_s() + m->grace_s;
            SHOAL_LOG_INFO("job %llu: cancel: SIGTERM sent to session %d",
                           (unsigned long long)job_id, (int)r->pid);
        }
        return SHOAL_OK;
    }
    return SHOAL_ERR_NOT_FOUND;
}

typedef struct {
    mpirun_launcher *m;
    run *r;
    int stream;
} emit_ctx;

/* "[1,3]<stdout>:text" -> rank 3, stream 1, text. Anything else is mpirun's own output. */
static void emit_line(void *p, const char *line) {
    emit_ctx *e = p;
    int rank = -1, stream = e->stream;
    const char *text = line;
    int jobno, rk, off = 0;
    char tag[8];
    if (line[0] == '[' && sscanf(line, "[%d,%d]<%7[a-z]>:%n", &jobno, &rk, tag, &off) == 3 &&
        off > 0) {
        if (strcmp(tag, "stdout") == 0 || strcmp(tag, "stderr") == 0) {
            rank = rk;
            stream = tag[3] == 'o' ? 1 : 2;
            text = line + off;
        }
    }
    e->m->cb.on_log(e->m->cb.ctx, e->r->job_id, e->r->attempt, rank, stream, text);
}

static void drain(mpirun_launcher *m, run *r, int i) {
    char buf[16384];
    emit_ctx e = {m, r, i + 1};
    for (;;) {
        ssize_t n = read(r->fd[i], buf, sizeof buf);
        if (n > 0) {
            shoal_line_buf_feed(&r->lb[i], buf, (size_t)n, 0, emit_line, &e);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        /* EOF or error: flush the partial line and close */
        shoal_line_buf_feed(&r->lb[i], "", 0, 1, emit_line, &e);
        close(r->fd[i]);
        r->fd[i] = -1;
        return;
    }
}

/* Has mpirun exited? Checked without reaping (WNOWAIT) so that the session's stragglers can
 * be killed while the zombie still holds the pid (no pid reuse race), then reaped. */
static void check_exit(run *r) {
    if (r->exited) return;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0)
        return;
    shoal_kill_session(r->pid, SIGKILL);
    int status = 0;
    while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR) {
    }
    r->exited = 1;
    r->status = status;
    r->exit_at = shoal_now_s();
}

static void report(mpirun_launcher *m, run *r) {
    shoal_launch_result res;
    memset(&res, 0, sizeof res);
    res.cancelled = r->cancelled;
    if (WIFEXITED(r->status)) {
        res.exit_code = WEXITSTATUS(r->status);
        snprintf(res.reason, sizeof res.reason, "%sexit code %d", r->cancelled ? "cancelled; " : "",
                 res.exit_code);
    } else if (WIFSIGNALED(r->status)) {
        res.exit_code = 128 + WTERMSIG(r->status);
        snprintf(res.reason, sizeof res.reason, "%smpirun killed by signal %d",
                 r->cancelled ? "cancelled; " : "", WTERMSIG(r->status));
    } else {
        res.exit_code = 255;
        snprintf(res.reason, sizeof res.reason, "mpirun ended abnormally");
    }
    SHOAL_LOG_INFO("job %llu attempt %d: %s", (unsigned long long)r->job_id, r->attempt,
                   res.reason);
    m->cb.on_exit(m->cb.ctx, r->job_id, r->attempt, &res);
}

static shoal_status poll_runs(void *impl, int timeout_ms) {
    mpirun_launcher *m = impl;
    struct pollfd pf[3 * 64 + 1];
    int n = 0;
    double now = shoal_now_s();
    if (m->wake_fd >= 0) pf[n++] = (struct pollfd){m->wake_fd, POLLIN, 0};
    for (run *r = m->runs; r; r = r->next) {
        if (!r->announced) timeout_ms = 0; /* deliver on_running now */
        if (n + 3 > (int)(sizeof pf / sizeof pf[0])) continue; /* drained below anyway */
        for (int i = 0; i < 2; i++)
            if (r->fd[i] >= 0) {
                pf[n++] = (struct pollfd){r->fd[i], POLLIN, 0};
            }
        if (!r->exited && r->pidfd >= 0) {
            pf[n++] = (struct pollfd){r->pidfd, POLLIN, 0};
        }
        /* ticks: no pidfd, a SIGKILL due, or an exit waiting for its pipes to drain */
        int tick_ms = -1;
        if (!r->exited && r->pidfd < 0) tick_ms = 100;
        if (r->kill_at) tick_ms = 100;
        if (r->exited) tick_ms = 50;
        if (tick_ms >= 0 && (timeout_ms < 0 || timeout_ms > tick_ms)) timeout_ms = tick_ms;
    }
    if (n > 0 || timeout_ms != 0) {
        if (n == 0 && timeout_ms < 0) timeout_ms = 1000; /* nothing to wait on: don't hang */
        int rc = poll(pf, (nfds_t)n, timeout_ms);
        if (rc < 0 && errno != EINTR) {
            SHOAL_LOG_ERROR("poll: %s", strerror(errno));
            return SHOAL_ERR_IO;
        }
    }
    now = shoal_now_s();
    for (run *r = m->runs; r; r = r->next) {
        if (!r->announced) {
            r->announced = 1;
            if (m->cb.on_running) m->cb.on_running(m->cb.ctx, r->job_id, r->attempt);
        }
        for (int i = 0; i < 2; i++)
            if (r->fd[i] >= 0) drain(m, r, i);
        check_exit(r);
        if (!r->exited && r->kill_at && now >= r->kill_at) {
            SHOAL_LOG_WARN("job %llu: still running %.0f s after SIGTERM; sending SIGKILL",
                           (unsigned long long)r->job_id, m->grace_s);
            kill(-r->pid, SIGKILL);
            shoal_kill_session(r->pid, SIGKILL);
            r->kill_at = 0;
        }
    }
    /* report exits whose output is complete (or whose pipes are held by a leftover) */
    run **pp = &m->runs;
    while (*pp) {
        run *r = *pp;
        int pipes_open = r->fd[0] >= 0 || r->fd[1] >= 0;
        /* SIGKILL is delivered asynchronously: the attempt is over only once its session is
         * empty, so that "exited" really means no rank is left. */
        int left = r->exited ? shoal_count_session(r->pid) : 0;
        if (left > 0) shoal_kill_session(r->pid, SIGKILL);
        if (r->exited && ((!pipes_open && left == 0) || now - r->exit_at > DRAIN_GRACE_S)) {
            if (left > 0)
                SHOAL_LOG_WARN("job %llu: %d process(es) of session %d survived SIGKILL",
                               (unsigned long long)r->job_id, left, (int)r->pid);
            *pp = r->next;
            for (int i = 0; i < 2; i++)
                if (r->fd[i] >= 0) {
                    drain(m, r, i);
                    if (r->fd[i] >= 0) {
                        emit_ctx e = {m, r, i + 1};
                        shoal_line_buf_feed(&r->lb[i], "", 0, 1, emit_line, &e);
                    }
                }
            report(m, r);
            free_run(r);
            continue;
        }
        pp = &r->next;
    }
    return SHOAL_OK;
}

static int active(void *impl) {
    mpirun_launcher *m = impl;
    int n = 0;
    for (run *r = m->runs; r; r = r->next) n++;
    return n;
}

const shoal_launcher_ops shoal_launcher_local_ops = {
    "local", create_local, destroy, start, cancel, poll_runs, active,
};

const shoal_launcher_ops shoal_launcher_hostfile_ops = {
    "hostfile", create_hostfile, destroy, start, cancel, poll_runs, active,
};
