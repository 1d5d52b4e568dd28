/* rpc_client.c: the gRPC-core client behind shoal_rpc_client_* and shoal_rpc_stream_*.
 *
 * Why this shape (research/infra.md §2.4, §2.5): every call gets its own completion queue, so
 * any number of threads can call through one channel at once and every operation is a
 * blocking batch whose deadline is the call's. Streams are the same grpc_call driven batch by
 * batch: one RECV_MESSAGE per read, one SEND_MESSAGE per write, RECV_STATUS_ON_CLIENT at the
 * end. A client stream starts its receive-status batch at open: when the server ends the call
 * early (a refused message, auth), a pending SEND_MESSAGE would otherwise never complete, so
 * waiting for any op also watches for the status and cancels the call once it is in. Responses
 * go through the same decode + check + validate path as requests do on the server.
 * shoal_rpc_async_* keeps many unary calls in flight on one completion queue that one thread
 * drives (each call one six-op batch, its slot the tag): load generators and fan-out without a
 * thread per call.
 * Tested by tests/proto/test_rpc.c, tests/proto/test_rpc_async.c and tests/proto/test_rpc_tls.c.
 */
#define SHOAL_LOG_SUBSYS "rpc"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto/rpc_internal.h"

struct shoal_rpc_client {
    grpc_channel *ch;
    char *auth_value; /* "Bearer <token>" or NULL */
    size_t max_msg;
    int timeout_ms;
    char target[256];
};

struct shoal_rpc_stream {
    shoal_rpc_client *cli;
    const shoal_rpc_method *m;
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_metadata_array init_md, trail_md;
    int got_init_md, finished;
    int op_tag, status_tag;          /* addresses are the batch tags */
    int status_started, status_done; /* the receive-status batch */
    grpc_status_code code;
    grpc_slice det;
    grpc_byte_buffer *reply_bb; /* client stream: the reply, received with the status */
    shoal_status final_st;
    shoal_rpc_result res;
};

/* ---- batches ---- */

/* Wait for tag's batch. If the status batch completes first, the server has ended the call:
 * cancel it so that the op we wait for (a send the server will never read) completes too. */
static int wait_tag(shoal_rpc_stream *s, void *tag) {
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type != GRPC_OP_COMPLETE) return 0;
        if (ev.tag == &s->status_tag) {
            s->status_done = 1;
            if (tag == &s->status_tag) return 1;
            grpc_call_cancel(s->call, NULL);
            continue;
        }
        if (ev.tag == tag) return ev.success ? 1 : 0;
    }
}

static int start_batch(shoal_rpc_stream *s, const grpc_op *ops, size_t n, void *tag) {
    grpc_call_error e = grpc_call_start_batch(s->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK) {
        SHOAL_LOG_ERROR("%s: grpc_call_start_batch failed: %s", s->m ? s->m->path : "call",
                        grpc_call_error_to_string(e));
        return 0;
    }
    return 1;
}

/* Run one batch to completion: 1 ok, 0 failed (the call is over), -1 could not start. */
static int run_batch(shoal_rpc_stream *s, const grpc_op *ops, size_t n) {
    if (!start_batch(s, ops, n, &s->op_tag)) return -1;
    return wait_tag(s, &s->op_tag);
}

/* Start the receive-status batch (with the reply for client streams); does not wait. */
static int start_status(shoal_rpc_stream *s, int with_reply) {
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    if (with_reply) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
        ops[n].op = GRPC_OP_RECV_MESSAGE;
        ops[n++].data.recv_message.recv_message = &s->reply_bb;
    }
    ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[n].data.recv_status_on_client.trailing_metadata = &s->trail_md;
    ops[n].data.recv_status_on_client.status = &s->code;
    ops[n++].data.recv_status_on_client.status_details = &s->det;
    if (!start_batch(s, ops, n, &s->status_tag)) return 0;
    s->status_started = 1;
    if (with_reply) s->got_init_md = 1;
    return 1;
}

static shoal_status stream_open(shoal_rpc_client *cli, const shoal_rpc_method *m, const char *path,
                                int timeout_ms, shoal_rpc_stream **out) {
    *out = NULL;
    shoal_rpc_stream *s = calloc(1, sizeof *s);
    SHOAL_REQUIRE(s, SHOAL_ERR_NOMEM, "rpc client: out of memory");
    s->cli = cli;
    s->m = m;
    s->res.code = -1;
    s->code = GRPC_STATUS_UNKNOWN;
    s->det = grpc_empty_slice();
    grpc_metadata_array_init(&s->init_md);
    grpc_metadata_array_init(&s->trail_md);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_slice method = grpc_slice_from_copied_string(path);
    s->call = grpc_channel_create_call(
        cli->ch, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq, method, NULL,
        shoal_rpc_deadline(timeout_ms > 0 ? timeout_ms : cli->timeout_ms), NULL);
    grpc_slice_unref(method);
    if (!s->call) {
        shoal_rpc_stream_free(s);
        SHOAL_LOG_ERROR("%s: cannot create a call", path);
        return SHOAL_ERR_INTERNAL;
    }
    *out = s;
    return SHOAL_OK;
}

/* Fill the SEND_INITIAL_METADATA op (with the bearer token, if any). md must outlive the batch. */
static void initial_md_op(const shoal_rpc_client *cli, grpc_op *op, grpc_metadata *md) {
    memset(md, 0, sizeof *md);
    op->op = GRPC_OP_SEND_INITIAL_METADATA;
    if (cli->auth_value) {
        md->key = grpc_slice_from_static_string("authorization");
        md->value = grpc_slice_from_static_string(cli->auth_value);
        op->data.send_initial_metadata.count = 1;
        op->data.send_initial_metadata.metadata = md;
    }
}

static shoal_status map_result(shoal_rpc_stream *s, grpc_status_code code, grpc_slice det,
                               int quiet) {
    s->finished = 1;
    s->res.code = (int)code;
    shoal_rpc_slice_to_str(det, s->res.details, sizeof s->res.details);
    grpc_slice_unref(det);
    s->final_st = shoal_rpc_status_from_code((int)code);
    if (code != GRPC_STATUS_OK) {
        const char *path = s->m ? s->m->path : "call";
        if (quiet)
            SHOAL_LOG_DEBUG("%s on %s: %s: %s", path, s->cli->target, shoal_rpc_code_str(code),
                            s->res.details);
        else
            SHOAL_LOG_WARN("%s on %s: %s: %s", path, s->cli->target, shoal_rpc_code_str(code),
                           s->res.details);
    }
    return s->final_st;
}

/* Receive the final status (once), starting the status batch if it is not running yet. */
static shoal_status recv_status(shoal_rpc_stream *s, int quiet) {
    if (s->finished) return s->final_st;
    if (!s->status_started && !start_status(s, 0)) {
        s->finished = 1;
        s->final_st = SHOAL_ERR_INTERNAL;
        return s->final_st;
    }
    if (!s->status_done) wait_tag(s, &s->status_tag);
    grpc_slice det = s->det;
    s->det = grpc_empty_slice();
    return map_result(s, s->code, det, quiet);
}

static void copy_result(const shoal_rpc_stream *s, shoal_rpc_result *res) {
    if (res) *res = s->res;
}

static shoal_status local_error(shoal_rpc_stream *s, shoal_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static shoal_status local_error(shoal_rpc_stream *s, shoal_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->res.details, sizeof s->res.details, fmt, ap);
    va_end(ap);
    s->res.code = shoal_rpc_code_from_status(st);
    s->finished = 1;
    s->final_st = st;
    grpc_call_cancel_with_status(s->call, (grpc_status_code)s->res.code, s->res.details, NULL);
    SHOAL_LOG_ERROR("%s on %s: %s", s->m ? s->m->path : "call", s->cli->target, s->res.details);
    return st;
}

/* Unary call on raw byte buffers: the whole exchange is one batch. */
static shoal_status unary_bb(shoal_rpc_client *cli, const shoal_rpc_method *m, const char *path,
                             grpc_byte_buffer *send, int timeout_ms, grpc_byte_buffer **recv,
                             shoal_rpc_result *res) {
    *recv = NULL;
    shoal_rpc_stream *s = NULL;
    SHOAL_CHECK(stream_open(cli, m, path, timeout_ms, &s));
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_slice det = grpc_empty_slice();
    grpc_metadata md;
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    initial_md_op(cli, &ops[0], &md);
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &s->trail_md;
    ops[5].data.recv_status_on_client.status = &code;
    ops[5].data.recv_status_on_client.status_details = &det;
    shoal_status st;
    if (run_batch(s, ops, 6) < 0) {
        st = SHOAL_ERR_INTERNAL;
    } else {
        st = map_result(s, code, det, res != NULL);
        if (st == SHOAL_OK && !*recv) {
            snprintf(s->res.details, sizeof s->res.details, "server sent OK without a reply");
            s->res.code = SHOAL_RPC_INTERNAL;
            st = SHOAL_ERR_PROTOCOL;
        }
    }
    copy_result(s, res);
    shoal_rpc_stream_free(s);
    if (st != SHOAL_OK && *recv) {
        grpc_byte_buffer_destroy(*recv);
        *recv = NULL;
    }
    return st;
}

/* ---- public: client ---- */

static shoal_status check_token(const char *t) {
    size_t n = strlen(t);
    SHOAL_REQUIRE(n > 0 && n <= SHOAL_MAX_RPC_TOKEN, SHOAL_ERR_INVALID_ARG,
                  "rpc client: bearer token must be 1..%d bytes (got %zu)", SHOAL_MAX_RPC_TOKEN, n);
    for (size_t i = 0; i < n; i++) {
        SHOAL_REQUIRE(t[i] > 0x20 && t[i] < 0x7f, SHOAL_ERR_INVALID_ARG,
                      "rpc client: bearer token has a non-printable or space byte at %zu "
                      "(token files must hold the token alone)",
                      i);
    }
    return SHOAL_OK;
}

shoal_status shoal_rpc_client_new(const shoal_rpc_client_config *cfg, shoal_rpc_client **out) {
    SHOAL_REQUIRE(out, SHOAL_ERR_INVALID_ARG, "rpc client: no output pointer");
    *out = NULL;
    SHOAL_REQUIRE(cfg && cfg->target && cfg->target[0] && strlen(cfg->target) < 256,
                  SHOAL_ERR_INVALID_ARG, "rpc client: no (or an over-long) target address");
    SHOAL_REQUIRE(!cfg->tls_cert == !cfg->tls_key, SHOAL_ERR_INVALID_ARG,
                  "rpc client %s: a client certificate needs its key too", cfg->target);
    SHOAL_REQUIRE(cfg->tls_ca || !cfg->tls_cert, SHOAL_ERR_INVALID_ARG,
                  "rpc client %s: a client certificate needs the server's CA (--tls-ca) too",
                  cfg->target);
    SHOAL_REQUIRE(cfg->tls_ca || shoal_rpc_addr_is_loopback(cfg->target), SHOAL_ERR_INVALID_ARG,
                  "rpc client: refusing plaintext to %s; plaintext is allowed only to loopback. "
                  "Give the CA that signed the server certificate (--tls-ca)",
                  cfg->target);
    uint64_t ceiling = shoal_limit_describe(SHOAL_LIMIT_RPC_MESSAGE_BYTES)->ceiling;
    SHOAL_REQUIRE(cfg->max_message_bytes <= ceiling && cfg->timeout_ms >= 0, SHOAL_ERR_INVALID_ARG,
                  "rpc client %s: bad max_message_bytes or timeout_ms", cfg->target);
    if (cfg->bearer_token) SHOAL_CHECK(check_token(cfg->bearer_token));

    shoal_status st = SHOAL_OK;
    char *ca = NULL, *cert = NULL, *key = NULL;
    grpc_channel_credentials *creds = NULL;
    shoal_rpc_client *cli = calloc(1, sizeof *cli);
    SHOAL_REQUIRE(cli, SHOAL_ERR_NOMEM, "rpc client: out of memory");
    shoal_rpc_lib_acquire();
    snprintf(cli->target, sizeof cli->target, "%s", cfg->target);
    cli->max_msg = cfg->max_message_bytes ? cfg->max_message_bytes
                                          : (size_t)shoal_limit(SHOAL_LIMIT_RPC_MESSAGE_BYTES);
    cli->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000;
    if (cfg->bearer_token) {
        size_t n = strlen(cfg->bearer_token) + 8;
        cli->auth_value = malloc(n);
        SHOAL_REQUIRE_GOTO(cli->auth_value, SHOAL_ERR_NOMEM, "rpc client: out of memory");
        snprintf(cli->auth_value, n, "Bearer %s", cfg->bearer_token);
    }
    if (cfg->tls_ca) {
        SHOAL_CHECK_GOTO(shoal_rpc_read_pem("CA", cfg->tls_ca, &ca));
        grpc_ssl_pem_key_cert_pair kp = {NULL, NULL};
        if (cfg->tls_cert) {
            SHOAL_CHECK_GOTO(shoal_rpc_read_pem("client certificate", cfg->tls_cert, &cert));
            SHOAL_CHECK_GOTO(shoal_rpc_read_pem("client key", cfg->tls_key, &key));
            kp.private_key = key;
            kp.cert_chain = cert;
        }
        creds = grpc_ssl_credentials_create(ca, cert ? &kp : NULL, NULL, NULL);
    } else {
        creds = grpc_insecure_credentials_create();
    }
    SHOAL_REQUIRE_GOTO(creds, SHOAL_ERR_INVALID_ARG, "rpc client %s: gRPC refused the TLS material",
                       cfg->target);
    grpc_arg args[3];
    memset(args, 0, sizeof args);
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)cli->max_msg;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = (int)cli->max_msg;
    grpc_channel_args cargs = {2, args};
    if (cfg->tls_server_name) {
        args[2].type = GRPC_ARG_STRING;
        args[2].key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
        args[2].value.string = (char *)cfg->tls_server_name;
        cargs.num_args = 3;
    }
    cli->ch = grpc_channel_create(cfg->target, creds, &cargs);
    SHOAL_REQUIRE_GOTO(cli->ch, SHOAL_ERR_INVALID_ARG, "rpc client: cannot create a channel to %s",
                       cfg->target);
    *out = cli;
cleanup:
    if (creds) grpc_channel_credentials_release(creds);
    shoal_rpc_free_pem(key);
    shoal_rpc_free_pem(cert);
    shoal_rpc_free_pem(ca);
    if (st != SHOAL_OK) shoal_rpc_client_free(cli);
    return st;
}

void shoal_rpc_client_free(shoal_rpc_client *cli) {
    if (!cli) return;
    if (cli->ch) grpc_channel_destroy(cli->ch);
    if (cli->auth_value) {
        memset(cli->auth_value, 0, strlen(cli->auth_value));
        free(cli->auth_value);
    }
    free(cli);
    shoal_rpc_lib_release();
}

static shoal_status check_call(const shoal_rpc_client *cli, const shoal_rpc_method *m,
                               shoal_rpc_kind kind, const ProtobufCMessage *req) {
    SHOAL_REQUIRE(cli && m && m->path && m->response, SHOAL_ERR_INVALID_ARG,
                  "rpc client: call without a client or a complete method");
    SHOAL_REQUIRE(
        m->kind == kind, SHOAL_ERR_INVALID_ARG, "rpc client: %s is not a %s method", m->path,
        kind == SHOAL_RPC_UNARY
            ? "unary"
            : (kind == SHOAL_RPC_SERVER_STREAM ? "server-streaming" : "client-streaming"));
    if (req)
        SHOAL_REQUIRE(req->descriptor == m->request, SHOAL_ERR_INVALID_ARG,
                      "rpc client: %s takes a %s", m->path, m->request ? m->request->name : "?");
    return SHOAL_OK;
}

static shoal_status decode_reply(shoal_rpc_client *cli, const shoal_rpc_method *m,
                                 grpc_byte_buffer *bb, ProtobufCMessage **resp,
                                 shoal_rpc_result *res) {
    char why[SHOAL_MAX_RPC_DETAILS];
    shoal_status st = shoal_rpc_decode_bb(m->response, m->validate_response, cli->max_msg, bb, resp,
                                          why, sizeof why);
    if (st != SHOAL_OK) {
        SHOAL_LOG_ERROR("%s on %s: bad response: %s", m->path, cli->target, why);
        if (res) {
            res->code = shoal_rpc_code_from_status(st);
            snprintf(res->details, sizeof res->details, "bad response: %.480s", why);
        }
    }
    return st;
}

shoal_status shoal_rpc_client_unary(shoal_rpc_client *cli, const shoal_rpc_method *m,
                                    const ProtobufCMessage *req, int timeout_ms,
                                    ProtobufCMessage **resp, shoal_rpc_result *res) {
    SHOAL_REQUIRE(resp, SHOAL_ERR_INVALID_ARG, "rpc client: no response pointer");
    *resp = NULL;
    SHOAL_CHECK(check_call(cli, m, SHOAL_RPC_UNARY, req));
    SHOAL_REQUIRE(req, SHOAL_ERR_INVALID_ARG, "rpc client: %s without a request", m->path);
    grpc_byte_buffer *send = NULL, *recv = NULL;
    SHOAL_CHECK(shoal_rpc_pack(req, cli->max_msg, &send));
    shoal_status st = unary_bb(cli, m, m->path, send, timeout_ms, &recv, res);
    grpc_byte_buffer_destroy(send);
    if (st == SHOAL_OK) st = decode_reply(cli, m, recv, resp, res);
    if (recv) grpc_byte_buffer_destroy(recv);
    return st;
}

shoal_status shoal_rpc_client_unary_raw(shoal_rpc_client *cli, const char *path, const void *data,
                                        size_t len, int timeout_ms, uint8_t **resp,
                                        size_t *resp_len, shoal_rpc_result *res) {
    if (resp) *resp = NULL;
    if (resp_len) *resp_len = 0;
    SHOAL_REQUIRE(cli && path && path[0] == '/' && (data || !len), SHOAL_ERR_INVALID_ARG,
                  "rpc client: raw call needs a client, a '/pkg.Service/Method' path and data");
    grpc_slice s = grpc_slice_from_copied_buffer(data, len);
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&s, 1), *recv = NULL;
    grpc_slice_unref(s);
    shoal_status st = unary_bb(cli, NULL, path, send, timeout_ms, &recv, res);
    grpc_byte_buffer_destroy(send);
    if (st == SHOAL_OK && resp) {
        grpc_slice all;
        st = shoal_rpc_flatten(recv, &all);
        if (st == SHOAL_OK) {
            size_t n = GRPC_SLICE_LENGTH(all);
            *resp = malloc(n ? n : 1);
            if (*resp) {
                memcpy(*resp, GRPC_SLICE_START_PTR(all), n);
                if (resp_len) *resp_len = n;
            } else {
                st = SHOAL_ERR_NOMEM;
            }
            grpc_slice_unref(all);
        }
    }
    if (recv) grpc_byte_buffer_destroy(recv);
    return st;
}

/* ---- public: streams ---- */

shoal_status shoal_rpc_client_stream_open(shoal_rpc_client *cli, const shoal_rpc_method *m,
                                          const ProtobufCMessage *req, int timeout_ms,
                                          shoal_rpc_stream **out) {
    SHOAL_REQUIRE(out, SHOAL_ERR_INVALID_ARG, "rpc client: no stream pointer");
    *out = NULL;
    SHOAL_CHECK(check_call(cli, m, SHOAL_RPC_SERVER_STREAM, req));
    SHOAL_REQUIRE(req, SHOAL_ERR_INVALID_ARG, "rpc client: %s without a request", m->path);
    grpc_byte_buffer *send = NULL;
    SHOAL_CHECK(shoal_rpc_pack(req, cli->max_msg, &send));
    shoal_rpc_stream *s = NULL;
    shoal_status st = stream_open(cli, m, m->path, timeout_ms, &s);
    if (st == SHOAL_OK) {
        grpc_metadata md;
        grpc_op ops[3];
        memset(ops, 0, sizeof ops);
        initial_md_op(cli, &ops[0], &md);
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = send;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        int ok = run_batch(s, ops, 3);
        if (ok < 0)
            st = SHOAL_ERR_INTERNAL;
        else if (!ok)
            st = recv_status(s, 0); /* e.g. unreachable: the status says why */
    }
    grpc_byte_buffer_destroy(send);
    /* A failed open still hands the stream back when it carries the server's answer. */
    *out = s;
    return st;
}

shoal_status shoal_rpc_stream_read(shoal_rpc_stream *s, ProtobufCMessage **msg) {
    SHOAL_REQUIRE(s && msg, SHOAL_ERR_INVALID_ARG, "rpc stream: read without a stream");
    *msg = NULL;
    if (s->finished) return s->final_st;
    grpc_byte_buffer *bb = NULL;
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    if (!s->got_init_md) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &bb;
    int ok = run_batch(s, ops, n);
    if (ok < 0) return SHOAL_ERR_INTERNAL;
    s->got_init_md = 1;
    if (!bb) return recv_status(s, 1); /* end of stream: OK, or the error that ended it */
    char why[SHOAL_MAX_RPC_DETAILS];
    shoal_status st = shoal_rpc_decode_bb(s->m->response, s->m->validate_response, s->cli->max_msg,
                                          bb, msg, why, sizeof why);
    grpc_byte_buffer_destroy(bb);
    if (st != SHOAL_OK) return local_error(s, st, "bad streamed response: %s", why);
    return SHOAL_OK;
}

shoal_status shoal_rpc_client_writer_open(shoal_rpc_client *cli, const shoal_rpc_method *m,
                                          int timeout_ms, shoal_rpc_stream **out) {
    SHOAL_REQUIRE(out, SHOAL_ERR_INVALID_ARG, "rpc client: no stream pointer");
    *out = NULL;
    SHOAL_CHECK(check_call(cli, m, SHOAL_RPC_CLIENT_STREAM, NULL));
    shoal_rpc_stream *s = NULL;
    SHOAL_CHECK(stream_open(cli, m, m->path, timeout_ms, &s));
    grpc_metadata md;
    grpc_op op;
    memset(&op, 0, sizeof op);
    initial_md_op(cli, &op, &md);
    shoal_status st = SHOAL_OK;
    int ok = start_status(s, 1) ? run_batch(s, &op, 1) : -1;
    if (ok < 0)
        st = SHOAL_ERR_INTERNAL;
    else if (!ok)
        st = recv_status(s, 0);
    *out = s;
    return st;
}

shoal_status shoal_rpc_stream_write(shoal_rpc_stream *s, const ProtobufCMessage *msg) {
    SHOAL_REQUIRE(s && msg, SHOAL_ERR_INVALID_ARG, "rpc stream: write without a stream/message");
    SHOAL_REQUIRE(s->m->kind == SHOAL_RPC_CLIENT_STREAM && msg->descriptor == s->m->request,
                  SHOAL_ERR_INVALID_ARG, "rpc stream %s: write needs a client stream and a %s",
                  s->m->path, s->m->request ? s->m->request->name : "?");
    if (s->finished || s->status_done) {
        shoal_status st = recv_status(s, 1);
        return st == SHOAL_OK ? SHOAL_ERR_COMM : st;
    }
    grpc_byte_buffer *bb = NULL;
    SHOAL_CHECK(shoal_rpc_pack(msg, s->cli->max_msg, &bb));
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = bb;
    int ok = run_batch(s, &op, 1);
    grpc_byte_buffer_destroy(bb);
    if (ok < 0) return SHOAL_ERR_INTERNAL;
    if (!ok || s->status_done) { /* the server ended the call: its status says why */
        shoal_status st = recv_status(s, 1);
        return st == SHOAL_OK ? SHOAL_ERR_COMM : st;
    }
    return SHOAL_OK;
}

shoal_status shoal_rpc_stream_finish(shoal_rpc_stream *s, ProtobufCMessage **resp) {
    SHOAL_REQUIRE(s && resp, SHOAL_ERR_INVALID_ARG, "rpc stream: finish without a stream");
    *resp = NULL;
    SHOAL_REQUIRE(s->m->kind == SHOAL_RPC_CLIENT_STREAM, SHOAL_ERR_INVALID_ARG,
                  "rpc stream %s: finish is for client streams", s->m->path);
    if (s->finished) return s->final_st == SHOAL_OK ? SHOAL_ERR_PROTOCOL : s->final_st;
    if (!s->status_done) {
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        if (run_batch(s, &op, 1) < 0) return SHOAL_ERR_INTERNAL;
    }
    shoal_status st = recv_status(s, 1);
    if (st == SHOAL_OK) {
        if (!s->reply_bb) {
            snprintf(s->res.details, sizeof s->res.details, "server sent OK without a reply");
            s->res.code = SHOAL_RPC_INTERNAL;
            st = s->final_st = SHOAL_ERR_PROTOCOL;
        } else {
            st = decode_reply(s->cli, s->m, s->reply_bb, resp, &s->res);
            if (st != SHOAL_OK) s->final_st = st;
        }
    }
    return st;
}

const shoal_rpc_result *shoal_rpc_stream_result(const shoal_rpc_stream *s) {
    return s ? &s->res : NULL;
}

void shoal_rpc_stream_free(shoal_rpc_stream *s) {
    if (!s) return;
    if (s->call) {
        if (!s->finished) grpc_call_cancel(s->call, NULL);
        if (s->status_started && !s->status_done) wait_tag(s, &s->status_tag);
        grpc_call_unref(s->call);
    }
    grpc_slice_unref(s->det);
    if (s->reply_bb) grpc_byte_buffer_destroy(s->reply_bb);
    grpc_metadata_array_destroy(&s->init_md);
    grpc_metadata_array_destroy(&s->trail_md);
    if (s->cq) {
        grpc_completion_queue_shutdown(s->cq);
        for (;;) {
            grpc_event ev =
                grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        }
        grpc_completion_queue_destroy(s->cq);
    }
    free(s);
}

/* ---- public: many unary calls in flight from one thread ---- */

/* One call in flight; its address is the batch tag. Everything a batch points at lives here
 * until the completion: gRPC reads the metadata and the send buffer while the batch runs. */
typedef struct async_slot {
    grpc_call *call;
    grpc_byte_buffer *send, *recv;
    grpc_metadata md;
    grpc_metadata_array init_md, trail_md;
    grpc_status_code code;
    grpc_slice det;
    const shoal_rpc_method *m;
    void *user;
    struct async_slot *next_free;
} async_slot;

struct shoal_rpc_async {
    shoal_rpc_client *cli;
    grpc_completion_queue *cq;
    async_slot *slots, *free_list;
    int cap, outstanding;
};

shoal_status shoal_rpc_async_new(shoal_rpc_client *cli, int max_outstanding,
                                 shoal_rpc_async **out) {
    SHOAL_REQUIRE(out, SHOAL_ERR_INVALID_ARG, "rpc async: no output pointer");
    *out = NULL;
    SHOAL_REQUIRE(cli, SHOAL_ERR_INVALID_ARG, "rpc async: no client");
    uint64_t cap = shoal_limit(SHOAL_LIMIT_RPC_INFLIGHT_CALLS);
    SHOAL_REQUIRE(max_outstanding >= 1 && (uint64_t)max_outstanding <= cap, SHOAL_ERR_LIMIT,
                  "rpc async: %d calls in flight, want 1..%llu (rpc_inflight_calls)",
                  max_outstanding, (unsigned long long)cap);
    shoal_rpc_async *a = calloc(1, sizeof *a);
    async_slot *slots = calloc((size_t)max_outstanding, sizeof *slots);
    if (!a || !slots) {
        free(a);
        free(slots);
        SHOAL_LOG_ERROR("rpc async: out of memory for %d call slots", max_outstanding);
        return SHOAL_ERR_NOMEM;
    }
    a->cli = cli;
    a->slots = slots;
    a->cap = max_outstanding;
    for (int i = max_outstanding - 1; i >= 0; i--) {
        slots[i].next_free = a->free_list;
        a->free_list = &slots[i];
    }
    a->cq = grpc_completion_queue_create_for_next(NULL);
    *out = a;
    return SHOAL_OK;
}

int shoal_rpc_async_outstanding(const shoal_rpc_async *a) {
    return a ? a->outstanding : 0;
}

/* Release what a finished (or never started) call holds and put its slot back. */
static void slot_release(shoal_rpc_async *a, async_slot *s) {
    if (s->call) grpc_call_unref(s->call);
    if (s->send) grpc_byte_buffer_destroy(s->send);
    if (s->recv) grpc_byte_buffer_destroy(s->recv);
    grpc_slice_unref(s->det);
    grpc_metadata_array_destroy(&s->init_md);
    grpc_metadata_array_destroy(&s->trail_md);
    memset(s, 0, sizeof *s);
    s->next_free = a->free_list;
    a->free_list = s;
}

shoal_status shoal_rpc_async_start(shoal_rpc_async *a, const shoal_rpc_method *m,
                                   const ProtobufCMessage *req, int timeout_ms, void *user) {
    SHOAL_REQUIRE(a, SHOAL_ERR_INVALID_ARG, "rpc async: start without a handle");
    SHOAL_CHECK(check_call(a->cli, m, SHOAL_RPC_UNARY, req));
    SHOAL_REQUIRE(req, SHOAL_ERR_INVALID_ARG, "rpc async: %s without a request", m->path);
    SHOAL_REQUIRE(a->free_list, SHOAL_ERR_LIMIT,
                  "rpc async: %s: already %d calls in flight (the handle's maximum); collect "
                  "one with shoal_rpc_async_next first",
                  m->path, a->cap);
    async_slot *s = a->free_list;
    a->free_list = s->next_free;
    s->next_free = NULL;
    s->m = m;
    s->user = user;
    s->code = GRPC_STATUS_UNKNOWN;
    s->det = grpc_empty_slice();
    grpc_metadata_array_init(&s->init_md);
    grpc_metadata_array_init(&s->trail_md);
    shoal_status st = shoal_rpc_pack(req, a->cli->max_msg, &s->send);
    if (st != SHOAL_OK) {
        slot_release(a, s);
        return st;
    }
    grpc_slice method = grpc_slice_from_copied_string(m->path);
    s->call = grpc_channel_create_call(
        a->cli->ch, NULL, GRPC_PROPAGATE_DEFAULTS, a->cq, method, NULL,
        shoal_rpc_deadline(timeout_ms > 0 ? timeout_ms : a->cli->timeout_ms), NULL);
    grpc_slice_unref(method);
    if (!s->call) {
        slot_release(a, s);
        SHOAL_LOG_ERROR("%s: cannot create a call", m->path);
        return SHOAL_ERR_INTERNAL;
    }
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    initial_md_op(a->cli, &ops[0], &s->md);
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = s->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &s->recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &s->trail_md;
    ops[5].data.recv_status_on_client.status = &s->code;
    ops[5].data.recv_status_on_client.status_details = &s->det;
    grpc_call_error e = grpc_call_start_batch(s->call, ops, 6, s, NULL);
    if (e != GRPC_CALL_OK) {
        SHOAL_LOG_ERROR("%s: grpc_call_start_batch failed: %s", m->path,
                        grpc_call_error_to_string(e));
        slot_release(a, s);
        return SHOAL_ERR_INTERNAL;
    }
    a->outstanding++;
    return SHOAL_OK;
}

shoal_status shoal_rpc_async_next(shoal_rpc_async *a, int timeout_ms, shoal_rpc_async_done *done) {
    SHOAL_REQUIRE(a && done, SHOAL_ERR_INVALID_ARG, "rpc async: next without a handle/result");
    memset(done, 0, sizeof *done);
    SHOAL_REQUIRE(a->outstanding > 0, SHOAL_ERR_INVALID_ARG,
                  "rpc async: next with no call in flight");
    grpc_event ev = grpc_completion_queue_next(a->cq, shoal_rpc_deadline(timeout_ms), NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) return SHOAL_ERR_TIMEOUT;
    SHOAL_REQUIRE(ev.type == GRPC_OP_COMPLETE, SHOAL_ERR_INTERNAL,
                  "rpc async: completion queue shut down with %d calls in flight", a->outstanding);
    async_slot *s = ev.tag;
    a->outstanding--;
    done->user = s->user;
    /* Like the blocking unary call: the status batch always completes with the call's status,
     * whatever ev.success says (a cancelled or unreachable call has a status too). */
    done->result.code = (int)s->code;
    shoal_rpc_slice_to_str(s->det, done->result.details, sizeof done->result.details);
    shoal_status st = shoal_rpc_status_from_code((int)s->code);
    if (st != SHOAL_OK) {
        SHOAL_LOG_DEBUG("%s on %s: %s: %s", s->m->path, a->cli->target, shoal_rpc_code_str(s->code),
                        done->result.details);
    } else if (!s->recv) {
        snprintf(done->result.details, sizeof done->result.details,
                 "server sent OK without a reply");
        done->result.code = SHOAL_RPC_INTERNAL;
        st = SHOAL_ERR_PROTOCOL;
    } else {
        st = decode_reply(a->cli, s->m, s->recv, &done->resp, &done->result);
    }
    done->status = st;
    slot_release(a, s);
    return SHOAL_OK;
}

void shoal_rpc_async_free(shoal_rpc_async *a) {
    if (!a) return;
    /* cancel what is still in flight, then collect each completion before the queue goes */
    for (int i = 0; i < a->cap; i++)
        if (a->slots[i].call) grpc_call_cancel(a->slots[i].call, NULL);
    while (a->outstanding > 0) {
        grpc_event ev =
            grpc_completion_queue_next(a->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type != GRPC_OP_COMPLETE) break;
        a->outstanding--;
        slot_release(a, ev.tag);
    }
    grpc_completion_queue_shutdown(a->cq);
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(a->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    }
    grpc_completion_queue_destroy(a->cq);
    free(a->slots);
    free(a);
}
