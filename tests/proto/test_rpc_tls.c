/* test_rpc_tls.c: TLS and mTLS through proto/rpc.h with certificates made by deploy/certs.sh:
 * TLS with server verification (right CA, wrong CA, wrong server name, plaintext client);
 * mTLS where the CN reaches the handler and the auth callback, and where the server refuses a
 * client with no certificate, one from another CA (even with the same CN) and an expired one;
 * TLS lets a server bind a non-loopback address; bad PEM files are refused at start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "echo_service.h"
#include "test.h"

static char dir1[512], dir2[512];

/* dir/name in a ring of 8 static buffers: copy a result that must outlive 8 more calls. */
static const char *path(const char *dir, const char *name) {
    static char buf[8][600];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

static int make_certs(void) {
    const char *src = getenv("SHOAL_SOURCE_DIR");
    if (!src) src = ".";
    snprintf(dir1, sizeof dir1, "%s/ca1", test_tmpdir());
    snprintf(dir2, sizeof dir2, "%s/ca2", test_tmpdir());
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "set -e; s='%s/deploy/certs.sh'; d1='%s'; d2='%s';"
             "bash \"$s\" --dir \"$d1\" all >/dev/null;"
             "bash \"$s\" --dir \"$d1\" client site-a >/dev/null;"
             "bash \"$s\" --dir \"$d1\" --not-before 20200101000000Z --not-after 20200201000000Z"
             " --out expired client site-b >/dev/null;"
             "bash \"$s\" --dir \"$d2\" --cn other-ca ca >/dev/null;"
             "bash \"$s\" --dir \"$d2\" --out mallory client site-a >/dev/null",
             src, dir1, dir2);
    return system(cmd);
}

static shoal_status start(const char *listen, int mtls, shoal_rpc_server **out) {
    shoal_rpc_server_config cfg = {0};
    cfg.listen = listen;
    cfg.tls_cert = path(dir1, "coordinator.pem");
    cfg.tls_key = path(dir1, "coordinator.key");
    cfg.tls_client_ca = mtls ? path(dir1, "ca.pem") : NULL;
    cfg.routes = echo_routes;
    cfg.n_routes = ECHO_N_METHODS;
    cfg.auth = echo_auth;
    cfg.drain_ms = 2000;
    return shoal_rpc_server_start(&cfg, out);
}

/* One Say call; returns the status; copies peer_cn/principal of the reply when given. */
static shoal_status call(const char *target, const char *ca, const char *cert, const char *key,
                         const char *token, const char *server_name, char *peer_cn,
                         char *principal) {
    shoal_rpc_client_config cc = {0};
    cc.target = target;
    cc.tls_ca = ca;
    cc.tls_cert = cert;
    cc.tls_key = key;
    cc.bearer_token = token;
    cc.tls_server_name = server_name;
    cc.timeout_ms = 5000;
    shoal_rpc_client *c = NULL;
    shoal_status st = shoal_rpc_client_new(&cc, &c);
    if (st != SHOAL_OK) return st;
    Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
    req.text = "tls";
    ProtobufCMessage *m = NULL;
    shoal_rpc_result res;
    st = shoal_rpc_client_unary(c, &echo_methods[ECHO_SAY], &req.base, 0, &m, &res);
    if (st == SHOAL_OK) {
        Shoal__Test__EchoReply *r = (Shoal__Test__EchoReply *)m;
        if (strcmp(r->text, "tls") != 0) st = SHOAL_ERR_INTERNAL;
        if (peer_cn) snprintf(peer_cn, 128, "%s", r->peer_cn);
        if (principal) snprintf(principal, 128, "%s", r->principal);
    } else if (getenv("SHOW") || (st != SHOAL_ERR_COMM && st != SHOAL_ERR_AUTH)) {
        fprintf(stderr, "  %s: %s\n", shoal_rpc_code_str(res.code), res.details);
    }
    shoal_rpc_msg_free(m);
    shoal_rpc_client_free(c);
    return st;
}

static void test_tls(void) {
    shoal_rpc_server *s = NULL;
    CHECK_EQ_INT(start("127.0.0.1:0", 0, &s), SHOAL_OK);
    if (!s) return;
    char target[64], byname[64], cn[128] = "x", pr[128] = "";
    snprintf(target, sizeof target, "127.0.0.1:%d", shoal_rpc_server_port(s));
    snprintf(byname, sizeof byname, "localhost:%d", shoal_rpc_server_port(s));
    char ca1[600], ca2[600];
    snprintf(ca1, sizeof ca1, "%s", path(dir1, "ca.pem"));
    snprintf(ca2, sizeof ca2, "%s", path(dir2, "ca.pem"));
    CHECK_EQ_INT(call(target, ca1, NULL, NULL, ECHO_TOKEN, NULL, cn, pr), SHOAL_OK);
    CHECK_STR(cn, ""); /* TLS only: no client identity */
    CHECK_STR(pr, "token:tester");
    CHECK_EQ_INT(call(byname, ca1, NULL, NULL, ECHO_TOKEN, NULL, NULL, NULL), SHOAL_OK);
    /* without a token and without a client certificate the auth callback refuses */
    CHECK_EQ_INT(call(target, ca1, NULL, NULL, NULL, NULL, NULL, NULL), SHOAL_ERR_AUTH);
    /* the client does not trust another CA's server, nor a name the certificate lacks */
    CHECK_EQ_INT(call(target, ca2, NULL, NULL, ECHO_TOKEN, NULL, NULL, NULL), SHOAL_ERR_COMM);
    CHECK_EQ_INT(call(target, ca1, NULL, NULL, ECHO_TOKEN, "evil.example.org", NULL, NULL),
                 SHOAL_ERR_COMM);
    /* plaintext to a TLS port fails */
    CHECK_EQ_INT(call(target, NULL, NULL, NULL, ECHO_TOKEN, NULL, NULL, NULL), SHOAL_ERR_COMM);
    CHECK_EQ_INT(call(target, ca1, NULL, NULL, ECHO_TOKEN, NULL, NULL, NULL), SHOAL_OK);
    shoal_rpc_server_free(s);
}

static void test_mtls(void) {
    shoal_rpc_server *s = NULL;
    /* with TLS a server may listen beyond loopback */
    CHECK_EQ_INT(start("0.0.0.0:0", 1, &s), SHOAL_OK);
    if (!s) return;
    char target[64], cn[128] = "", pr[128] = "", ca1[600];
    snprintf(target, sizeof target, "127.0.0.1:%d", shoal_rpc_server_port(s));
    snprintf(ca1, sizeof ca1, "%s", path(dir1, "ca.pem"));
    /* a good certificate: its CN reaches the auth callback and the handler */
    CHECK_EQ_INT(
        call(target, ca1, path(dir1, "site-a.pem"), path(dir1, "site-a.key"), NULL, NULL, cn, pr),
        SHOAL_OK);
    CHECK_STR(cn, "site-a");
    CHECK_STR(pr, "cn:site-a");
    CHECK_EQ_INT(call(target, ca1, path(dir1, "admin.pem"), path(dir1, "admin.key"), ECHO_TOKEN,
                      NULL, cn, pr),
                 SHOAL_OK);
    CHECK_STR(cn, "admin");
    CHECK_STR(pr, "token:tester");
    /* a certificate plus a wrong token is still refused by the auth callback */
    CHECK_EQ_INT(call(target, ca1, path(dir1, "admin.pem"), path(dir1, "admin.key"), "nope", NULL,
                      NULL, NULL),
                 SHOAL_ERR_AUTH);
    /* refused at the handshake: no certificate (even with a good token), another CA's
     * certificate with the same CN, an expired certificate from the right CA */
    CHECK_EQ_INT(call(target, ca1, NULL, NULL, ECHO_TOKEN, NULL, NULL, NULL), SHOAL_ERR_COMM);
    CHECK_EQ_INT(call(target, ca1, path(dir2, "mallory.pem"), path(dir2, "mallory.key"), NULL, NULL,
                      NULL, NULL),
                 SHOAL_ERR_COMM);
    CHECK_EQ_INT(call(target, ca1, path(dir1, "expired.pem"), path(dir1, "expired.key"), NULL, NULL,
                      NULL, NULL),
                 SHOAL_ERR_COMM);
    /* a key that does not match its certificate never gets through either */
    CHECK_EQ_INT(call(target, ca1, path(dir1, "site-a.pem"), path(dir1, "admin.key"), NULL, NULL,
                      NULL, NULL) == SHOAL_OK,
                 0);
    /* streams over mTLS */
    shoal_rpc_client_config cc = {.target = target,
                                  .tls_ca = ca1,
                                  .tls_cert = path(dir1, "site-a.pem"),
                                  .tls_key = path(dir1, "site-a.key")};
    shoal_rpc_client *c = NULL;
    CHECK_EQ_INT(shoal_rpc_client_new(&cc, &c), SHOAL_OK);
    if (c) {
        Shoal__Test__EchoRequest req = SHOAL__TEST__ECHO_REQUEST__INIT;
        req.count = 10;
        shoal_rpc_stream *st = NULL;
        CHECK_EQ_INT(shoal_rpc_client_stream_open(c, &echo_methods[ECHO_COUNT], &req.base, 0, &st),
                     SHOAL_OK);
        int got = 0;
        ProtobufCMessage *m = NULL;
        while (shoal_rpc_stream_read(st, &m) == SHOAL_OK && m) {
            got++;
            shoal_rpc_msg_free(m);
        }
        CHECK_EQ_INT(got, 10);
        CHECK_EQ_INT(shoal_rpc_stream_result(st)->code, SHOAL_RPC_OK);
        shoal_rpc_stream_free(st);
        CHECK_EQ_INT(shoal_rpc_client_writer_open(c, &echo_methods[ECHO_SUM], 0, &st), SHOAL_OK);
        for (int i = 1; i <= 3; i++) {
            req.count = i;
            CHECK_EQ_INT(shoal_rpc_stream_write(st, &req.base), SHOAL_OK);
        }
        CHECK_EQ_INT(shoal_rpc_stream_finish(st, &m), SHOAL_OK);
        if (m) {
            CHECK_EQ_INT(((Shoal__Test__EchoReply *)m)->total, 6);
            CHECK_STR(((Shoal__Test__EchoReply *)m)->principal, "cn:site-a");
            shoal_rpc_msg_free(m);
        }
        shoal_rpc_stream_free(st);
        shoal_rpc_client_free(c);
    }
    shoal_rpc_server_free(s);
}

static void test_bad_pem(void) {
    char junk[600];
    snprintf(junk, sizeof junk, "%s/junk.pem", test_tmpdir());
    FILE *f = fopen(junk, "w");
    if (f) {
        fputs("this is not a certificate\n", f);
        fclose(f);
    }
    shoal_rpc_server_config cfg = {0};
    cfg.listen = "127.0.0.1:0";
    cfg.tls_cert = junk;
    cfg.tls_key = path(dir1, "coordinator.key");
    cfg.routes = echo_routes;
    cfg.n_routes = ECHO_N_METHODS;
    shoal_rpc_server *s = NULL;
    CHECK_EQ_INT(shoal_rpc_server_start(&cfg, &s), SHOAL_ERR_FORMAT);
    CHECK(s == NULL);
    shoal_rpc_client_config cc = {.target = "127.0.0.1:1", .tls_ca = junk};
    shoal_rpc_client *c = NULL;
    CHECK_EQ_INT(shoal_rpc_client_new(&cc, &c), SHOAL_ERR_FORMAT);
    CHECK(c == NULL);
}

int main(void) {
    /* SHOW=1 prints the refusals' details and gRPC's handshake logs */
    shoal_log_set_level(getenv("SHOW") ? SHOAL_LOG_WARN : SHOAL_LOG_ERROR);
    if (make_certs() != 0) {
        fprintf(stderr, "deploy/certs.sh failed\n");
        return 1;
    }
    TEST_RUN(test_tls);
    TEST_RUN(test_mtls);
    TEST_RUN(test_bad_pem);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_tmpdir());
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", test_tmpdir());
    return TEST_EXIT();
}
