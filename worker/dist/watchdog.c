/* watchdog.c: the liveness ring and collective timer of watchdog.h.
 *
 * Wire: each connection starts with a 24-byte hello from the connecting side {magic, rank,
 * nonce} answered by the same record from the accepting side; afterwards only 5-byte messages
 * flow: 'B' (goodbye, a clean exit follows) or 'L' + rank (that rank is lost). Integers are
 * big-endian. Everything read is checked: wrong magic, nonce or rank closes the connection
 * during set-up and counts as loss afterwards. Tested by tests/dist/kill_rank.sh and every
 * MPI test.
 */
#define _GNU_SOURCE /* accept4, pipe2 */
#define SHOAL_LOG_SUBSYS "dist"
#include "worker/dist/watchdog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/limits.h"
#include "common/timeutil.h"
#include "worker/dist/comm.h"

#define WD_MAGIC 0x5348574bu /* "SHWK" */
#define WD_MAX_ADDRS 8
#define WD_TICK_MS 100
#define WD_CONNECT_TRY_MS 2000 /* per address; a live listener answers in microseconds */

typedef struct {
    uint32_t magic;
    int32_t rank;
    int32_t pid;
    uint16_t port; /* network order */
    uint16_t naddr;
    uint32_t addrs[WD_MAX_ADDRS]; /* IPv4, network order */
    uint64_t nonce;
    char host[64];
} rank_rec;

typedef struct {
    int fd;       /* -1 when closed */
    int peer;     /* rank at the other end */
    int bye;      /* goodbye received: EOF after it is a clean exit */
    int done;     /* no longer polled */
    unsigned char buf[5];
    size_t have;
} link_t;

struct shoal_watchdog {
    shoal_watchdog_config cfg;
    rank_rec *recs; /* (world) */
    link_t links[2]; /* [0] = to next (we connected), [1] = from prev (we accepted) */
    int nlinks;
    int wake[2];
    pthread_t thread;
    int thread_started;
    atomic_int stopping;
    atomic_int want_bye;
    int bye_sent;
    atomic_int busy_flags;
    atomic_int lost;
    _Atomic uint64_t busy_since_ns; /* 0 = not in a blocking call */
    _Atomic(const char *) busy_op;
};

static uint64_t get_u64be(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}
static void put_u64be(unsigned char *p, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}
static uint32_t get_u32be(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static void put_u32be(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static uint64_t deadline_after(uint64_t ms) { return shoal_now_ns() + ms * 1000000ull; }
static int ms_left(uint64_t deadline_ns) {
    uint64_t now = shoal_now_ns();
    if (now >= deadline_ns) return 0;
    uint64_t ms = (deadline_ns - now) / 1000000ull + 1;
    return ms > 60000 ? 60000 : (int)ms;
}

/* Read or write exactly n bytes before the deadline; 0 on success, -1 otherwise. */
static int io_full(int fd, void *p, size_t n, int writing, uint64_t deadline_ns) {
    unsigned char *b = p;
    size_t done = 0;
    while (done < n) {
        struct pollfd pfd = {fd, writing ? POLLOUT : POLLIN, 0};
        int left = ms_left(deadline_ns);
        if (left == 0) return -1;
        int pr = poll(&pfd, 1, left);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) return -1;
        ssize_t k = writing ? send(fd, b + done, n - done, MSG_NOSIGNAL)
                            : recv(fd, b + done, n - done, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k <= 0) return -1;
        done += (size_t)k;
    }
    return 0;
}

static void hello_pack(unsigned char out[24], int rank, uint64_t nonce) {
    put_u32be(out, WD_MAGIC);
    put_u32be(out + 4, (uint32_t)rank);
    put_u64be(out + 8, nonce);
    memset(out + 16, 0, 8);
}
int shoal_watchdog_hello_ok(const unsigned char in[SHOAL_WD_HELLO_BYTES], int want_rank,
                            uint64_t nonce) {
    return get_u32be(in) == WD_MAGIC && get_u32be(in + 4) == (uint32_t)want_rank &&
           get_u64be(in + 8) == nonce;
}

int shoal_watchdog_decode_msg(const unsigned char m[SHOAL_WD_MSG_BYTES], int world, char *type,
                              int *rank) {
    uint32_t r = get_u32be(m + 1);
    if (m[0] == 'B') {
        *type = 'B', *rank = -1;
        return 0;
    }
    if (m[0] == 'L' && world > 0 && r < (uint32_t)world) {
        *type = 'L', *rank = (int)r;
        return 0;
    }
    return -1;
}

size_t shoal_watchdog_record_size(void) { return sizeof(rank_rec); }

shoal_status shoal_watchdog_check_records(void *recs, int world) {
    rank_rec *all = recs;
    for (int r = 0; r < world; r++) {
        rank_rec *x = &all[r];
        x->host[sizeof x->host - 1] = '\0';
        SHOAL_REQUIRE(x->magic == WD_MAGIC && x->rank == r && x->naddr <= WD_MAX_ADDRS,
                      SHOAL_ERR_PROTOCOL, "watchdog: rank %d sent a malformed record", r);
    }
    return SHOAL_OK;
}

static void set_nonblock(int fd, int on) {
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl >= 0) fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}

/* One connection attempt to addr:port that passes the hello exchange, or -1. */
static int try_connect(uint32_t addr, uint16_t port, int me, int peer, uint64_t nonce,
                       uint64_t deadline_ns) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = port};
    sa.sin_addr.s_addr = addr;
    uint64_t try_deadline = deadline_after(WD_CONNECT_TRY_MS);
    if (try_deadline > deadline_ns) try_deadline = deadline_ns;
    set_nonblock(fd, 1);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    if (rc < 0 && errno != EINPROGRESS) goto fail;
    if (rc < 0) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        if (poll(&pfd, 1, ms_left(try_deadline)) <= 0) goto fail;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) goto fail;
    }
    unsigned char h[24], r[24];
    hello_pack(h, me, nonce);
    if (io_full(fd, h, sizeof h, 1, try_deadline) != 0) goto fail;
    if (io_full(fd, r, sizeof r, 0, try_deadline) != 0) goto fail;
    if (!shoal_watchdog_hello_ok(r, peer, nonce)) goto fail;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
fail:
    close(fd);
    return -1;
}

typedef struct {
    int listen_fd, me, prev;
    uint64_t nonce, deadline_ns;
    int fd; /* result */
} accept_job;

static void *accept_main(void *arg) {
    accept_job *j = arg;
    j->fd = -1;
    while (ms_left(j->deadline_ns) > 0) {
        struct pollfd pfd = {j->listen_fd, POLLIN, 0};
        int pr = poll(&pfd, 1, ms_left(j->deadline_ns));
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) break;
        int fd = accept4(j->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) continue;
        unsigned char h[24];
        uint64_t d = deadline_after(WD_CONNECT_TRY_MS);
        if (d > j->deadline_ns) d = j->deadline_ns;
        if (io_full(fd, h, sizeof h, 0, d) == 0 && shoal_watchdog_hello_ok(h, j->prev, j->nonce)) {
            unsigned char r[24];
            hello_pack(r, j->me, j->nonce);
            if (io_full(fd, r, sizeof r, 1, d) == 0) {
                j->fd = fd;
                return NULL;
            }
        }
        SHOAL_LOG_WARN("liveness ring: dropped a connection that is not rank %d of this job",
                       j->prev);
        close(fd);
    }
    return NULL;
}

static void local_addrs(rank_rec *r) {
    struct ifaddrs *ifa = NULL;
    r->naddr = 0;
    if (getifaddrs(&ifa) != 0) return;
    for (struct ifaddrs *i = ifa; i && r->naddr < WD_MAX_ADDRS; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
        if (!(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
        r->addrs[r->naddr++] = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
    }
    freeifaddrs(ifa);
}

static void send_msg(link_t *l, char type, int rank) {
    if (l->fd < 0 || l->done) return;
    unsigned char m[5];
    m[0] = (unsigned char)type;
    put_u32be(m + 1, (uint32_t)rank);
    /* Best effort: a peer that cannot take 5 bytes is gone or about to be noticed as gone. */
    (void)!send(l->fd, m, sizeof m, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static const char *host_of(const shoal_watchdog *wd, int r) {
    return (r >= 0 && r < wd->cfg.world && wd->recs) ? wd->recs[r].host : "?";
}

static void fatal(shoal_watchdog *wd, int lost, const char *op, double busy_s) {
    char why[512];
    if (lost >= 0)
        snprintf(why, sizeof why,
                 "lost rank %d (pid %d on %s) while rank %d was blocked in %s for %.1f s; "
                 "exiting with status %d (relaunch to resume from the last checkpoint)",
                 lost, wd->recs[lost].pid, host_of(wd, lost), wd->cfg.rank, op, busy_s,
                 SHOAL_COMM_EXIT_LOST);
    else
        snprintf(why, sizeof why,
                 "%s hung: rank %d blocked for %.1f s (limit comm_timeout_ms=%llu) and no peer "
                 "was reported lost, so one is stuck or the network is down; exiting with status %d",
                 op, wd->cfg.rank, busy_s, (unsigned long long)atomic_load(wd->cfg.timeout_ms),
                 SHOAL_COMM_EXIT_LOST);
    SHOAL_LOG_ERROR("%s", why);
    if (wd->cfg.on_fatal) wd->cfg.on_fatal(wd->cfg.on_fatal_arg, lost, why);
    _exit(SHOAL_COMM_EXIT_LOST);
}

static void note_lost(shoal_watchdog *wd, int k, int from_link, const char *how) {
    if (k < 0 || k >= wd->cfg.world || k == wd->cfg.rank) return;
    int expect = -1;
    if (!atomic_compare_exchange_strong(&wd->lost, &expect, k)) return;
    SHOAL_LOG_ERROR("lost rank %d (pid %d on %s): %s", k, wd->recs[k].pid, host_of(wd, k), how);
    for (int i = 0; i < wd->nlinks; i++)
        if (i != from_link) send_msg(&wd->links[i], 'L', k);
}

static void link_readable(shoal_watchdog *wd, int i) {
    link_t *l = &wd->links[i];
    for (;;) {
        ssize_t k = recv(l->fd, l->buf + l->have, sizeof l->buf - l->have, MSG_DONTWAIT);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (k <= 0) {
            l->done = 1;
            if (!l->bye)
                note_lost(wd, l->peer, i, "its liveness connection closed without a goodbye");
            return;
        }
        l->have += (size_t)k;
        if (l->have < sizeof l->buf) continue;
        l->have = 0;
        char type = 0;
        int r = -1;
        if (shoal_watchdog_decode_msg(l->buf, wd->cfg.world, &type, &r) == 0 && type == 'B') {
            l->bye = 1;
        } else if (type == 'L') {
            char how[96];
            snprintf(how, sizeof how, "reported by rank %d", l->peer);
            note_lost(wd, r, i, how);
        } else {
            l->done = 1;
            note_lost(wd, l->peer, i, "its liveness connection sent garbage");
            return;
        }
    }
}

static void *monitor_main(void *arg) {
    shoal_watchdog *wd = arg;
    for (;;) {
        struct pollfd pfd[3];
        int idx[3], n = 0;
        pfd[n] = (struct pollfd){wd->wake[0], POLLIN, 0}, idx[n++] = -1;
        for (int i = 0; i < wd->nlinks; i++)
            if (wd->links[i].fd >= 0 && !wd->links[i].done)
                pfd[n] = (struct pollfd){wd->links[i].fd, POLLIN, 0}, idx[n++] = i;
        int pr = poll(pfd, (nfds_t)n, WD_TICK_MS);
        if (atomic_load(&wd->stopping)) break;
        if (pr > 0 && (pfd[0].revents & POLLIN)) {
            char drain[16];
            (void)!read(wd->wake[0], drain, sizeof drain);
        }
        if (atomic_load(&wd->want_bye) && !wd->bye_sent) {
            for (int i = 0; i < wd->nlinks; i++) send_msg(&wd->links[i], 'B', wd->cfg.rank);
            wd->bye_sent = 1;
        }
        if (pr > 0)
            for (int j = 1; j < n; j++)
                if (pfd[j].revents) link_readable(wd, idx[j]);
        uint64_t since = atomic_load(&wd->busy_since_ns);
        int flags = atomic_load(&wd->busy_flags);
        if (since && !(flags & SHOAL_WD_CANCELLABLE)) {
            double busy_s = (double)(shoal_now_ns() - since) / 1e9;
            const char *op = atomic_load(&wd->busy_op);
            int lost = atomic_load(&wd->lost);
            double limit_ms = (double)atomic_load(wd->cfg.timeout_ms);
            if (flags & SHOAL_WD_LONG) limit_ms *= 10;
            if (lost >= 0) fatal(wd, lost, op ? op : "a collective", busy_s);
            if (busy_s * 1000.0 > limit_ms)
                fatal(wd, -1, op ? op : "a collective", busy_s);
        }
    }
    if (!wd->bye_sent)
        for (int i = 0; i < wd->nlinks; i++) send_msg(&wd->links[i], 'B', wd->cfg.rank);
    wd->bye_sent = 1;
    return NULL;
}

static void wd_free(shoal_watchdog *wd) {
    for (int i = 0; i < 2; i++)
        if (wd->links[i].fd >= 0) close(wd->links[i].fd);
    if (wd->wake[0] >= 0) close(wd->wake[0]);
    if (wd->wake[1] >= 0) close(wd->wake[1]);
    free(wd->recs);
    free(wd);
}

shoal_status shoal_watchdog_start(shoal_watchdog **out, const shoal_watchdog_config *cfg) {
    shoal_status st = SHOAL_OK;
    int listen_fd = -1;
    *out = NULL;
    SHOAL_REQUIRE(cfg && cfg->world >= 1 && cfg->rank >= 0 && cfg->rank < cfg->world &&
                      cfg->timeout_ms && cfg->allgather,
                  SHOAL_ERR_INVALID_ARG, "watchdog: bad configuration");
    shoal_watchdog *wd = calloc(1, sizeof *wd);
    SHOAL_REQUIRE(wd, SHOAL_ERR_NOMEM, "watchdog: out of memory");
    wd->cfg = *cfg;
    wd->links[0].fd = wd->links[1].fd = -1;
    wd->wake[0] = wd->wake[1] = -1;
    atomic_store(&wd->lost, -1);
    wd->recs = calloc((size_t)cfg->world, sizeof *wd->recs);
    SHOAL_REQUIRE_GOTO(wd->recs, SHOAL_ERR_NOMEM, "watchdog: out of memory for %d ranks",
                       cfg->world);
    SHOAL_REQUIRE_GOTO(pipe2(wd->wake, O_CLOEXEC) == 0, SHOAL_ERR_IO, "watchdog: pipe: %s",
                       strerror(errno));

    rank_rec me = {.magic = WD_MAGIC, .rank = cfg->rank, .pid = (int32_t)getpid()};
    gethostname(me.host, sizeof me.host - 1);
    if (getrandom(&me.nonce, sizeof me.nonce, 0) != (ssize_t)sizeof me.nonce)
        me.nonce = shoal_now_ns() ^ ((uint64_t)getpid() << 32);
    if (cfg->world > 1) {
        listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
        socklen_t len = sizeof sa;
        SHOAL_REQUIRE_GOTO(listen_fd >= 0 && bind(listen_fd, (struct sockaddr *)&sa, len) == 0 &&
                               listen(listen_fd, 16) == 0 &&
                               getsockname(listen_fd, (struct sockaddr *)&sa, &len) == 0,
                           SHOAL_ERR_IO, "watchdog: cannot listen on a TCP port: %s",
                           strerror(errno));
        me.port = sa.sin_port;
        local_addrs(&me);
    }
    SHOAL_CHECK_GOTO(cfg->allgather(cfg->ctx, &me, wd->recs, sizeof me));
    SHOAL_CHECK_GOTO(shoal_watchdog_check_records(wd->recs, cfg->world));

    if (cfg->world > 1) {
        uint64_t nonce = wd->recs[0].nonce;
        int next = (cfg->rank + 1) % cfg->world, prev = (cfg->rank + cfg->world - 1) % cfg->world;
        uint64_t deadline = deadline_after(atomic_load(cfg->timeout_ms));
        accept_job aj = {listen_fd, cfg->rank, prev, nonce, deadline, -1};
        pthread_t at;
        SHOAL_REQUIRE_GOTO(pthread_create(&at, NULL, accept_main, &aj) == 0, SHOAL_ERR_INTERNAL,
                           "watchdog: cannot start a thread");
        const rank_rec *t = &wd->recs[next];
        int fd = -1;
        while (fd < 0 && ms_left(deadline) > 0) {
            if (strcmp(t->host, me.host) == 0)
                fd = try_connect(htonl(INADDR_LOOPBACK), t->port, cfg->rank, next, nonce,
                                 deadline);
            for (int a = 0; fd < 0 && a < t->naddr; a++)
                fd = try_connect(t->addrs[a], t->port, cfg->rank, next, nonce, deadline);
            if (fd < 0) usleep(50 * 1000);
        }
        pthread_join(at, NULL);
        close(listen_fd);
        listen_fd = -1;
        if (fd < 0 || aj.fd < 0) {
            if (fd >= 0) close(fd);
            if (aj.fd >= 0) close(aj.fd);
            SHOAL_LOG_ERROR("liveness ring: rank %d could not %s within %llu ms (next rank %d on "
                            "%s, previous rank %d on %s); check that TCP between the hosts is open",
                            cfg->rank, fd < 0 ? "connect to the next rank" : "hear from the previous rank",
                            (unsigned long long)atomic_load(cfg->timeout_ms), next, t->host, prev,
                            wd->recs[prev].host);
            st = SHOAL_ERR_TIMEOUT;
            goto cleanup;
        }
        set_nonblock(fd, 1);
        wd->links[0] = (link_t){.fd = fd, .peer = next};
        wd->links[1] = (link_t){.fd = aj.fd, .peer = prev};
        wd->nlinks = 2;
    }
    SHOAL_REQUIRE_GOTO(pthread_create(&wd->thread, NULL, monitor_main, wd) == 0,
                       SHOAL_ERR_INTERNAL, "watchdog: cannot start a thread");
    wd->thread_started = 1;
    *out = wd;
    return SHOAL_OK;
cleanup:
    if (listen_fd >= 0) close(listen_fd);
    wd_free(wd);
    return st;
}

void shoal_watchdog_stop(shoal_watchdog *wd) {
    if (!wd) return;
    if (wd->thread_started) {
        atomic_store(&wd->stopping, 1);
        (void)!write(wd->wake[1], "x", 1);
        pthread_join(wd->thread, NULL);
    }
    for (int i = 0; i < wd->nlinks; i++)
        if (wd->links[i].fd >= 0) shutdown(wd->links[i].fd, SHUT_WR);
    wd_free(wd);
}

void shoal_watchdog_goodbye(shoal_watchdog *wd) {
    if (!wd || !wd->thread_started) return;
    atomic_store(&wd->want_bye, 1);
    (void)!write(wd->wake[1], "b", 1);
}

void shoal_watchdog_enter(shoal_watchdog *wd, const char *op, int flags) {
    if (!wd) return;
    atomic_store(&wd->busy_op, op);
    atomic_store(&wd->busy_flags, flags);
    atomic_store(&wd->busy_since_ns, shoal_now_ns() | 1u);
}

void shoal_watchdog_leave(shoal_watchdog *wd) {
    if (wd) atomic_store(&wd->busy_since_ns, 0);
}

int shoal_watchdog_lost(const shoal_watchdog *wd) {
    return wd ? atomic_load(&((shoal_watchdog *)wd)->lost) : -1;
}

double shoal_watchdog_busy_s(const shoal_watchdog *wd) {
    if (!wd) return 0;
    uint64_t since = atomic_load(&((shoal_watchdog *)wd)->busy_since_ns);
    return since ? (double)(shoal_now_ns() - since) / 1e9 : 0;
}

const char *shoal_watchdog_host(const shoal_watchdog *wd, int r) { return host_of(wd, r); }

int shoal_watchdog_pid(const shoal_watchdog *wd, int r) {
    return (wd && r >= 0 && r < wd->cfg.world) ? wd->recs[r].pid : 0;
}
