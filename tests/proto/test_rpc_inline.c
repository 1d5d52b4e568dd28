/* test_rpc_inline.c: SHOAL_RPC_INLINE methods (handler run on the server's completion-queue
 * thread, no pool hand-off) on loopback, against the Echo service's Say handler routed under an
 * inline copy of its method: correct replies, 8 threads x 100 concurrent calls, request
 * validation and auth still applied, a deadline passed while the handler runs, the flag refused
 * on a streaming method, every call run on the one CQ thread of a cq_threads=1 server, on at most
 * two with cq_threads=2 (where a slow inline call no longer stalls the others), pooled methods on
 * the same server unaffected, and shutdown that drains an in-flight inline call (and cancels one
 * past the grace). Servers bind 127.0.0.1:0. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/timeutil.h"
#include "echo_service.h"
#include "test.h"

/* Say, flagged inline; Count stays pooled beside it. */
static shoal_rpc_method inline_say;
static shoal_rpc_route routes[2];

/* Which threads ran the inline handler: inline calls all run on the server's completion-queue
 * threads (one or two here), where pooled ones under concurrency spread over several workers. */
#define MAX_SEEN 64
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t seen[MAX_SEEN];
static int seen_calls, n_seen;

static void seen_reset(void) {
    pthread_mutex_lock(&seen_mu);
    seen_calls = n_seen = 0;
    pthread_mutex_unlock(&seen_mu);
}

static shoal_status say_recorded(shoal_rpc_call *call, const ProtobufCMessage *req, void *user) {
    pthread_mutex_lock(&seen_mu);
    seen_calls++;
    int known = 0;
    for (int i = 0; i < n_seen && !known; i++)
        known = pthread_equal(seen[i], pthread_self());
    if (!known && n_seen < MAX_SEEN) seen[n_seen++] = pthread_self();
    pthread_mutex_unlock(&seen_mu);
    return echo_routes[ECHO_SAY].handler(call, req, user);
}

static int cq_threads = 1; /* for the next start_server */

static shoal_status start_server(shoal_rpc_server **out, int drain_ms) {
    inline_say = echo_methods[ECHO_SAY];
    inline_say.flags |= SHOAL_RPC_INLINE;
    routes[0] = echo_routes[ECHO_SAY];
    routes[0].method = &inline_say;
    routes[0].handler = say_recorded;
    routes[1] = echo_routes[ECHO_COUNT];
    shoal_rpc_server_config cfg = {0};
    cfg.listen = "127.0.0.1:0";
    cfg.routes = routes;
    cfg.n_routes = 2;
    cfg.auth = echo_auth;
    cfg.drain_ms = drain_ms;
    cfg.cq_threads = cq_threads;
    return shoal_rpc_server_start(&cfg, out);
}

static shoal_rpc_client *client_for(int port, const char *token) {
    char tgt[64];
    snprintf(tgt, sizeof tgt, "127.0.0.1:%d", port);
    shoal_rpc_client_config cc = {0};
    cc.target = tgt;
    cc.bearer_token = token;
    cc.timeout_ms = 10000;
    shoal_rpc_client *c = NULL;
    if (shoal_rpc_client_new(&cc, &c) != SHOAL_OK) return NULL;
    return c;
}

static shoal_status say(shoal_rpc_client *c, Shoal__Test__EchoRequest *req, int timeout_ms,
                        Shoal__Test__EchoReply **rep, shoal_rpc_result *res) {
    ProtobufCMessage *m = NULL;
    shoal_status st = shoal_rpc_client_unary(c, &inline_say, &req->base, timeout_ms, &m, res);
    if (rep)
        *rep = (Shoal__Test__EchoReply *)m;
    else
        shoal_rpc_msg_free(m);
    return st;
}

static int say_ok(shoal_rpc_client *c, const char *text) {
    Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
    req.text = (char *)text;
    Shoal__Test__EchoReply *rep = NULL;
    shoal_status st = say(c, &req, 0, &rep, NULL);
    int ok = st == SHOAL_OK && rep && strcmp(rep->text, text) == 0 &&
             strcmp(rep->principal, "token:tester") == 0;
    shoal_rpc_msg_free(rep ? &rep->base : NULL);
    return ok;
}

static shoal_rpc_server *srv;

static void test_refused_on_stream(void) {
    shoal_rpc_method m = echo_methods[ECHO_COUNT];
    m.flags |= SHOAL_RPC_INLINE;
    shoal_rpc_route r = echo_routes[ECHO_COUNT];
    r.method = &m;
    shoal_rpc_server_config cfg = {0};
    cfg.listen = "127.0.0.1:0";
    cfg.routes = &r;
    cfg.n_routes = 1;
    shoal_rpc_server *s = NULL;
    CHECK_EQ_INT(shoal_rpc_server_start(&cfg, &s), SHOAL_ERR_INVALID_ARG);
    CHECK(s == NULL);
}

static void test_replies_and_checks(void) {
    shoal_rpc_client *c = client_for(shoal_rpc_server_port(srv), ECHO_TOKEN);
    CHECK(c != NULL);
    if (!c) return;
    Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
    req.text = "inline hello";
    uint8_t payload[300];
    memset(payload, 1, sizeof payload);
    req.payload.data = payload;
    req.payload.len = sizeof payload;
    Shoal__Test__EchoReply *rep = NULL;
    shoal_rpc_result res;
    CHECK_EQ_INT(say(c, &req, 0, &rep, &res), SHOAL_OK);
    CHECK_EQ_INT(res.code, SHOAL_RPC_OK);
    CHECK(rep != NULL);
    if (rep) {
        CHECK_STR(rep->text, "inline hello");
        CHECK_STR(rep->principal, "token:tester");
        CHECK_EQ_INT(rep->total, 300);
        shoal_rpc_msg_free(&rep->base);
    }
    /* the validator still runs: text over 64 bytes is INVALID_ARGUMENT */
    char longtext[100];
    memset(longtext, 'x', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    req.text = longtext;
    CHECK_EQ_INT(say(c, &req, 0, NULL, &res), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(res.code, SHOAL_RPC_INVALID_ARGUMENT);
    /* handler errors map over the wire as for pooled calls */
    req.text = "fail";
    req.mode = SHOAL__TEST__MODE__MODE_FAIL;
    req.fail_status = SHOAL_ERR_NOT_FOUND;
    CHECK_EQ_INT(say(c, &req, 0, NULL, &res), SHOAL_ERR_NOT_FOUND);
    CHECK_EQ_INT(res.code, SHOAL_RPC_NOT_FOUND);
    CHECK(strstr(res.details, "asked to fail") != NULL);
    /* a deadline passing while the handler runs: the client times out, the server serves on */
    req.mode = SHOAL__TEST__MODE__MODE_SLOW;
    req.delay_ms = 2000;
    req.text = "slow";
    double t0 = shoal_now_s();
    CHECK_EQ_INT(say(c, &req, 150, NULL, &res), SHOAL_ERR_TIMEOUT);
    CHECK(shoal_now_s() - t0 < 1.5);
    CHECK(say_ok(c, "after deadline"));
    /* a pooled server-stream method on the same server is unaffected */
    Shoal__Test__EchoRequest creq = SHOAL__TEST__ECHO_REQUEST__INIT;
    creq.count = 50;
    shoal_rpc_stream *s = NULL;
    CHECK_EQ_INT(shoal_rpc_client_stream_open(c, &echo_methods[ECHO_COUNT], &creq.base, 0, &s),
                 SHOAL_OK);
    int got = 0;
    for (;;) {
        ProtobufCMessage *m = NULL;
        if (shoal_rpc_stream_read(s, &m) != SHOAL_OK || !m) break;
        got++;
        shoal_rpc_msg_free(m);
    }
    CHECK_EQ_INT(got, 50);
    shoal_rpc_stream_free(s);
    shoal_rpc_client_free(c);

    /* auth still applies */
    shoal_rpc_client *bad = client_for(shoal_rpc_server_port(srv), "wrong-token");
    CHECK(bad != NULL);
    if (bad) {
        Shoal__Test__EchoRequest r2 = SHOAL__TEST__ECHO_REQUEST__INIT;
        r2.text = "hi";
        CHECK_EQ_INT(say(bad, &r2, 0, NULL, &res), SHOAL_ERR_AUTH);
        CHECK_EQ_INT(res.code, SHOAL_RPC_UNAUTHENTICATED);
        shoal_rpc_client_free(bad);
    }
}

typedef struct {
    shoal_rpc_client *c;
    int id, ok;
} worker_arg;

static void *concurrent_worker(void *p) {
    worker_arg *a = p;
    for (int i = 0; i < 100; i++) {
        char text[32];
        snprintf(text, sizeof text, "i%d-%d", a->id, i);
        a->ok += say_ok(a->c, text);
    }
    return NULL;
}

/* 8 threads x 100 calls; returns how many distinct threads ran the handler (-1 on failure). */
static int concurrent_calls(shoal_rpc_server *server) {
    shoal_rpc_client *c = client_for(shoal_rpc_server_port(server), ECHO_TOKEN);
    if (!c) {
        CHECK(c != NULL);
        return -1;
    }
    seen_reset();
    pthread_t th[8];
    worker_arg args[8];
    double t0 = shoal_now_s();
    for (int i = 0; i < 8; i++) {
        args[i] = (worker_arg){c, i, 0};
        pthread_create(&th[i], NULL, concurrent_worker, &args[i]);
    }
    int total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += args[i].ok;
    }
    CHECK_EQ_INT(total, 800);
    pthread_mutex_lock(&seen_mu);
    CHECK(seen_calls >= 800);
    int n = n_seen;
    pthread_mutex_unlock(&seen_mu);
    fprintf(stderr, "  800 concurrent inline calls in %.3f s on %d thread(s)\n", shoal_now_s() - t0,
            n);
    shoal_rpc_client_free(c);
    return n;
}

/* One completion-queue thread: every call ran on it (ignoring the flag spreads them over the
 * pool's workers: 701 calls on other threads when this was written). */
static void test_concurrent(void) {
    CHECK_EQ_INT(concurrent_calls(srv), 1);
}

/* Two completion-queue threads: the calls run on at most those two; and an inline call that
 * is slow (it should never be, but a stalled disk read could be) holds one of them while the
 * other keeps serving, which one thread cannot do. */
static void test_two_cq_threads(void) {
    shoal_rpc_server *s2 = NULL;
    cq_threads = 2;
    CHECK_EQ_INT(start_server(&s2, 2000), SHOAL_OK);
    cq_threads = 1;
    if (!s2) return;
    int n = concurrent_calls(s2);
    CHECK(n >= 1 && n <= 2);
    shoal_rpc_client *slow = client_for(shoal_rpc_server_port(s2), ECHO_TOKEN);
    shoal_rpc_client *fast = client_for(shoal_rpc_server_port(s2), ECHO_TOKEN);
    CHECK(slow && fast);
    if (slow && fast) {
        CHECK(say_ok(fast, "warm")); /* connect before timing */
        shoal_rpc_async *a = NULL;
        CHECK_EQ_INT(shoal_rpc_async_new(slow, 1, &a), SHOAL_OK);
        Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
        req.mode = SHOAL__TEST__MODE__MODE_SLOW;
        req.delay_ms = 1500;
        req.text = "hog";
        CHECK_EQ_INT(shoal_rpc_async_start(a, &inline_say, &req.base, 10000, NULL), SHOAL_OK);
        for (int i = 0; i < 300 && shoal_rpc_server_inflight(s2) < 1; i++)
            nanosleep(&(struct timespec){0, 2000000}, NULL);
        nanosleep(&(struct timespec){0, 50000000}, NULL); /* the hog is in its handler */
        double t0 = shoal_now_s();
        int ok = 0;
        for (int i = 0; i < 20; i++)
            ok += say_ok(fast, "beside the hog");
        double dt = shoal_now_s() - t0;
        CHECK_EQ_INT(ok, 20);
        CHECK(dt < 1.0); /* with one CQ thread they would wait out the hog's 1.5 s */
        fprintf(stderr, "  20 inline calls beside a 1.5 s inline call: %.3f s\n", dt);
        shoal_rpc_async_done d;
        CHECK_EQ_INT(shoal_rpc_async_next(a, 10000, &d), SHOAL_OK);
        CHECK_EQ_INT(d.status, SHOAL_OK);
        shoal_rpc_msg_free(d.resp);
        shoal_rpc_async_free(a);
    }
    shoal_rpc_client_free(slow);
    shoal_rpc_client_free(fast);
    shoal_rpc_server_free(s2);
}

typedef struct {
    int port, delay_ms;
    shoal_status st;
} slow_arg;

static void *slow_call(void *p) {
    slow_arg *a = p;
    shoal_rpc_client *c = client_for(a->port, ECHO_TOKEN);
    if (!c) {
        a->st = SHOAL_ERR_INTERNAL;
        return NULL;
    }
    Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
    req.mode = SHOAL__TEST__MODE__MODE_SLOW;
    req.delay_ms = a->delay_ms;
    req.text = "slow";
    a->st = say(c, &req, 20000, NULL, NULL);
    shoal_rpc_client_free(c);
    return NULL;
}

static void test_shutdown_drains(void) {
    shoal_rpc_server *s = NULL;
    CHECK_EQ_INT(start_server(&s, 5000), SHOAL_OK);
    if (!s) return;
    slow_arg a = {.port = shoal_rpc_server_port(s), .delay_ms = 300, .st = SHOAL_ERR_INTERNAL};
    pthread_t th;
    pthread_create(&th, NULL, slow_call, &a);
    for (int i = 0; i < 300 && shoal_rpc_server_inflight(s) < 1; i++)
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    CHECK_EQ_INT(shoal_rpc_server_inflight(s), 1);
    double t0 = shoal_now_s();
    shoal_rpc_server_free(s); /* waits for the inline call to finish */
    double dt = shoal_now_s() - t0;
    pthread_join(th, NULL);
    CHECK_EQ_INT(a.st, SHOAL_OK);
    CHECK(dt < 4.0);
    fprintf(stderr, "  drained an in-flight inline call in %.3f s\n", dt);

    /* past the grace, an inline call still running is cancelled and shutdown completes */
    CHECK_EQ_INT(start_server(&s, 300), SHOAL_OK);
    if (!s) return;
    slow_arg stuck = {.port = shoal_rpc_server_port(s), .delay_ms = 30000, .st = SHOAL_OK};
    pthread_create(&th, NULL, slow_call, &stuck);
    for (int i = 0; i < 300 && shoal_rpc_server_inflight(s) < 1; i++)
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    t0 = shoal_now_s();
    shoal_rpc_server_free(s);
    dt = shoal_now_s() - t0;
    pthread_join(th, NULL);
    CHECK(stuck.st != SHOAL_OK);
    CHECK(dt >= 0.25 && dt < 5.0);
    fprintf(stderr, "  cancelled a stuck inline call after the grace: %.3f s\n", dt);
}

/* The same shutdown paths with two completion-queue threads: one of them claims the destroy. */
static void test_shutdown_drains_two_cq(void) {
    cq_threads = 2;
    test_shutdown_drains();
    cq_threads = 1;
}

int main(void) {
    const char *lvl = getenv("SHOAL_LOG_LEVEL");
    shoal_log_set_level(lvl ? (shoal_log_level)shoal_log_parse_level(lvl) : SHOAL_LOG_ERROR);
    TEST_RUN(test_refused_on_stream);
    CHECK_EQ_INT(start_server(&srv, 2000), SHOAL_OK);
    if (srv) {
        TEST_RUN(test_replies_and_checks);
        TEST_RUN(test_concurrent);
        shoal_rpc_server_free(srv);
    }
    TEST_RUN(test_two_cq_threads);
    TEST_RUN(test_shutdown_drains);
    TEST_RUN(test_shutdown_drains_two_cq);
    return TEST_EXIT();
}
