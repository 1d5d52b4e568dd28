/* test_rpc_decode.c: the parts of proto/rpc.h that need no server: status-code mapping both
 * ways, the decode + generic check + validate path on good, oversized, malformed, truncated
 * and unknown-enum input (top level, nested, repeated), loopback detection and token
 * comparison. */
#include <string.h>

#include "echo_service.h"
#include "test.h"

static void test_code_mapping(void) {
    CHECK_EQ_INT(shoal_rpc_code_from_status(SHOAL_OK), SHOAL_RPC_OK);
    CHECK_EQ_INT(shoal_rpc_code_from_status(SHOAL_ERR_INVALID_ARG), SHOAL_RPC_INVALID_ARGUMENT);
    CHECK_EQ_INT(shoal_rpc_code_from_status(SHOAL_ERR_AUTH), SHOAL_RPC_UNAUTHENTICATED);
    CHECK_EQ_INT(shoal_rpc_code_from_status(SHOAL_ERR_NOT_FOUND), SHOAL_RPC_NOT_FOUND);
    CHECK_EQ_INT(shoal_rpc_code_from_status(SHOAL_ERR_LIMIT), SHOAL_RPC_RESOURCE_EXHAUSTED);
    CHECK_EQ_INT(shoal_rpc_code_from_status(SHOAL_ERR_TIMEOUT), SHOAL_RPC_DEADLINE_EXCEEDED);
    CHECK_EQ_INT(shoal_rpc_code_from_status(SHOAL_ERR_UNSUPPORTED), SHOAL_RPC_UNIMPLEMENTED);
    CHECK_EQ_INT(shoal_rpc_code_from_status(SHOAL_ERR_COMM), SHOAL_RPC_UNAVAILABLE);
    CHECK_EQ_INT(shoal_rpc_code_from_status(SHOAL_ERR_IO), SHOAL_RPC_INTERNAL);
    CHECK_EQ_INT(shoal_rpc_code_from_status((shoal_status)999), SHOAL_RPC_INTERNAL);
    /* every status survives the round trip or lands on a documented neighbour */
    for (int s = 0; s < SHOAL_STATUS_COUNT; s++) {
        shoal_status back = shoal_rpc_status_from_code(shoal_rpc_code_from_status((shoal_status)s));
        switch (s) {
        case SHOAL_ERR_FORMAT:
        case SHOAL_ERR_PROTOCOL: CHECK_EQ_INT(back, SHOAL_ERR_INVALID_ARG); break;
        case SHOAL_ERR_NOMEM: CHECK_EQ_INT(back, SHOAL_ERR_LIMIT); break;
        case SHOAL_ERR_IO:
        case SHOAL_ERR_CUDA: CHECK_EQ_INT(back, SHOAL_ERR_INTERNAL); break;
        default: CHECK_EQ_INT(back, s);
        }
    }
    CHECK_EQ_INT(shoal_rpc_status_from_code(SHOAL_RPC_PERMISSION_DENIED), SHOAL_ERR_AUTH);
    CHECK_EQ_INT(shoal_rpc_status_from_code(SHOAL_RPC_CANCELLED), SHOAL_ERR_COMM);
    CHECK_EQ_INT(shoal_rpc_status_from_code(SHOAL_RPC_DATA_LOSS), SHOAL_ERR_REMOTE);
    CHECK_EQ_INT(shoal_rpc_status_from_code(77), SHOAL_ERR_REMOTE);
    CHECK_STR(shoal_rpc_code_str(SHOAL_RPC_UNAUTHENTICATED), "UNAUTHENTICATED");
    CHECK_STR(shoal_rpc_code_str(-3), "UNKNOWN_CODE");
}

static size_t pack(const Shoal__Test__EchoRequest *r, uint8_t *buf) {
    return protobuf_c_message_pack(&r->base, buf);
}

static shoal_status dec(const uint8_t *b, size_t n, size_t max, char *why) {
    ProtobufCMessage *m = NULL;
    shoal_status st = shoal_rpc_decode(&shoal__test__echo_request__descriptor, echo_validate, max,
                                       b, n, &m, why, 256);
    if (st == SHOAL_OK) {
        if (!m) return SHOAL_ERR_INTERNAL;
        shoal_rpc_msg_free(m);
    } else if (m) {
        return SHOAL_ERR_INTERNAL; /* error with a message: leak and contract bug */
    }
    return st;
}

static void test_decode(void) {
    uint8_t buf[4096];
    char why[256];
    Shoal__Test__EchoRequest r = SHOAL__TEST__ECHO_REQUEST__INIT;
    Shoal__Test__Inner in = SHOAL__TEST__INNER__INIT;
    Shoal__Test__Mode modes[2] = {SHOAL__TEST__MODE__MODE_FAIL, SHOAL__TEST__MODE__MODE_SLOW};
    in.modes = modes;
    in.n_modes = 2;
    in.mode = SHOAL__TEST__MODE__MODE_SLOW;
    r.text = "hello";
    r.count = 3;
    r.inner = &in;
    size_t n = pack(&r, buf);

    ProtobufCMessage *m = NULL;
    CHECK_EQ_INT(shoal_rpc_decode(&shoal__test__echo_request__descriptor, echo_validate, 0, buf, n,
                                  &m, why, sizeof why),
                 SHOAL_OK);
    CHECK(m != NULL);
    if (m) {
        Shoal__Test__EchoRequest *d = (Shoal__Test__EchoRequest *)m;
        CHECK_STR(d->text, "hello");
        CHECK_EQ_INT(d->count, 3);
        CHECK(d->inner && d->inner->n_modes == 2 && d->inner->modes[1] == modes[1]);
        shoal_rpc_msg_free(m);
    }
    /* empty message decodes to the defaults */
    CHECK_EQ_INT(dec(buf, 0, 0, why), SHOAL_OK);

    /* oversize: refused before unpacking */
    CHECK_EQ_INT(dec(buf, n, n - 1, why), SHOAL_ERR_LIMIT);
    CHECK(strstr(why, "exceeds") != NULL);
    /* every strict prefix that cuts a field is malformed; none may crash */
    int bad = 0;
    for (size_t k = 1; k < n; k++) {
        shoal_status st = dec(buf, k, 0, why);
        CHECK(st == SHOAL_OK || st == SHOAL_ERR_INVALID_ARG);
        bad += st != SHOAL_OK;
    }
    CHECK(bad > 0);
    CHECK_EQ_INT(dec(buf, n - 1, 0, why), SHOAL_ERR_INVALID_ARG);
    CHECK(strstr(why, "malformed") != NULL);
    /* garbage */
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00, 0x13, 0x37};
    CHECK_EQ_INT(dec(junk, sizeof junk, 0, why), SHOAL_ERR_INVALID_ARG);
    /* wrong wire type for a known field (text as a varint) */
    const uint8_t wiretype[] = {0x08 | 0x00, 0x05, 0x0a ^ 0x02, 0x01};
    CHECK_EQ_INT(dec(wiretype, sizeof wiretype, 0, why), SHOAL_ERR_INVALID_ARG);

    /* unknown enum values: top level, -1, nested, repeated (packed) */
    const uint8_t e_top[] = {0x20, 0x63};
    CHECK_EQ_INT(dec(e_top, sizeof e_top, 0, why), SHOAL_ERR_INVALID_ARG);
    CHECK(strstr(why, "mode") != NULL && strstr(why, "99") != NULL);
    const uint8_t e_neg[] = {0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    CHECK_EQ_INT(dec(e_neg, sizeof e_neg, 0, why), SHOAL_ERR_INVALID_ARG);
    const uint8_t e_nested[] = {0x3a, 0x02, 0x08, 0x05};
    CHECK_EQ_INT(dec(e_nested, sizeof e_nested, 0, why), SHOAL_ERR_INVALID_ARG);
    CHECK(strstr(why, "Inner.mode") != NULL);
    const uint8_t e_rep[] = {0x3a, 0x04, 0x12, 0x02, 0x01, 0x07};
    CHECK_EQ_INT(dec(e_rep, sizeof e_rep, 0, why), SHOAL_ERR_INVALID_ARG);
    CHECK(strstr(why, "modes") != NULL);
    const uint8_t e_rep_ok[] = {0x3a, 0x04, 0x12, 0x02, 0x01, 0x02};
    CHECK_EQ_INT(dec(e_rep_ok, sizeof e_rep_ok, 0, why), SHOAL_OK);
    /* unknown fields are kept for forward compatibility, not refused */
    const uint8_t unknown_field[] = {0xf8, 0x01, 0x05};
    CHECK_EQ_INT(dec(unknown_field, sizeof unknown_field, 0, why), SHOAL_OK);

    /* field number 0 hidden in an over-long key: protobuf-c parses it, we refuse it */
    const uint8_t field_zero[] = {0x85, 0x00, 0x00, 0x00, 0x05, 0x28};
    CHECK_EQ_INT(dec(field_zero, sizeof field_zero, 0, why), SHOAL_ERR_INVALID_ARG);
    CHECK(strstr(why, "field number 0") != NULL);

    /* validator: reasons come through */
    r.inner = NULL;
    r.text = "this text is far longer than the sixty-four bytes that the validator allows....";
    n = pack(&r, buf);
    CHECK_EQ_INT(dec(buf, n, 0, why), SHOAL_ERR_INVALID_ARG);
    CHECK(strstr(why, "text") != NULL);
    r.text = "ok";
    r.count = -5;
    n = pack(&r, buf);
    CHECK_EQ_INT(dec(buf, n, 0, why), SHOAL_ERR_INVALID_ARG);
    CHECK(strstr(why, "count") != NULL);
    r.count = 0;
    r.fail_status = 4242;
    n = pack(&r, buf);
    CHECK_EQ_INT(dec(buf, n, 0, why), SHOAL_ERR_INVALID_ARG);

    /* bad arguments */
    CHECK_EQ_INT(shoal_rpc_decode(NULL, NULL, 0, buf, n, &m, why, sizeof why),
                 SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(
        shoal_rpc_decode(&shoal__test__echo_request__descriptor, NULL, 0, NULL, 3, &m, NULL, 0),
        SHOAL_ERR_INVALID_ARG);
    shoal_rpc_msg_free(NULL);
}

static void test_check_message(void) {
    char why[128];
    Shoal__Test__EchoRequest r = SHOAL__TEST__ECHO_REQUEST__INIT;
    CHECK_EQ_INT(shoal_rpc_check_message(&r.base, why, sizeof why), SHOAL_OK);
    r.mode = (Shoal__Test__Mode)7;
    CHECK_EQ_INT(shoal_rpc_check_message(&r.base, why, sizeof why), SHOAL_ERR_INVALID_ARG);
    r.mode = SHOAL__TEST__MODE__MODE_ECHO;
    Shoal__Test__Inner in = SHOAL__TEST__INNER__INIT;
    Shoal__Test__Mode modes[3] = {0, 1, (Shoal__Test__Mode)-4};
    in.modes = modes;
    in.n_modes = 3;
    r.inner = &in;
    CHECK_EQ_INT(shoal_rpc_check_message(&r.base, why, sizeof why), SHOAL_ERR_INVALID_ARG);
    in.n_modes = 2;
    CHECK_EQ_INT(shoal_rpc_check_message(&r.base, why, sizeof why), SHOAL_OK);
    CHECK_EQ_INT(shoal_rpc_check_message(NULL, why, sizeof why), SHOAL_ERR_INVALID_ARG);
}

static void test_loopback(void) {
    const char *yes[] = {"127.0.0.1:0",         "127.1.2.3:7070",   "localhost:80",
                         "LOCALHOST",           "[::1]:50051",      "::1",
                         "unix:/tmp/x.sock",    "ipv4:127.0.0.1:1", "dns:///localhost:9",
                         "[::ffff:127.0.0.1]:5"};
    const char *no[] = {"0.0.0.0:7070", "[::]:1",      ":7070",           "",
                        "10.0.0.1:1",   "128.0.0.1:1", "example.org:443", "localhost.example.org:1",
                        "[::2]:1",      "[::1",        "ipv4:10.1.1.1:3"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        if (!shoal_rpc_addr_is_loopback(yes[i])) fprintf(stderr, "  not loopback: %s\n", yes[i]);
        CHECK(shoal_rpc_addr_is_loopback(yes[i]));
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        if (shoal_rpc_addr_is_loopback(no[i])) fprintf(stderr, "  loopback?: %s\n", no[i]);
        CHECK(!shoal_rpc_addr_is_loopback(no[i]));
    }
    CHECK(!shoal_rpc_addr_is_loopback(NULL));
}

static void test_token_equal(void) {
    CHECK(shoal_rpc_token_equal("abc", "abc"));
    CHECK(!shoal_rpc_token_equal("abc", "abd"));
    CHECK(!shoal_rpc_token_equal("abc", "abcd"));
    CHECK(!shoal_rpc_token_equal(NULL, "abc"));
    CHECK(!shoal_rpc_token_equal("", "x"));
}

int main(void) {
    TEST_RUN(test_code_mapping);
    TEST_RUN(test_decode);
    TEST_RUN(test_check_message);
    TEST_RUN(test_loopback);
    TEST_RUN(test_token_equal);
    return TEST_EXIT();
}
