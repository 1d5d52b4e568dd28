/* test_rpc_async.c: shoal_rpc_async_* (many unary calls in flight from one thread) on loopback
 * against the Echo service: 64 calls in flight with each reply matched to its own tag, calls
 * re-issued as others finish (the load generator's loop), per-call errors (handler status,
 * validation, auth, deadline) beside successes, the in-flight cap, argument checks, next()
 * timing out while a slow call runs, an unreachable server, and free() cancelling calls still
 * in flight. Servers bind 127.0.0.1:0. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/timeutil.h"
#include "echo_service.h"
#include "test.h"

static shoal_rpc_server *srv;

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

static shoal_status start_say(shoal_rpc_async *a, const char *text, int timeout_ms, intptr_t tag) {
    Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
    req.text = (char *)text;
    return shoal_rpc_async_start(a, &echo_methods[ECHO_SAY], &req.base, timeout_ms, (void *)tag);
}

/* 64 in flight at once; every reply carries the text its own tag asked for. */
static void test_many_in_flight(void) {
    shoal_rpc_client *c = client_for(shoal_rpc_server_port(srv), ECHO_TOKEN);
    shoal_rpc_async *a = NULL;
    CHECK(c != NULL);
    CHECK_EQ_INT(shoal_rpc_async_new(c, 64, &a), SHOAL_OK);
    if (!a) {
        shoal_rpc_client_free(c);
        return;
    }
    int seen[64] = {0};
    for (intptr_t i = 0; i < 64; i++) {
        char text[32];
        snprintf(text, sizeof text, "call %d", (int)i);
        CHECK_EQ_INT(start_say(a, text, 0, i), SHOAL_OK); /* text is packed at start */
    }
    CHECK_EQ_INT(shoal_rpc_async_outstanding(a), 64);
    /* the 65th is refused, not queued */
    CHECK_EQ_INT(start_say(a, "one too many", 0, 99), SHOAL_ERR_LIMIT);
    int ok = 0;
    for (int n = 0; n < 64; n++) {
        shoal_rpc_async_done d;
        CHECK_EQ_INT(shoal_rpc_async_next(a, 5000, &d), SHOAL_OK);
        int i = (int)(intptr_t)d.user;
        CHECK(i >= 0 && i < 64);
        if (i < 0 || i >= 64) continue;
        seen[i]++;
        char want[32];
        snprintf(want, sizeof want, "call %d", i);
        const Shoal__Test__EchoReply *r = (const Shoal__Test__EchoReply *)d.resp;
        if (d.status == SHOAL_OK && r && strcmp(r->text, want) == 0 &&
            strcmp(r->principal, "token:tester") == 0 && d.result.code == SHOAL_RPC_OK)
            ok++;
        shoal_rpc_msg_free(d.resp);
    }
    CHECK_EQ_INT(ok, 64);
    for (int i = 0; i < 64; i++)
        CHECK_EQ_INT(seen[i], 1);
    CHECK_EQ_INT(shoal_rpc_async_outstanding(a), 0);
    /* nothing in flight: next() says so instead of waiting forever */
    shoal_rpc_async_done d;
    CHECK_EQ_INT(shoal_rpc_async_next(a, 0, &d), SHOAL_ERR_INVALID_ARG);
    shoal_rpc_async_free(a);
    shoal_rpc_client_free(c);
}

/* The load generator's loop: 8 in flight, each completion re-issues until 1000 are done. */
static void test_reissue_loop(void) {
    shoal_rpc_client *c = client_for(shoal_rpc_server_port(srv), ECHO_TOKEN);
    shoal_rpc_async *a = NULL;
    CHECK_EQ_INT(shoal_rpc_async_new(c, 8, &a), SHOAL_OK);
    if (!a) {
        shoal_rpc_client_free(c);
        return;
    }
    int started = 0, done = 0, ok = 0;
    double t0 = shoal_now_s();
    while (done < 1000) {
        while (started < 1000 && shoal_rpc_async_outstanding(a) < 8) {
            char text[32];
            snprintf(text, sizeof text, "r%d", started);
            if (start_say(a, text, 0, started) != SHOAL_OK) break;
            started++;
        }
        shoal_rpc_async_done d;
        if (shoal_rpc_async_next(a, 5000, &d) != SHOAL_OK) break;
        char want[32];
        snprintf(want, sizeof want, "r%d", (int)(intptr_t)d.user);
        const Shoal__Test__EchoReply *r = (const Shoal__Test__EchoReply *)d.resp;
        ok += d.status == SHOAL_OK && r && strcmp(r->text, want) == 0;
        shoal_rpc_msg_free(d.resp);
        done++;
    }
    CHECK_EQ_INT(started, 1000);
    CHECK_EQ_INT(ok, 1000);
    fprintf(stderr, "  1000 calls, 8 in flight, in %.3f s\n", shoal_now_s() - t0);
    shoal_rpc_async_free(a);
    shoal_rpc_client_free(c);
}

/* Each call gets its own status: a handler error, a refused request and a deadline sit
 * beside a success in one handle. */
static void test_per_call_errors(void) {
    shoal_rpc_client *c = client_for(shoal_rpc_server_port(srv), ECHO_TOKEN);
    shoal_rpc_async *a = NULL;
    CHECK_EQ_INT(shoal_rpc_async_new(c, 4, &a), SHOAL_OK);
    if (!a) {
        shoal_rpc_client_free(c);
        return;
    }
    Shoal__Test__EchoRequest fail = SHOAL__TEST__ECHO_REQUEST__INIT;
    fail.text = "fail";
    fail.mode = SHOAL__TEST__MODE__MODE_FAIL;
    fail.fail_status = SHOAL_ERR_NOT_FOUND;
    CHECK_EQ_INT(shoal_rpc_async_start(a, &echo_methods[ECHO_SAY], &fail.base, 0, (void *)1),
                 SHOAL_OK);
    char longtext[100];
    memset(longtext, 'x', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    CHECK_EQ_INT(start_say(a, longtext, 0, 2), SHOAL_OK); /* the server's validator refuses it */
    Shoal__Test__EchoRequest slow = SHOAL__TEST__ECHO_REQUEST__INIT;
    slow.text = "slow";
    slow.mode = SHOAL__TEST__MODE__MODE_SLOW;
    slow.delay_ms = 3000;
    CHECK_EQ_INT(shoal_rpc_async_start(a, &echo_methods[ECHO_SAY], &slow.base, 200, (void *)3),
                 SHOAL_OK);
    CHECK_EQ_INT(start_say(a, "fine", 0, 4), SHOAL_OK);
    int got[5] = {0};
    double t0 = shoal_now_s();
    for (int n = 0; n < 4; n++) {
        shoal_rpc_async_done d;
        CHECK_EQ_INT(shoal_rpc_async_next(a, 5000, &d), SHOAL_OK);
        int i = (int)(intptr_t)d.user;
        if (i < 1 || i > 4) {
            CHECK(0);
            continue;
        }
        got[i]++;
        switch (i) {
        case 1:
            CHECK_EQ_INT(d.status, SHOAL_ERR_NOT_FOUND);
            CHECK_EQ_INT(d.result.code, SHOAL_RPC_NOT_FOUND);
            CHECK(strstr(d.result.details, "asked to fail") != NULL);
            CHECK(d.resp == NULL);
            break;
        case 2:
            CHECK_EQ_INT(d.status, SHOAL_ERR_INVALID_ARG);
            CHECK_EQ_INT(d.result.code, SHOAL_RPC_INVALID_ARGUMENT);
            CHECK(d.resp == NULL);
            break;
        case 3:
            CHECK_EQ_INT(d.status, SHOAL_ERR_TIMEOUT);
            CHECK_EQ_INT(d.result.code, SHOAL_RPC_DEADLINE_EXCEEDED);
            CHECK(shoal_now_s() - t0 < 2.0);
            break;
        case 4:
            CHECK_EQ_INT(d.status, SHOAL_OK);
            CHECK(d.resp && strcmp(((Shoal__Test__EchoReply *)d.resp)->text, "fine") == 0);
            break;
        }
        shoal_rpc_msg_free(d.resp);
    }
    for (int i = 1; i <= 4; i++)
        CHECK_EQ_INT(got[i], 1);
    shoal_rpc_async_free(a);
    shoal_rpc_client_free(c);

    /* a wrong token: every call is refused with UNAUTHENTICATED */
    c = client_for(shoal_rpc_server_port(srv), "wrong-token");
    CHECK_EQ_INT(shoal_rpc_async_new(c, 2, &a), SHOAL_OK);
    if (a) {
        CHECK_EQ_INT(start_say(a, "x", 0, 1), SHOAL_OK);
        CHECK_EQ_INT(start_say(a, "y", 0, 2), SHOAL_OK);
        for (int n = 0; n < 2; n++) {
            shoal_rpc_async_done d;
            CHECK_EQ_INT(shoal_rpc_async_next(a, 5000, &d), SHOAL_OK);
            CHECK_EQ_INT(d.status, SHOAL_ERR_AUTH);
            CHECK_EQ_INT(d.result.code, SHOAL_RPC_UNAUTHENTICATED);
        }
    }
    shoal_rpc_async_free(a);
    shoal_rpc_client_free(c);
}

static void test_arguments(void) {
    shoal_rpc_client *c = client_for(shoal_rpc_server_port(srv), ECHO_TOKEN);
    shoal_rpc_async *a = (shoal_rpc_async *)&a; /* must be reset to NULL on failure */
    CHECK_EQ_INT(shoal_rpc_async_new(c, 0, &a), SHOAL_ERR_LIMIT);
    CHECK(a == NULL);
    CHECK_EQ_INT(shoal_rpc_async_new(c, 1000000, &a), SHOAL_ERR_LIMIT);
    CHECK_EQ_INT(shoal_rpc_async_new(NULL, 4, &a), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_rpc_async_new(c, 2, &a), SHOAL_OK);
    if (a) {
        Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
        req.count = 3;
        /* a streaming method is not for this API */
        CHECK_EQ_INT(shoal_rpc_async_start(a, &echo_methods[ECHO_COUNT], &req.base, 0, NULL),
                     SHOAL_ERR_INVALID_ARG);
        /* a request of another type */
        Shoal__Test__EchoReply wrong = SHOAL__TEST__ECHO_REPLY__INIT;
        CHECK_EQ_INT(shoal_rpc_async_start(a, &echo_methods[ECHO_SAY], &wrong.base, 0, NULL),
                     SHOAL_ERR_INVALID_ARG);
        CHECK_EQ_INT(shoal_rpc_async_start(a, &echo_methods[ECHO_SAY], NULL, 0, NULL),
                     SHOAL_ERR_INVALID_ARG);
        CHECK_EQ_INT(shoal_rpc_async_outstanding(a), 0);
        /* refused starts did not use up slots */
        CHECK_EQ_INT(start_say(a, "a", 0, 1), SHOAL_OK);
        CHECK_EQ_INT(start_say(a, "b", 0, 2), SHOAL_OK);
        for (int n = 0; n < 2; n++) {
            shoal_rpc_async_done d;
            CHECK_EQ_INT(shoal_rpc_async_next(a, 5000, &d), SHOAL_OK);
            CHECK_EQ_INT(d.status, SHOAL_OK);
            shoal_rpc_msg_free(d.resp);
        }
    }
    shoal_rpc_async_free(a);
    shoal_rpc_async_free(NULL);
    CHECK_EQ_INT(shoal_rpc_async_outstanding(NULL), 0);
    shoal_rpc_client_free(c);
}

/* next() with a timeout returns TIMEOUT while a slow call runs; free() cancels calls still in
 * flight and returns long before their handlers would have finished. */
static void test_timeout_and_free_in_flight(void) {
    shoal_rpc_client *c = client_for(shoal_rpc_server_port(srv), ECHO_TOKEN);
    shoal_rpc_async *a = NULL;
    CHECK_EQ_INT(shoal_rpc_async_new(c, 4, &a), SHOAL_OK);
    if (!a) {
        shoal_rpc_client_free(c);
        return;
    }
    Shoal__Test__EchoRequest slow = SHOAL__TEST__ECHO_REQUEST__INIT;
    slow.text = "slow";
    slow.mode = SHOAL__TEST__MODE__MODE_SLOW;
    slow.delay_ms = 400;
    CHECK_EQ_INT(shoal_rpc_async_start(a, &echo_methods[ECHO_SAY], &slow.base, 0, (void *)7),
                 SHOAL_OK);
    shoal_rpc_async_done d;
    double t0 = shoal_now_s();
    CHECK_EQ_INT(shoal_rpc_async_next(a, 50, &d), SHOAL_ERR_TIMEOUT);
    CHECK(shoal_now_s() - t0 < 0.35);
    CHECK_EQ_INT(shoal_rpc_async_outstanding(a), 1);
    CHECK_EQ_INT(shoal_rpc_async_next(a, 5000, &d), SHOAL_OK);
    CHECK(d.user == (void *)7);
    CHECK_EQ_INT(d.status, SHOAL_OK);
    shoal_rpc_msg_free(d.resp);

    slow.delay_ms = 20000;
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(shoal_rpc_async_start(a, &echo_methods[ECHO_SAY], &slow.base, 30000, NULL),
                     SHOAL_OK);
    nanosleep(&(struct timespec){0, 100000000}, NULL); /* let them reach the handlers */
    t0 = shoal_now_s();
    shoal_rpc_async_free(a);
    double dt = shoal_now_s() - t0;
    CHECK(dt < 2.0);
    fprintf(stderr, "  freed a handle with 4 calls in flight in %.3f s\n", dt);
    shoal_rpc_client_free(c);
}

static void test_unreachable(void) {
    /* a port nothing listens on: bind one, stop it */
    shoal_rpc_server_config cfg = {0};
    cfg.listen = "127.0.0.1:0";
    cfg.routes = echo_routes;
    cfg.n_routes = ECHO_N_METHODS;
    shoal_rpc_server *s = NULL;
    CHECK_EQ_INT(shoal_rpc_server_start(&cfg, &s), SHOAL_OK);
    if (!s) return;
    int port = shoal_rpc_server_port(s);
    shoal_rpc_server_free(s);
    shoal_rpc_client *c = client_for(port, ECHO_TOKEN);
    shoal_rpc_async *a = NULL;
    CHECK_EQ_INT(shoal_rpc_async_new(c, 1, &a), SHOAL_OK);
    if (a) {
        CHECK_EQ_INT(start_say(a, "anyone?", 2000, 1), SHOAL_OK);
        shoal_rpc_async_done d;
        CHECK_EQ_INT(shoal_rpc_async_next(a, 10000, &d), SHOAL_OK);
        CHECK(d.status == SHOAL_ERR_COMM || d.status == SHOAL_ERR_TIMEOUT);
        CHECK(d.resp == NULL);
    }
    shoal_rpc_async_free(a);
    shoal_rpc_client_free(c);
}

int main(void) {
    const char *lvl = getenv("SHOAL_LOG_LEVEL");
    shoal_log_set_level(lvl ? (shoal_log_level)shoal_log_parse_level(lvl) : SHOAL_LOG_ERROR);
    shoal_rpc_server_config cfg = {0};
    cfg.listen = "127.0.0.1:0";
    cfg.routes = echo_routes;
    cfg.n_routes = ECHO_N_METHODS;
    cfg.auth = echo_auth;
    cfg.drain_ms = 500;
    CHECK_EQ_INT(shoal_rpc_server_start(&cfg, &srv), SHOAL_OK);
    if (srv) {
        TEST_RUN(test_many_in_flight);
        TEST_RUN(test_reissue_loop);
        TEST_RUN(test_per_call_errors);
        TEST_RUN(test_arguments);
        TEST_RUN(test_timeout_and_free_in_flight);
        shoal_rpc_server_free(srv);
    }
    TEST_RUN(test_unreachable);
    return TEST_EXIT();
}
