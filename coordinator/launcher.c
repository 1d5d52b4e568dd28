/* launcher.c: the launcher table dispatch and the helpers every launcher shares: splitting
 * output into lines, running a short command and capturing its output (sbatch, scontrol,
 * scancel), finding and signalling every process of an attempt's session, shell quoting.
 * Tested through tests/coordinator/test_launcher.c. */
#define _GNU_SOURCE /* pipe2 */
#define SHOAL_LOG_SUBSYS "launcher"
#include "coordinator/launcher.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/limits.h"
#include "common/timeutil.h"

shoal_status shoal_launcher_init(shoal_launcher *l, shoal_launcher_kind kind,
                                 const shoal_launcher_config *cfg,
                                 const shoal_launcher_callbacks *cb) {
    l->ops = NULL;
    l->impl = NULL;
    switch (kind) {
    case SHOAL_LAUNCHER_LOCAL: l->ops = &shoal_launcher_local_ops; break;
    case SHOAL_LAUNCHER_HOSTFILE: l->ops = &shoal_launcher_hostfile_ops; break;
    case SHOAL_LAUNCHER_SLURM: l->ops = &shoal_launcher_slurm_ops; break;
    default:
        SHOAL_LOG_ERROR("no launcher of kind %d (expected local, hostfile or slurm)", (int)kind);
        return SHOAL_ERR_INVALID_ARG;
    }
    SHOAL_REQUIRE(cfg && cfg->scratch_dir && cfg->scratch_dir[0], SHOAL_ERR_INVALID_ARG,
                  "launcher %s: a scratch directory is required", l->ops->name);
    SHOAL_REQUIRE(strlen(cfg->scratch_dir) < SHOAL_LAUNCHER_SCRATCH_MAX, SHOAL_ERR_LIMIT,
                  "launcher %s: scratch directory path longer than %d bytes", l->ops->name,
                  SHOAL_LAUNCHER_SCRATCH_MAX - 1);
    SHOAL_REQUIRE(cb && cb->on_log && cb->on_exit, SHOAL_ERR_INVALID_ARG,
                  "launcher %s: on_log and on_exit callbacks are required", l->ops->name);
    SHOAL_CHECK(shoal_mkdir_p(cfg->scratch_dir));
    shoal_status st = l->ops->create(cfg, cb, &l->impl);
    if (st != SHOAL_OK) l->ops = NULL;
    return st;
}

void shoal_launcher_free(shoal_launcher *l) {
    if (!l || !l->ops) return;
    l->ops->destroy(l->impl);
    l->ops = NULL;
    l->impl = NULL;
}

shoal_status shoal_launcher_start(shoal_launcher *l, const shoal_launch_req *req, char *handle,
                                  size_t handle_cap) {
    SHOAL_REQUIRE(req && req->argc >= 1 && req->argv && req->ranks >= 1 &&
                      req->ranks <= SHOAL_MAX_JOB_RANKS,
                  SHOAL_ERR_INVALID_ARG, "launch request needs a command and 1..%d ranks",
                  SHOAL_MAX_JOB_RANKS);
    return l->ops->start(l->impl, req, handle, handle_cap);
}

shoal_status shoal_launcher_cancel(shoal_launcher *l, uint64_t job_id) {
    return l->ops->cancel(l->impl, job_id);
}

shoal_status shoal_launcher_poll(shoal_launcher *l, int timeout_ms) {
    return l->ops->poll(l->impl, timeout_ms);
}

int shoal_launcher_active(shoal_launcher *l) { return l->ops->active(l->impl); }

/* ---- line splitting ------------------------------------------------------------------ */

shoal_status shoal_line_buf_feed(shoal_line_buf *lb, const char *data, size_t n, int flush,
                                 void (*emit)(void *ctx, const char *line), void *ctx) {
    size_t maxl = (size_t)shoal_limit(SHOAL_LIMIT_JOB_LOG_LINE_BYTES);
    if (lb->len + n + 1 > lb->cap) {
        size_t cap = lb->cap ? lb->cap : 256;
        while (cap < lb->len + n + 1) cap *= 2;
        char *nb = realloc(lb->buf, cap);
        SHOAL_REQUIRE(nb, SHOAL_ERR_NOMEM, "out of memory buffering output");
        lb->buf = nb;
        lb->cap = cap;
    }
    memcpy(lb->buf + lb->len, data, n);
    lb->len += n;
    size_t start = 0;
    for (;;) {
        char *nl = memchr(lb->buf + start, '\n', lb->len - start);
        size_t linelen = nl ? (size_t)(nl - (lb->buf + start)) : lb->len - start;
        if (!nl && linelen < maxl && !(flush && linelen > 0)) break;
        if (linelen > maxl) linelen = maxl; /* split an over-long line */
        char saved = lb->buf[start + linelen];
        lb->buf[start + linelen] = 0;
        /* strip a CR of CRLF output */
        if (linelen > 0 && lb->buf[start + linelen - 1] == '\r')
            lb->buf[start + linelen - 1] = 0;
        emit(ctx, lb->buf + start);
        lb->buf[start + linelen] = saved;
        start += linelen;
        if (start < lb->len && lb->buf[start] == '\n') start++;
        if (start >= lb->len) break;
    }
    memmove(lb->buf, lb->buf + start, lb->len - start);
    lb->len -= start;
    return SHOAL_OK;
}

void shoal_line_buf_free(shoal_line_buf *lb) {
    free(lb->buf);
    lb->buf = NULL;
    lb->len = lb->cap = 0;
}

/* ---- processes ------------------------------------------------------------------------- */

static int exit_code_of(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 255;
}

shoal_status shoal_run_capture(char *const *argv, char *const *env, int nenv, double timeout_s,
                               char *out, size_t cap, int *exit_code) {
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    out[0] = 0;
    *exit_code = -1;
    if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) {
        SHOAL_LOG_ERROR("%s: pipe: %s", argv[0], strerror(errno));
        if (po[0] >= 0) {
            close(po[0]);
            close(po[1]);
        }
        return SHOAL_ERR_IO;
    }
    pid_t pid = fork();
    if (pid < 0) {
        SHOAL_LOG_ERROR("%s: fork: %s", argv[0], strerror(errno));
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        return SHOAL_ERR_IO;
    }
    if (pid == 0) {
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        for (int i = 0; i < nenv; i++) putenv(env[i]);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    char err[1024];
    size_t olen = 0, elen = 0;
    double deadline = shoal_now_s() + timeout_s;
    int open_fds = 2, timed_out = 0;
    struct pollfd pf[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    while (open_fds > 0) {
        double left = deadline - shoal_now_s();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        int r = poll(pf, 2, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char tmp[4096];
            ssize_t k = read(pf[i].fd, tmp, sizeof tmp);
            if (k <= 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
                continue;
            }
            char *dst = i == 0 ? out : err;
            size_t *len = i == 0 ? &olen : &elen;
            size_t room = (i == 0 ? cap : sizeof err) - 1 - *len;
            size_t take = (size_t)k < room ? (size_t)k : room;
            memcpy(dst + *len, tmp, take);
            *len += take;
        }
    }
    for (int i = 0; i < 2; i++)
        if (pf[i].fd >= 0) close(pf[i].fd);
    out[olen] = 0;
    err[elen] = 0;
    if (timed_out) kill(-pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) {
        SHOAL_LOG_ERROR("%s did not finish within %.0f s; killed", argv[0], timeout_s);
        return SHOAL_ERR_TIMEOUT;
    }
    *exit_code = exit_code_of(status);
    if (*exit_code != 0) {
        while (elen > 0 && (err[elen - 1] == '\n' || err[elen - 1] == '\r')) err[--elen] = 0;
        SHOAL_LOG_WARN("%s exited with code %d: %s", argv[0], *exit_code, err);
    }
    return *exit_code == 127 ? SHOAL_ERR_IO : SHOAL_OK;
}

/* Parse /proc/<pid>/stat: session id and state. 0 on success. */
static int proc_stat(int pid, int *session, char *state) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *rp = strrchr(buf, ')'); /* comm may contain spaces and parentheses */
    if (!rp) return -1;
    int ppid, pgrp, sess;
    if (sscanf(rp + 1, " %c %d %d %d", state, &ppid, &pgrp, &sess) != 4) return -1;
    *session = sess;
    return 0;
}

static int walk_session(int sid, int sig, int count_only) {
    if (sid <= 1) return 0;
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int n = 0, self = (int)getpid();
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 1 || pid == self) continue;
        int sess;
        char state;
        if (proc_stat((int)pid, &sess, &state) != 0 || sess != sid) continue;
        if (count_only) {
            if (state != 'Z' && state != 'X') n++;
        } else if (kill((pid_t)pid, sig) == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

int shoal_kill_session(int sid, int sig) { return walk_session(sid, sig, 0); }

int shoal_kill_session_wait(int sid, double timeout_s) {
    /* One /proc pass can miss a child forked while it runs: repeat until the session is
     * empty (SIGKILL is delivered asynchronously too). */
    int killed = 0;
    double end = shoal_now_s() + timeout_s;
    for (;;) {
        killed += walk_session(sid, SIGKILL, 0);
        int left = walk_session(sid, 0, 1);
        if (left == 0 || shoal_now_s() >= end) return left == 0 ? killed : -left;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}
int shoal_count_session(int sid) { return walk_session(sid, 0, 1); }

shoal_status shoal_shell_quote(const char *s, char *out, size_t cap) {
    size_t j = 0;
    if (cap < 3) return SHOAL_ERR_LIMIT;
    out[j++] = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            if (j + 4 >= cap) return SHOAL_ERR_LIMIT;
            memcpy(out + j, "'\\''", 4);
            j += 4;
        } else {
            if (j + 1 >= cap) return SHOAL_ERR_LIMIT;
            out[j++] = *p;
        }
    }
    if (j + 2 > cap) return SHOAL_ERR_LIMIT;
    out[j++] = '\'';
    out[j] = 0;
    return SHOAL_OK;
}
