/* echo_service.c: the test Echo service behind echo_service.h. Handlers do what the request
 * asks (echo, fail with a given status, sleep watching for cancellation, stream N replies, sum
 * a client stream) so that tests can drive every path of proto/rpc.h from the client side. */
#include "echo_service.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

shoal_status echo_validate(const ProtobufCMessage *msg, char *why, size_t cap) {
    const Shoal__Test__EchoRequest *r = (const Shoal__Test__EchoRequest *)msg;
    if (strlen(r->text) > 64) {
        snprintf(why, cap, "text: %zu bytes, at most 64", strlen(r->text));
        return SHOAL_ERR_INVALID_ARG;
    }
    if (r->count < 0 || r->count > 100000) {
        snprintf(why, cap, "count: %d, want 0..100000", r->count);
        return SHOAL_ERR_INVALID_ARG;
    }
    if (r->delay_ms < 0 || r->delay_ms > 60000) {
        snprintf(why, cap, "delay_ms: %d, want 0..60000", r->delay_ms);
        return SHOAL_ERR_INVALID_ARG;
    }
    if (r->fail_status < 0 || r->fail_status >= SHOAL_STATUS_COUNT) {
        snprintf(why, cap, "fail_status: %d is not a shoal_status", r->fail_status);
        return SHOAL_ERR_INVALID_ARG;
    }
    return SHOAL_OK;
}

shoal_status echo_auth(const char *bearer, const char *peer_cn, const char *method, char *principal,
                       size_t cap, void *user) {
    (void)method;
    (void)user;
    if (bearer && shoal_rpc_token_equal(bearer, ECHO_TOKEN)) {
        snprintf(principal, cap, "token:tester");
        return SHOAL_OK;
    }
    if (!bearer && peer_cn) {
        snprintf(principal, cap, "cn:%s", peer_cn);
        return SHOAL_OK;
    }
    return SHOAL_ERR_AUTH;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Sleep ms in small steps; SHOAL_ERR_TIMEOUT as soon as the call is cancelled. */
static shoal_status nap(shoal_rpc_call *call, int ms) {
    for (int t = 0; t < ms; t += 5) {
        if (shoal_rpc_call_cancelled(call)) {
            shoal_rpc_call_set_error(call, "cancelled while sleeping");
            return SHOAL_ERR_TIMEOUT;
        }
        sleep_ms(5);
    }
    return SHOAL_OK;
}

static shoal_status say(shoal_rpc_call *call, const ProtobufCMessage *reqm, void *user) {
    (void)user;
    const Shoal__Test__EchoRequest *req = (const Shoal__Test__EchoRequest *)reqm;
    if (req->mode == SHOAL__TEST__MODE__MODE_FAIL) {
        shoal_rpc_call_set_error(call, "asked to fail with %d", req->fail_status);
        return (shoal_status)req->fail_status;
    }
    if (req->mode == SHOAL__TEST__MODE__MODE_SLOW) SHOAL_CHECK(nap(call, req->delay_ms));
    Shoal__Test__EchoReply r = SHOAL__TEST__ECHO_REPLY__INIT;
    r.text = req->text;
    r.peer_cn = (char *)shoal_rpc_call_peer_cn(call);
    r.principal = (char *)shoal_rpc_call_principal(call);
    r.total = (int64_t)req->payload.len;
    return shoal_rpc_call_send(call, &r.base);
}

static shoal_status count(shoal_rpc_call *call, const ProtobufCMessage *reqm, void *user) {
    (void)user;
    const Shoal__Test__EchoRequest *req = (const Shoal__Test__EchoRequest *)reqm;
    for (int i = 0; i < req->count; i++) {
        char text[32];
        snprintf(text, sizeof text, "item %d", i);
        Shoal__Test__EchoReply r = SHOAL__TEST__ECHO_REPLY__INIT;
        r.text = text;
        r.seq = i;
        SHOAL_CHECK(shoal_rpc_call_send(call, &r.base));
        if (req->delay_ms) SHOAL_CHECK(nap(call, req->delay_ms));
    }
    if (req->mode == SHOAL__TEST__MODE__MODE_FAIL) {
        shoal_rpc_call_set_error(call, "stream failed after %d", req->count);
        return (shoal_status)req->fail_status;
    }
    return SHOAL_OK;
}

static shoal_status sum(shoal_rpc_call *call, const ProtobufCMessage *reqm, void *user) {
    (void)user;
    (void)reqm;
    int64_t total = 0;
    int n = 0;
    for (;;) {
        ProtobufCMessage *m = NULL;
        SHOAL_CHECK(shoal_rpc_call_recv(call, &m));
        if (!m) break;
        total += ((Shoal__Test__EchoRequest *)m)->count;
        n++;
        shoal_rpc_msg_free(m);
    }
    Shoal__Test__EchoReply r = SHOAL__TEST__ECHO_REPLY__INIT;
    r.text = "sum";
    r.seq = n;
    r.total = total;
    r.principal = (char *)shoal_rpc_call_principal(call);
    return shoal_rpc_call_send(call, &r.base);
}

#define ECHO_METHOD(name, k, extra_cap, fl)                                                        \
    {                                                                                              \
        "/shoal.test.Echo/" name, k, &shoal__test__echo_request__descriptor,                       \
            &shoal__test__echo_reply__descriptor, echo_validate, NULL, extra_cap, fl               \
    }

const shoal_rpc_method echo_methods[ECHO_N_METHODS] = {
    [ECHO_SAY] = ECHO_METHOD("Say", SHOAL_RPC_UNARY, 0, 0),
    [ECHO_COUNT] = ECHO_METHOD("Count", SHOAL_RPC_SERVER_STREAM, 0, 0),
    [ECHO_SUM] = ECHO_METHOD("Sum", SHOAL_RPC_CLIENT_STREAM, 0, 0),
    [ECHO_SMALL] = ECHO_METHOD("Small", SHOAL_RPC_UNARY, 1024, SHOAL_RPC_NO_AUTH),
};

const shoal_rpc_route echo_routes[ECHO_N_METHODS] = {
    {&echo_methods[ECHO_SAY], say, NULL},
    {&echo_methods[ECHO_COUNT], count, NULL},
    {&echo_methods[ECHO_SUM], sum, NULL},
    {&echo_methods[ECHO_SMALL], say, NULL},
};
