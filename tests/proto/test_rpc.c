/* test_rpc.c: proto/rpc.h end to end on loopback, against the Echo test service: unary round
 * trip, server stream of N, client stream, deadlines (unary and stream), status mapping over
 * the wire, oversize (server cap and per-method cap) and garbage requests refused while the
 * server keeps serving, unknown methods, bearer token good/bad/missing, 8 threads x 100
 * concurrent calls, plaintext refused off loopback, SO_REUSEPORT off, and shutdown that drains
 * in-flight calls (and cancels them past the grace), the in-flight cap and a one-thread pool.
 * Servers bind 127.0.0.1:0. */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "common/timeutil.h"
#include "echo_service.h"
#include "test.h"

#define MAX_MSG (64 * 1024)

static shoal_rpc_server *srv;
static char target[64];

static shoal_status start_server(shoal_rpc_server **out, int drain_ms) {
    shoal_rpc_server_config cfg = {0};
    cfg.listen = "127.0.0.1:0";
    cfg.routes = echo_routes;
    cfg.n_routes = ECHO_N_METHODS;
    cfg.auth = echo_auth;
    cfg.max_message_bytes = MAX_MSG;
    cfg.drain_ms = drain_ms;
    return shoal_rpc_server_start(&cfg, out);
}

static shoal_rpc_client *client_for(const char *tgt, const char *token) {
    shoal_rpc_client_config cc = {0};
    cc.target = tgt;
    cc.bearer_token = token;
    cc.max_message_bytes = 4 * MAX_MSG; /* lets tests send more than the server takes */
    cc.timeout_ms = 10000;
    shoal_rpc_client *c = NULL;
    if (shoal_rpc_client_new(&cc, &c) != SHOAL_OK) return NULL;
    return c;
}

static shoal_status say(shoal_rpc_client *c, int method, Shoal__Test__EchoRequest *req,
                        int timeout_ms, Shoal__Test__EchoReply **rep, shoal_rpc_result *res) {
    ProtobufCMessage *m = NULL;
    shoal_status st =
        shoal_rpc_client_unary(c, &echo_methods[method], &req->base, timeout_ms, &m, res);
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
    shoal_status st = say(c, ECHO_SAY, &req, 0, &rep, NULL);
    int ok = st == SHOAL_OK && rep && strcmp(rep->text, text) == 0;
    shoal_rpc_msg_free(rep ? &rep->base : NULL);
    return ok;
}

static void test_unary(void) {
    shoal_rpc_client *c = client_for(target, ECHO_TOKEN);
    CHECK(c != NULL);
    if (!c) return;
    Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
    req.text = "hello shoal";
    uint8_t payload[1000];
    memset(payload, 7, sizeof payload);
    req.payload.data = payload;
    req.payload.len = sizeof payload;
    Shoal__Test__EchoReply *rep = NULL;
    shoal_rpc_result res;
    CHECK_EQ_INT(say(c, ECHO_SAY, &req, 0, &rep, &res), SHOAL_OK);
    CHECK_EQ_INT(res.code, SHOAL_RPC_OK);
    CHECK(rep != NULL);
    if (rep) {
        CHECK_STR(rep->text, "hello shoal");
        CHECK_STR(rep->principal, "token:tester");
        CHECK_STR(rep->peer_cn, ""); /* no mTLS here */
        CHECK_EQ_INT(rep->total, 1000);
        shoal_rpc_msg_free(&rep->base);
    }
    /* the wrong request type or kind is refused locally */
    Shoal__Test__EchoReply wrong = SHOAL__TEST__ECHO_REPLY__INIT;
    ProtobufCMessage *m = NULL;
    CHECK_EQ_INT(shoal_rpc_client_unary(c, &echo_methods[ECHO_SAY], &wrong.base, 0, &m, NULL),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_rpc_client_unary(c, &echo_methods[ECHO_COUNT], &req.base, 0, &m, NULL),
                 SHOAL_ERR_INVALID_ARG);
    shoal_rpc_client_free(c);
}

static void test_server_stream(void) {
    shoal_rpc_client *c = client_for(target, ECHO_TOKEN);
    if (!c) {
        CHECK(c != NULL);
        return;
    }
    Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
    req.count = 1000;
    shoal_rpc_stream *s = NULL;
    CHECK_EQ_INT(shoal_rpc_client_stream_open(c, &echo_methods[ECHO_COUNT], &req.base, 0, &s),
                 SHOAL_OK);
    int got = 0, in_order = 1;
    shoal_status st;
    for (;;) {
        ProtobufCMessage *m = NULL;
        st = shoal_rpc_stream_read(s, &m);
        if (st != SHOAL_OK || !m) break;
        Shoal__Test__EchoReply *r = (Shoal__Test__EchoReply *)m;
        char want[32];
        snprintf(want, sizeof want, "item %d", got);
        if (r->seq != got || strcmp(r->text, want) != 0) in_order = 0;
        got++;
        shoal_rpc_msg_free(m);
    }
    CHECK_EQ_INT(st, SHOAL_OK);
    CHECK_EQ_INT(got, 1000);
    CHECK(in_order);
    CHECK_EQ_INT(shoal_rpc_stream_result(s)->code, SHOAL_RPC_OK);
    shoal_rpc_stream_free(s);

    /* a stream that fails after 3 messages: 3 messages, then the mapped error */
    req.count = 3;
    req.mode = SHOAL__TEST__MODE__MODE_FAIL;
    req.fail_status = SHOAL_ERR_NOT_FOUND;
    CHECK_EQ_INT(shoal_rpc_client_stream_open(c, &echo_methods[ECHO_COUNT], &req.base, 0, &s),
                 SHOAL_OK);
    got = 0;
    for (;;) {
        ProtobufCMessage *m = NULL;
        st = shoal_rpc_stream_read(s, &m);
        if (st != SHOAL_OK || !m) break;
        got++;
        shoal_rpc_msg_free(m);
    }
    CHECK_EQ_INT(got, 3);
    CHECK_EQ_INT(st, SHOAL_ERR_NOT_FOUND);
    CHECK_EQ_INT(shoal_rpc_stream_result(s)->code, SHOAL_RPC_NOT_FOUND);
    CHECK(strstr(shoal_rpc_stream_result(s)->details, "stream failed after 3") != NULL);
    shoal_rpc_stream_free(s);

    /* deadline mid-stream: 50 ms per message, 300 ms budget */
    req.mode = SHOAL__TEST__MODE__MODE_ECHO;
    req.count = 1000;
    req.delay_ms = 50;
    double t0 = shoal_now_s();
    CHECK_EQ_INT(shoal_rpc_client_stream_open(c, &echo_methods[ECHO_COUNT], &req.base, 300, &s),
                 SHOAL_OK);
    got = 0;
    for (;;) {
        ProtobufCMessage *m = NULL;
        st = shoal_rpc_stream_read(s, &m);
        if (st != SHOAL_OK || !m) break;
        got++;
        shoal_rpc_msg_free(m);
    }
    CHECK_EQ_INT(st, SHOAL_ERR_TIMEOUT);
    CHECK(got >= 1 && got < 100);
    CHECK(shoal_now_s() - t0 < 3.0);
    shoal_rpc_stream_free(s);

    /* a stream abandoned half way is cancelled by free, and the server carries on */
    req.delay_ms = 0;
    CHECK_EQ_INT(shoal_rpc_client_stream_open(c, &echo_methods[ECHO_COUNT], &req.base, 0, &s),
                 SHOAL_OK);
    ProtobufCMessage *m = NULL;
    CHECK_EQ_INT(shoal_rpc_stream_read(s, &m), SHOAL_OK);
    shoal_rpc_msg_free(m);
    shoal_rpc_stream_free(s);
    CHECK(say_ok(c, "after abandoned stream"));
    shoal_rpc_client_free(c);
}

static void test_client_stream(void) {
    shoal_rpc_client *c = client_for(target, ECHO_TOKEN);
    if (!c) {
        CHECK(c != NULL);
        return;
    }
    shoal_rpc_stream *s = NULL;
    CHECK_EQ_INT(shoal_rpc_client_writer_open(c, &echo_methods[ECHO_SUM], 0, &s), SHOAL_OK);
    for (int i = 0; i < 100; i++) {
        Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
        req.count = i;
        CHECK_EQ_INT(shoal_rpc_stream_write(s, &req.base), SHOAL_OK);
    }
    ProtobufCMessage *m = NULL;
    CHECK_EQ_INT(shoal_rpc_stream_finish(s, &m), SHOAL_OK);
    CHECK(m != NULL);
    if (m) {
        Shoal__Test__EchoReply *r = (Shoal__Test__EchoReply *)m;
        CHECK_EQ_INT(r->seq, 100);
        CHECK_EQ_INT(r->total, 4950);
        CHECK_STR(r->principal, "token:tester");
        shoal_rpc_msg_free(m);
    }
    shoal_rpc_stream_free(s);

    /* empty stream */
    CHECK_EQ_INT(shoal_rpc_client_writer_open(c, &echo_methods[ECHO_SUM], 0, &s), SHOAL_OK);
    CHECK_EQ_INT(shoal_rpc_stream_finish(s, &m), SHOAL_OK);
    if (m) {
        CHECK_EQ_INT(((Shoal__Test__EchoReply *)m)->seq, 0);
        shoal_rpc_msg_free(m);
    }
    shoal_rpc_stream_free(s);

    /* an invalid message mid-stream ends the call with INVALID_ARGUMENT */
    CHECK_EQ_INT(shoal_rpc_client_writer_open(c, &echo_methods[ECHO_SUM], 0, &s), SHOAL_OK);
    Shoal__Test__EchoRequest ok = SHOAL__TEST__ECHO_REQUEST__INIT;
    ok.count = 1;
    Shoal__Test__EchoRequest bad = SHOAL__TEST__ECHO_REQUEST__INIT;
    bad.count = -1;
    CHECK_EQ_INT(shoal_rpc_stream_write(s, &ok.base), SHOAL_OK);
    /* refused server-side: this write, a later one or finish reports it */
    shoal_status st = shoal_rpc_stream_write(s, &bad.base);
    for (int i = 0; i < 50 && st == SHOAL_OK; i++)
        st = shoal_rpc_stream_write(s, &ok.base);
    if (st == SHOAL_OK) st = shoal_rpc_stream_finish(s, &m);
    CHECK_EQ_INT(st, SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_rpc_stream_result(s)->code, SHOAL_RPC_INVALID_ARGUMENT);
    CHECK(strstr(shoal_rpc_stream_result(s)->details, "count") != NULL);
    shoal_rpc_stream_free(s);
    CHECK(say_ok(c, "after bad stream"));
    shoal_rpc_client_free(c);
}

static void test_deadline(void) {
    shoal_rpc_client *c = client_for(target, ECHO_TOKEN);
    if (!c) {
        CHECK(c != NULL);
        return;
    }
    Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
    req.mode = SHOAL__TEST__MODE__MODE_SLOW;
    req.delay_ms = 3000;
    shoal_rpc_result res;
    double t0 = shoal_now_s();
    CHECK_EQ_INT(say(c, ECHO_SAY, &req, 150, NULL, &res), SHOAL_ERR_TIMEOUT);
    double dt = shoal_now_s() - t0;
    CHECK_EQ_INT(res.code, SHOAL_RPC_DEADLINE_EXCEEDED);
    CHECK(dt >= 0.1 && dt < 2.0);
    /* within the deadline it answers */
    req.delay_ms = 20;
    CHECK_EQ_INT(say(c, ECHO_SAY, &req, 5000, NULL, &res), SHOAL_OK);
    /* the cancelled handler let go of its worker: the server is not left with stuck calls */
    int inflight = 99;
    for (int i = 0; i < 200 && inflight; i++) {
        inflight = shoal_rpc_server_inflight(srv);
        if (inflight) nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    CHECK_EQ_INT(inflight, 0);
    shoal_rpc_client_free(c);
}

static void test_status_mapping(void) {
    shoal_rpc_client *c = client_for(target, ECHO_TOKEN);
    if (!c) {
        CHECK(c != NULL);
        return;
    }
    for (int s = 1; s < SHOAL_STATUS_COUNT; s++) {
        Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
        req.mode = SHOAL__TEST__MODE__MODE_FAIL;
        req.fail_status = s;
        shoal_rpc_result res;
        shoal_status st = say(c, ECHO_SAY, &req, 0, NULL, &res);
        CHECK_EQ_INT(res.code, shoal_rpc_code_from_status((shoal_status)s));
        CHECK_EQ_INT(st, shoal_rpc_status_from_code(res.code));
        char want[64];
        snprintf(want, sizeof want, "asked to fail with %d", s);
        CHECK_STR(res.details, want);
    }
    shoal_rpc_client_free(c);
}

static void test_oversize_and_garbage(void) {
    shoal_rpc_client *c = client_for(target, ECHO_TOKEN);
    if (!c) {
        CHECK(c != NULL);
        return;
    }
    static uint8_t big[2 * MAX_MSG];
    Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
    shoal_rpc_result res;
    /* over the server's message cap: gRPC itself refuses it */
    req.payload.data = big;
    req.payload.len = sizeof big;
    CHECK_EQ_INT(say(c, ECHO_SAY, &req, 0, NULL, &res), SHOAL_ERR_LIMIT);
    CHECK_EQ_INT(res.code, SHOAL_RPC_RESOURCE_EXHAUSTED);
    CHECK(say_ok(c, "still serving 1"));
    /* over the method's own 1 KiB cap: the adapter refuses it */
    req.payload.len = 2000;
    CHECK_EQ_INT(say(c, ECHO_SMALL, &req, 0, NULL, &res), SHOAL_ERR_LIMIT);
    CHECK_EQ_INT(res.code, SHOAL_RPC_RESOURCE_EXHAUSTED);
    CHECK(strstr(res.details, "1024") != NULL);
    req.payload.len = 500;
    CHECK_EQ_INT(say(c, ECHO_SMALL, &req, 0, NULL, &res), SHOAL_OK);
    /* over the client's own send cap: refused before sending */
    shoal_rpc_client_config cc = {
        .target = target, .bearer_token = ECHO_TOKEN, .max_message_bytes = 100};
    shoal_rpc_client *tiny = NULL;
    CHECK_EQ_INT(shoal_rpc_client_new(&cc, &tiny), SHOAL_OK);
    if (tiny) {
        CHECK_EQ_INT(say(tiny, ECHO_SAY, &req, 0, NULL, &res), SHOAL_ERR_LIMIT);
        shoal_rpc_client_free(tiny);
    }

    /* garbage, truncated, unknown enum, invalid field: INVALID_ARGUMENT each time */
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK_EQ_INT(shoal_rpc_client_unary_raw(c, echo_methods[ECHO_SAY].path, junk, sizeof junk, 0,
                                            NULL, NULL, &res),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(res.code, SHOAL_RPC_INVALID_ARGUMENT);
    CHECK(strstr(res.details, "malformed") != NULL);
    const uint8_t truncated[] = {0x0a, 0x10, 'h', 'e', 'l'};
    CHECK_EQ_INT(shoal_rpc_client_unary_raw(c, echo_methods[ECHO_SAY].path, truncated,
                                            sizeof truncated, 0, NULL, NULL, &res),
                 SHOAL_ERR_INVALID_ARG);
    const uint8_t bad_enum[] = {0x20, 0x2a};
    CHECK_EQ_INT(shoal_rpc_client_unary_raw(c, echo_methods[ECHO_SAY].path, bad_enum,
                                            sizeof bad_enum, 0, NULL, NULL, &res),
                 SHOAL_ERR_INVALID_ARG);
    CHECK(strstr(res.details, "mode") != NULL);
    const uint8_t absurd[] = {0x10, 0xff, 0xff, 0xff, 0xff, 0x07}; /* count = 2^31-1 */
    CHECK_EQ_INT(shoal_rpc_client_unary_raw(c, echo_methods[ECHO_SAY].path, absurd, sizeof absurd,
                                            0, NULL, NULL, &res),
                 SHOAL_ERR_INVALID_ARG);
    CHECK(strstr(res.details, "count") != NULL);
    /* a valid raw request gets raw reply bytes */
    const uint8_t good[] = {0x0a, 0x02, 'h', 'i'};
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    CHECK_EQ_INT(shoal_rpc_client_unary_raw(c, echo_methods[ECHO_SAY].path, good, sizeof good, 0,
                                            &raw, &raw_len, &res),
                 SHOAL_OK);
    CHECK(raw_len >= 4 && raw && memcmp(raw, good, 4) == 0);
    free(raw);
    /* unknown method */
    CHECK_EQ_INT(shoal_rpc_client_unary_raw(c, "/shoal.test.Echo/Nope", good, sizeof good, 0, NULL,
                                            NULL, &res),
                 SHOAL_ERR_UNSUPPORTED);
    CHECK_EQ_INT(res.code, SHOAL_RPC_UNIMPLEMENTED);
    CHECK(say_ok(c, "still serving 2"));
    shoal_rpc_client_free(c);
}

static void test_bearer(void) {
    shoal_rpc_result res;
    Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
    req.text = "who";
    const char *tokens[] = {NULL, "wrong-token", ECHO_TOKEN "x", "s3cret-toke"};
    for (size_t i = 0; i < sizeof tokens / sizeof *tokens; i++) {
        shoal_rpc_client *c = client_for(target, tokens[i]);
        CHECK(c != NULL);
        if (!c) continue;
        CHECK_EQ_INT(say(c, ECHO_SAY, &req, 0, NULL, &res), SHOAL_ERR_AUTH);
        CHECK_EQ_INT(res.code, SHOAL_RPC_UNAUTHENTICATED);
        /* streams are guarded the same way */
        shoal_rpc_stream *s = NULL;
        req.count = 2;
        shoal_status st =
            shoal_rpc_client_stream_open(c, &echo_methods[ECHO_COUNT], &req.base, 0, &s);
        ProtobufCMessage *m = NULL;
        if (st == SHOAL_OK) st = shoal_rpc_stream_read(s, &m);
        CHECK(m == NULL);
        CHECK_EQ_INT(st, SHOAL_ERR_AUTH);
        shoal_rpc_stream_free(s);
        req.count = 0;
        /* NO_AUTH methods stay open */
        CHECK_EQ_INT(say(c, ECHO_SMALL, &req, 0, NULL, &res), SHOAL_OK);
        shoal_rpc_client_free(c);
    }
    /* tokens that could smuggle headers are refused by the client itself */
    shoal_rpc_client_config cc = {.target = target, .bearer_token = "abc\r\nx-evil: 1"};
    shoal_rpc_client *c = NULL;
    CHECK_EQ_INT(shoal_rpc_client_new(&cc, &c), SHOAL_ERR_INVALID_ARG);
    CHECK(c == NULL);
    c = client_for(target, ECHO_TOKEN);
    CHECK(c && say_ok(c, "authorised"));
    shoal_rpc_client_free(c);
}

typedef struct {
    shoal_rpc_client *c;
    int id, ok;
} worker_arg;

static void *concurrent_worker(void *p) {
    worker_arg *a = p;
    for (int i = 0; i < 100; i++) {
        char text[32];
        snprintf(text, sizeof text, "t%d-%d", a->id, i);
        a->ok += say_ok(a->c, text);
    }
    return NULL;
}

static void test_concurrent(void) {
    shoal_rpc_client *c = client_for(target, ECHO_TOKEN);
    if (!c) {
        CHECK(c != NULL);
        return;
    }
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
    fprintf(stderr, "  800 concurrent calls in %.3f s\n", shoal_now_s() - t0);
    shoal_rpc_client_free(c);
}

static void test_refusals(void) {
    shoal_rpc_server_config cfg = {0};
    cfg.routes = echo_routes;
    cfg.n_routes = ECHO_N_METHODS;
    shoal_rpc_server *s = NULL;
    const char *open_addrs[] = {"0.0.0.0:0", "[::]:0", "10.1.2.3:0", ":0"};
    for (size_t i = 0; i < sizeof open_addrs / sizeof *open_addrs; i++) {
        cfg.listen = open_addrs[i];
        CHECK_EQ_INT(shoal_rpc_server_start(&cfg, &s), SHOAL_ERR_INVALID_ARG);
        CHECK(s == NULL);
    }
    /* incomplete TLS material, duplicate routes, no routes */
    cfg.listen = "127.0.0.1:0";
    cfg.tls_cert = "/nonexistent.pem";
    CHECK_EQ_INT(shoal_rpc_server_start(&cfg, &s), SHOAL_ERR_INVALID_ARG);
    cfg.tls_key = "/nonexistent.key";
    CHECK_EQ_INT(shoal_rpc_server_start(&cfg, &s), SHOAL_ERR_NOT_FOUND);
    cfg.tls_cert = cfg.tls_key = NULL;
    shoal_rpc_route twice[2] = {echo_routes[0], echo_routes[0]};
    cfg.routes = twice;
    cfg.n_routes = 2;
    CHECK_EQ_INT(shoal_rpc_server_start(&cfg, &s), SHOAL_ERR_INVALID_ARG);
    cfg.n_routes = 0;
    CHECK_EQ_INT(shoal_rpc_server_start(&cfg, &s), SHOAL_ERR_INVALID_ARG);
    /* SO_REUSEPORT is off: a second server on a bound port fails loudly */
    cfg.routes = echo_routes;
    cfg.n_routes = ECHO_N_METHODS;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", shoal_rpc_server_port(srv));
    cfg.listen = addr;
    CHECK_EQ_INT(shoal_rpc_server_start(&cfg, &s), SHOAL_ERR_COMM);
    CHECK(s == NULL);
    /* a client refuses plaintext off loopback */
    shoal_rpc_client_config cc = {.target = "10.9.8.7:7070"};
    shoal_rpc_client *c = NULL;
    CHECK_EQ_INT(shoal_rpc_client_new(&cc, &c), SHOAL_ERR_INVALID_ARG);
    cc.target = "127.0.0.1:1";
    cc.tls_cert = "x.pem";
    CHECK_EQ_INT(shoal_rpc_client_new(&cc, &c), SHOAL_ERR_INVALID_ARG);
    /* nothing listening: UNAVAILABLE, quickly */
    cc.tls_cert = NULL;
    CHECK_EQ_INT(shoal_rpc_client_new(&cc, &c), SHOAL_OK);
    if (c) {
        shoal_rpc_result res;
        Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
        CHECK_EQ_INT(say(c, ECHO_SAY, &req, 3000, NULL, &res), SHOAL_ERR_COMM);
        CHECK_EQ_INT(res.code, SHOAL_RPC_UNAVAILABLE);
        shoal_rpc_client_free(c);
    }
    shoal_rpc_server_free(NULL);
    shoal_rpc_client_free(NULL);
    shoal_rpc_stream_free(NULL);
}

typedef struct {
    char target[64];
    int delay_ms;
    shoal_status st;
    int code;
} slow_arg;

static void *slow_call(void *p) {
    slow_arg *a = p;
    shoal_rpc_client *c = client_for(a->target, ECHO_TOKEN);
    if (!c) {
        a->st = SHOAL_ERR_INTERNAL;
        return NULL;
    }
    Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
    req.mode = SHOAL__TEST__MODE__MODE_SLOW;
    req.delay_ms = a->delay_ms;
    req.text = "slow";
    shoal_rpc_result res;
    a->st = say(c, ECHO_SAY, &req, 20000, NULL, &res);
    a->code = res.code;
    shoal_rpc_client_free(c);
    return NULL;
}

static void test_shutdown_drains(void) {
    shoal_rpc_server *s = NULL;
    CHECK_EQ_INT(start_server(&s, 5000), SHOAL_OK);
    if (!s) return;
    slow_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (slow_arg){.delay_ms = 400, .st = SHOAL_ERR_INTERNAL};
        snprintf(args[i].target, sizeof args[i].target, "127.0.0.1:%d", shoal_rpc_server_port(s));
        pthread_create(&th[i], NULL, slow_call, &args[i]);
    }
    int inflight = 0;
    for (int i = 0; i < 300 && inflight < 4; i++) {
        inflight = shoal_rpc_server_inflight(s);
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    CHECK_EQ_INT(inflight, 4);
    double t0 = shoal_now_s();
    shoal_rpc_server_free(s); /* blocks until the 4 calls finished */
    double dt = shoal_now_s() - t0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(args[i].st, SHOAL_OK);
    }
    CHECK(dt > 0.1 && dt < 4.0);
    fprintf(stderr, "  drained 4 in-flight calls in %.3f s\n", dt);
    /* gone: new calls are refused */
    slow_arg after = {.delay_ms = 0};
    snprintf(after.target, sizeof after.target, "%s", args[0].target);
    slow_call(&after);
    CHECK_EQ_INT(after.st, SHOAL_ERR_COMM);

    /* past the grace, running calls are cancelled and shutdown still completes */
    CHECK_EQ_INT(start_server(&s, 300), SHOAL_OK);
    if (!s) return;
    slow_arg stuck = {.delay_ms = 30000, .st = SHOAL_OK};
    snprintf(stuck.target, sizeof stuck.target, "127.0.0.1:%d", shoal_rpc_server_port(s));
    pthread_t t;
    pthread_create(&t, NULL, slow_call, &stuck);
    for (int i = 0; i < 300 && shoal_rpc_server_inflight(s) < 1; i++)
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    t0 = shoal_now_s();
    shoal_rpc_server_free(s);
    dt = shoal_now_s() - t0;
    pthread_join(t, NULL);
    CHECK(stuck.st != SHOAL_OK);
    CHECK(dt >= 0.25 && dt < 5.0);
    fprintf(stderr, "  cancelled a stuck call after the grace: %.3f s (client got %s)\n", dt,
            shoal_rpc_code_str(stuck.code));
}

/* unix: sockets count as local: plaintext is allowed, the port is 0. */
static void test_unix_socket(void) {
    char addr[600];
    snprintf(addr, sizeof addr, "unix:%s/echo.sock", test_tmpdir());
    shoal_rpc_server_config cfg = {
        .listen = addr, .routes = echo_routes, .n_routes = ECHO_N_METHODS, .auth = echo_auth};
    shoal_rpc_server *s = NULL;
    CHECK_EQ_INT(shoal_rpc_server_start(&cfg, &s), SHOAL_OK);
    if (!s) return;
    CHECK_EQ_INT(shoal_rpc_server_port(s), 0);
    shoal_rpc_client *c = client_for(addr, ECHO_TOKEN);
    CHECK(c && say_ok(c, "over a unix socket"));
    shoal_rpc_client_free(c);
    shoal_rpc_server_free(s);
    char sock[600];
    snprintf(sock, sizeof sock, "%s/echo.sock", test_tmpdir());
    remove(sock);
    remove(test_tmpdir());
}

static void wait_inflight(shoal_rpc_server *s, int n) {
    for (int i = 0; i < 400 && shoal_rpc_server_inflight(s) < n; i++)
        nanosleep(&(struct timespec){0, 5000000}, NULL);
}

/* rpc_inflight_calls refuses calls beyond the cap at once; max_threads=1 serialises handlers
 * (the second call waits in the queue, it is not refused). */
static void test_caps(void) {
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_RPC_INFLIGHT_CALLS, 2), SHOAL_OK);
    shoal_rpc_server *s = NULL;
    CHECK_EQ_INT(start_server(&s, 5000), SHOAL_OK);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_RPC_INFLIGHT_CALLS,
                                 shoal_limit_describe(SHOAL_LIMIT_RPC_INFLIGHT_CALLS)->def),
                 SHOAL_OK);
    if (!s) return;
    slow_arg a[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        a[i] = (slow_arg){.delay_ms = 500, .st = SHOAL_ERR_INTERNAL};
        snprintf(a[i].target, sizeof a[i].target, "127.0.0.1:%d", shoal_rpc_server_port(s));
        pthread_create(&th[i], NULL, slow_call, &a[i]);
    }
    wait_inflight(s, 2);
    slow_arg third = {.delay_ms = 0};
    snprintf(third.target, sizeof third.target, "%s", a[0].target);
    slow_call(&third);
    CHECK_EQ_INT(third.st, SHOAL_ERR_LIMIT);
    CHECK_EQ_INT(third.code, SHOAL_RPC_RESOURCE_EXHAUSTED);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(a[i].st, SHOAL_OK);
    }
    shoal_rpc_server_free(s);

    shoal_rpc_server_config cfg = {.listen = "127.0.0.1:0",
                                   .routes = echo_routes,
                                   .n_routes = ECHO_N_METHODS,
                                   .auth = echo_auth,
                                   .max_threads = 1};
    s = NULL;
    CHECK_EQ_INT(shoal_rpc_server_start(&cfg, &s), SHOAL_OK);
    if (!s) return;
    double t0 = shoal_now_s();
    for (int i = 0; i < 2; i++) {
        a[i] = (slow_arg){.delay_ms = 300, .st = SHOAL_ERR_INTERNAL};
        snprintf(a[i].target, sizeof a[i].target, "127.0.0.1:%d", shoal_rpc_server_port(s));
        pthread_create(&th[i], NULL, slow_call, &a[i]);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(a[i].st, SHOAL_OK);
    }
    double dt = shoal_now_s() - t0;
    CHECK(dt >= 0.55); /* one handler thread: 300 ms + 300 ms, not in parallel */
    shoal_rpc_server_free(s);
}

int main(void) {
    /* SHOAL_LOG_LEVEL=debug shows the server's view of every refusal */
    const char *lvl = getenv("SHOAL_LOG_LEVEL");
    shoal_log_set_level(lvl ? (shoal_log_level)shoal_log_parse_level(lvl) : SHOAL_LOG_ERROR);
    if (start_server(&srv, 5000) != SHOAL_OK) {
        fprintf(stderr, "cannot start the test server\n");
        return 1;
    }
    snprintf(target, sizeof target, "127.0.0.1:%d", shoal_rpc_server_port(srv));
    TEST_RUN(test_unary);
    TEST_RUN(test_server_stream);
    TEST_RUN(test_client_stream);
    TEST_RUN(test_deadline);
    TEST_RUN(test_status_mapping);
    TEST_RUN(test_oversize_and_garbage);
    TEST_RUN(test_bearer);
    TEST_RUN(test_concurrent);
    TEST_RUN(test_refusals);
    TEST_RUN(test_shutdown_drains);
    TEST_RUN(test_caps);
    TEST_RUN(test_unix_socket);
    shoal_rpc_server_free(srv);
    return TEST_EXIT();
}
