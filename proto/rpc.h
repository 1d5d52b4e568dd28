/* rpc.h: shoal's one adapter over gRPC core. Servers, clients, streams, TLS/mTLS, bearer
 * tokens, deadlines, size limits and status mapping, in terms of protobuf-c messages.
 *
 * Why this shape: gRPC's core C API is not a stable public API upstream (gRFC P3), so every
 * grpc_* call in shoal lives in proto/rpc*.c and no grpc type appears here. Payloads are
 * protobuf-c messages (ProtobufCMessageDescriptor), so any .proto compiled with
 * shoal_protoc_c() plugs in. A method is described once (shoal_rpc_method: path, kind,
 * request/response descriptors, validator, size cap) and used by both sides.
 *
 * Server threading model: a few internal threads (cq_threads, default 1) drive one completion
 * queue (accept calls, check auth, read and decode the first request, send final statuses).
 * Handlers never run on them: each accepted, decoded and validated call is handed to a small worker
 * pool that grows on demand up to SHOAL_LIMIT_RPC_HANDLER_THREADS. A handler may therefore block
 * (sleep, wait for the coordinator's state thread, stream for minutes); shoal_rpc_call_send/recv
 * block that worker until gRPC completes the operation. The auth callback runs on the
 * completion-queue thread and must be quick and thread-safe with respect to the rest of the
 * program. Methods flagged SHOAL_RPC_INLINE (short unary reads) are the exception: their handlers
 * run on a completion-queue thread itself, with no hand-off (so they must be thread-safe, like any
 * handler, and must not block).
 *
 * Hostile input: every request is size-checked (per-method cap, else the server's message cap),
 * unpacked with protobuf-c, checked generically (required fields, enum values known to the
 * schema, nesting depth) and then by the method's validate callback, before any handler sees
 * it. A malformed or invalid message gets INVALID_ARGUMENT, an oversized one
 * RESOURCE_EXHAUSTED; the server keeps serving.
 *
 * Security: without TLS material a server binds only to loopback (127.0.0.0/8, ::1, localhost,
 * unix:) and refuses anything else with SHOAL_ERR_INVALID_ARG and a hint; likewise a client
 * refuses to talk plaintext to a non-loopback target. With tls_cert/tls_key it serves TLS; with
 * tls_client_ca too it requires and verifies a client certificate (mTLS) and hands the peer's
 * CN to handlers. SO_REUSEPORT is off, so a second server on a busy port fails loudly.
 *
 * Tested by tests/proto/test_rpc.c (loopback: unary, streams both ways, deadlines, status
 * mapping, oversize/garbage requests, bearer tokens, 8x100 concurrent calls, draining
 * shutdown), tests/proto/test_rpc_inline.c (inline handlers, one and two CQ threads),
 * tests/proto/test_rpc_async.c (many calls in flight from one thread),
 * tests/proto/test_rpc_tls.c (TLS, mTLS refusals: no cert, other CA, expired; CN),
 * tests/proto/test_rpc_decode.c and tests/fuzz/fuzz_rpc_decode.c (decode + validate path).
 */
#ifndef SHOAL_PROTO_RPC_H
#define SHOAL_PROTO_RPC_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"
#include "common/status.h"

/* ---- status codes ---- */

/* gRPC's canonical status codes (the wire values, identical in every gRPC language). */
typedef enum {
    SHOAL_RPC_OK = 0,
    SHOAL_RPC_CANCELLED = 1,
    SHOAL_RPC_UNKNOWN = 2,
    SHOAL_RPC_INVALID_ARGUMENT = 3,
    SHOAL_RPC_DEADLINE_EXCEEDED = 4,
    SHOAL_RPC_NOT_FOUND = 5,
    SHOAL_RPC_ALREADY_EXISTS = 6,
    SHOAL_RPC_PERMISSION_DENIED = 7,
    SHOAL_RPC_RESOURCE_EXHAUSTED = 8,
    SHOAL_RPC_FAILED_PRECONDITION = 9,
    SHOAL_RPC_ABORTED = 10,
    SHOAL_RPC_OUT_OF_RANGE = 11,
    SHOAL_RPC_UNIMPLEMENTED = 12,
    SHOAL_RPC_INTERNAL = 13,
    SHOAL_RPC_UNAVAILABLE = 14,
    SHOAL_RPC_DATA_LOSS = 15,
    SHOAL_RPC_UNAUTHENTICATED = 16,
} shoal_rpc_code;

/* shoal_status -> gRPC code sent to the peer: INVALID_ARG/FORMAT -> INVALID_ARGUMENT,
 * AUTH -> UNAUTHENTICATED, NOT_FOUND -> NOT_FOUND, LIMIT/NOMEM -> RESOURCE_EXHAUSTED,
 * TIMEOUT -> DEADLINE_EXCEEDED, UNSUPPORTED -> UNIMPLEMENTED, PROTOCOL -> INVALID_ARGUMENT,
 * COMM -> UNAVAILABLE, REMOTE -> UNKNOWN, everything else -> INTERNAL. */
shoal_rpc_code shoal_rpc_code_from_status(shoal_status st);
/* gRPC code received -> shoal_status, the inverse where one exists (PERMISSION_DENIED -> AUTH,
 * UNAVAILABLE/CANCELLED -> COMM, ALREADY_EXISTS/FAILED_PRECONDITION/ABORTED/OUT_OF_RANGE ->
 * INVALID_ARG, anything unknown -> REMOTE). */
shoal_status shoal_rpc_status_from_code(int code);
/* Upper-case name of a code ("INVALID_ARGUMENT"); "UNKNOWN_CODE" when out of range. */
const char *shoal_rpc_code_str(int code);

/* ---- methods ---- */

typedef enum {
    SHOAL_RPC_UNARY = 0,     /* one request, one response */
    SHOAL_RPC_SERVER_STREAM, /* one request, a stream of responses */
    SHOAL_RPC_CLIENT_STREAM, /* a stream of requests, one response */
} shoal_rpc_kind;

/* Per-method check of a decoded message, run before any handler sees it (server: requests;
 * client: responses). Return SHOAL_OK, or an error (usually SHOAL_ERR_INVALID_ARG) with a
 * one-line reason in why (NUL-terminated, at most why_cap bytes), which becomes the status
 * details the peer sees. Must not keep msg. */
typedef shoal_status (*shoal_rpc_validate_fn)(const ProtobufCMessage *msg, char *why,
                                              size_t why_cap);

/* Method flags. */
#define SHOAL_RPC_NO_AUTH 0x1u /* skip the server's auth callback (health checks) */
/* Unary only: run the handler on the server's completion-queue thread instead of handing it to
 * the worker pool (saves two thread hand-offs per call). Only for short, non-blocking handlers
 * (pure reads that never wait on a lock another thread can hold for long): while one runs, the
 * server does nothing else. Auth, size caps, generic checks and validate_request still apply;
 * the reply and final status are sent the same way. A server refuses the flag on a streaming
 * method (INVALID_ARG at start). */
#define SHOAL_RPC_INLINE 0x2u

/* One RPC method, shared by server and client code (typically a static const table beside the
 * .proto's generated code). path is the gRPC path "/package.Service/Method". */
typedef struct {
    const char *path;
    shoal_rpc_kind kind;
    const ProtobufCMessageDescriptor *request;
    const ProtobufCMessageDescriptor *response;
    shoal_rpc_validate_fn validate_request;  /* may be NULL: generic checks only */
    shoal_rpc_validate_fn validate_response; /* may be NULL */
    size_t max_request_bytes;                /* 0: the server's message cap */
    unsigned flags;                          /* SHOAL_RPC_NO_AUTH | SHOAL_RPC_INLINE */
} shoal_rpc_method;

/* ---- decoding (what the server does to every request; exposed for tests and fuzzing) ---- */

/* Decode len bytes as a message of type desc: refuse len > max_bytes (SHOAL_ERR_LIMIT; 0 means
 * the SHOAL_LIMIT_RPC_MESSAGE_BYTES limit), unpack (SHOAL_ERR_INVALID_ARG when malformed or
 * truncated), run shoal_rpc_check_message, then validate (if not NULL). On success *out owns a
 * new message (free with shoal_rpc_msg_free); on error *out is NULL and why (if not NULL) holds
 * the reason. Never logs above DEBUG: the caller decides how loud a bad peer is. */
shoal_status shoal_rpc_decode(const ProtobufCMessageDescriptor *desc,
                              shoal_rpc_validate_fn validate, size_t max_bytes, const uint8_t *data,
                              size_t len, ProtobufCMessage **out, char *why, size_t why_cap);
/* Generic checks on a decoded message, recursively: required fields present, every enum field
 * (singular, optional, oneof and repeated) holds a value the schema names, nesting depth <= 32.
 * Returns SHOAL_OK or SHOAL_ERR_INVALID_ARG with the offending field's path in why. */
shoal_status shoal_rpc_check_message(const ProtobufCMessage *msg, char *why, size_t why_cap);
/* Free a message from shoal_rpc_decode, a client call or shoal_rpc_call_recv. NULL is a no-op. */
void shoal_rpc_msg_free(ProtobufCMessage *msg);

/* ---- helpers ---- */

/* 1 if a listen address or target is loopback-only: 127.0.0.0/8, [::1], localhost, "unix:".
 * Ports are ignored; an empty host or 0.0.0.0/[::] is not loopback. */
int shoal_rpc_addr_is_loopback(const char *addr);
/* Constant-time equality of two NUL-terminated tokens (length leaks, content does not). */
int shoal_rpc_token_equal(const char *a, const char *b);

/* ---- server ---- */

typedef struct shoal_rpc_server shoal_rpc_server;
typedef struct shoal_rpc_call shoal_rpc_call;

/* A handler. req is the decoded, validated request (unary and server-stream; owned by the
 * adapter, valid until the handler returns), NULL for client-stream methods (read them with
 * shoal_rpc_call_recv). Runs on a worker thread and may block. Returns the call's status:
 * SHOAL_OK sends the reply given to shoal_rpc_call_send (unary/client-stream: exactly one) and
 * OK; an error sends shoal_rpc_code_from_status(st) with the details set by
 * shoal_rpc_call_set_error (or the status name). */
typedef shoal_status (*shoal_rpc_handler)(shoal_rpc_call *call, const ProtobufCMessage *req,
                                          void *user);

/* Route: a method and the handler serving it. */
typedef struct {
    const shoal_rpc_method *method;
    shoal_rpc_handler handler;
    void *user;
} shoal_rpc_route;

/* Call-level authentication, run on every call (except SHOAL_RPC_NO_AUTH methods) before its
 * request is read. bearer is the token from `authorization: Bearer <token>` (NULL if absent),
 * peer_cn the verified client certificate's CN (NULL without mTLS), method the path. Return
 * SHOAL_OK to admit the call, optionally writing a principal name (NUL-terminated, < cap bytes)
 * that handlers read with shoal_rpc_call_principal; any error refuses it with UNAUTHENTICATED.
 * Runs on the completion-queue thread: keep it fast. */
typedef shoal_status (*shoal_rpc_auth_fn)(const char *bearer, const char *peer_cn,
                                          const char *method, char *principal, size_t cap,
                                          void *user);

typedef struct {
    const char *listen;            /* "127.0.0.1:0" (port 0: any free port), "0.0.0.0:7070", ... */
    const char *tls_cert;          /* PEM path of the server certificate chain; NULL: insecure */
    const char *tls_key;           /* PEM path of its private key */
    const char *tls_client_ca;     /* PEM path of the CA for client certificates: mTLS; NULL: TLS */
    const shoal_rpc_route *routes; /* copied; the methods they point at must outlive the server */
    int n_routes;
    shoal_rpc_auth_fn auth; /* NULL: no call-level auth (transport security only) */
    void *auth_user;
    size_t max_message_bytes; /* send and receive cap; 0: SHOAL_LIMIT_RPC_MESSAGE_BYTES */
    int max_threads;          /* handler pool cap; 0: SHOAL_LIMIT_RPC_HANDLER_THREADS */
    int cq_threads;           /* completion-queue threads; 0: SHOAL_LIMIT_RPC_CQ_THREADS */
    int drain_ms;             /* shutdown grace for in-flight calls; 0: 5000 */
} shoal_rpc_server_config;

/* Create, bind and start a server; its completion-queue thread runs until shoal_rpc_server_free.
 * Errors: INVALID_ARG (bad config, insecure on a non-loopback address, duplicate path),
 * IO/LIMIT (PEM files), COMM (bind failed, e.g. port in use). */
shoal_status shoal_rpc_server_start(const shoal_rpc_server_config *cfg, shoal_rpc_server **out);
/* The TCP port actually bound (useful with port 0); 0 for unix: addresses. */
int shoal_rpc_server_port(const shoal_rpc_server *srv);
/* Calls accepted and not yet finished (for tests and metrics). */
int shoal_rpc_server_inflight(shoal_rpc_server *srv);
/* Stop accepting calls, let in-flight calls finish for up to drain_ms, then cancel the rest
 * (their sends fail, shoal_rpc_call_cancelled turns 1), wait for every handler to return, and
 * free everything. Blocks. Handlers must return once cancelled. NULL is a no-op. */
void shoal_rpc_server_free(shoal_rpc_server *srv);

/* Inside a handler. The call pointer is valid until the handler returns. */

/* Unary and client-stream: set the one reply (packed now, so msg may live on the stack); a
 * second reply is SHOAL_ERR_INTERNAL. Server-stream: send one message of the stream, blocking
 * until gRPC has taken it (flow control); SHOAL_ERR_COMM when the client went away, the
 * deadline passed or the server is shutting down. msg must be of the method's response type. */
shoal_status shoal_rpc_call_send(shoal_rpc_call *call, const ProtobufCMessage *msg);
/* Client-stream only: receive the next request, decoded and validated like a unary one.
 * *msg is the message (caller frees with shoal_rpc_msg_free), or NULL at the end of the
 * stream. A bad message returns INVALID_ARG/LIMIT and that becomes the call's final status
 * whatever the handler returns. Blocks. */
shoal_status shoal_rpc_call_recv(shoal_rpc_call *call, ProtobufCMessage **msg);
/* Status details for an error return (printf-style, truncated to SHOAL_MAX_RPC_DETAILS). */
void shoal_rpc_call_set_error(shoal_rpc_call *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* 1 once the client cancelled, the deadline passed or the server is draining past its grace. */
int shoal_rpc_call_cancelled(shoal_rpc_call *call);
/* Milliseconds left before the client's deadline (INT64_MAX without one, <= 0 when past). */
int64_t shoal_rpc_call_deadline_ms(shoal_rpc_call *call);
/* The verified client-certificate CN ("" without mTLS) and the auth callback's principal
 * ("" without one). Owned by the call. */
const char *shoal_rpc_call_peer_cn(const shoal_rpc_call *call);
const char *shoal_rpc_call_principal(const shoal_rpc_call *call);
const shoal_rpc_method *shoal_rpc_call_method(const shoal_rpc_call *call);

/* ---- client ---- */

typedef struct shoal_rpc_client shoal_rpc_client;
typedef struct shoal_rpc_stream shoal_rpc_stream;

typedef struct {
    const char *target;          /* "127.0.0.1:7070", "coord.example.org:7070" */
    const char *tls_ca;          /* PEM path of the CA that signed the server; NULL: insecure
                                    (only to a loopback target) */
    const char *tls_cert;        /* PEM paths of our client certificate and key (mTLS); NULL: */
    const char *tls_key;         /* no client certificate */
    const char *tls_server_name; /* name to verify the server certificate against when it
                                    differs from the target host; NULL: the target host */
    const char *bearer_token;    /* sent as `authorization: Bearer <token>`; NULL: none */
    size_t max_message_bytes;    /* send and receive cap; 0: SHOAL_LIMIT_RPC_MESSAGE_BYTES */
    int timeout_ms;              /* default per-call deadline; 0: 30000 */
} shoal_rpc_client_config;

/* What the server answered: its code and details. Filled by every client call that takes one
 * (may be NULL); code is SHOAL_RPC_OK on success. */
typedef struct {
    int code;
    char details[SHOAL_MAX_RPC_DETAILS];
} shoal_rpc_result;

/* Create a client (a gRPC channel; connects lazily on the first call). Thread-safe: many
 * threads may call through one client at once. Errors: INVALID_ARG (bad config, plaintext to
 * a non-loopback target), IO/LIMIT (PEM files). */
shoal_status shoal_rpc_client_new(const shoal_rpc_client_config *cfg, shoal_rpc_client **out);
/* NULL is a no-op. Every stream of the client must be freed first. */
void shoal_rpc_client_free(shoal_rpc_client *cli);

/* Unary call. timeout_ms <= 0: the client's default. On SHOAL_OK *resp owns the decoded,
 * validated response (free with shoal_rpc_msg_free). Otherwise *resp is NULL and the status is
 * shoal_rpc_status_from_code(server's code) (TIMEOUT at the deadline, COMM when unreachable or
 * the TLS handshake failed), or INVALID_ARG/LIMIT when the response did not decode or
 * validate. Blocks. */
shoal_status shoal_rpc_client_unary(shoal_rpc_client *cli, const shoal_rpc_method *m,
                                    const ProtobufCMessage *req, int timeout_ms,
                                    ProtobufCMessage **resp, shoal_rpc_result *res);
/* Unary call with raw request bytes (tests, fuzzing, proxies): sends data as the message as
 * it is; on SHOAL_OK the raw response bytes are returned in *resp (malloc'd, caller frees;
 * may be NULL if resp is NULL). */
shoal_status shoal_rpc_client_unary_raw(shoal_rpc_client *cli, const char *path, const void *data,
                                        size_t len, int timeout_ms, uint8_t **resp,
                                        size_t *resp_len, shoal_rpc_result *res);

/* Server-stream call: send req and half-close; read with shoal_rpc_stream_read. timeout_ms
 * bounds the whole stream (pass a large value for long watches). *out is set whenever a
 * stream was created, even when the open fails (its result then says why): always free it
 * with shoal_rpc_stream_free. */
shoal_status shoal_rpc_client_stream_open(shoal_rpc_client *cli, const shoal_rpc_method *m,
                                          const ProtobufCMessage *req, int timeout_ms,
                                          shoal_rpc_stream **out);
/* Next message of a server stream: SHOAL_OK with *msg (caller frees), or SHOAL_OK with *msg NULL
 * at the end of a stream that finished OK; at an end with an error, the mapped error (details
 * in shoal_rpc_stream_result). A message that fails to decode or validate cancels the call and
 * returns INVALID_ARG/LIMIT. Blocks up to the deadline. */
shoal_status shoal_rpc_stream_read(shoal_rpc_stream *s, ProtobufCMessage **msg);

/* Client-stream call: open, write any number of requests, then finish for the one reply.
 * *out is set as for shoal_rpc_client_stream_open. */
shoal_status shoal_rpc_client_writer_open(shoal_rpc_client *cli, const shoal_rpc_method *m,
                                          int timeout_ms, shoal_rpc_stream **out);
/* Send one request (blocks for flow control). If the server already ended the call, returns
 * its mapped status (the stream is then finished; shoal_rpc_stream_finish returns it too). */
shoal_status shoal_rpc_stream_write(shoal_rpc_stream *s, const ProtobufCMessage *msg);
/* Half-close and wait for the reply: like shoal_rpc_client_unary's return. */
shoal_status shoal_rpc_stream_finish(shoal_rpc_stream *s, ProtobufCMessage **resp);

/* The server's code and details once the stream has ended (code -1 before). */
const shoal_rpc_result *shoal_rpc_stream_result(const shoal_rpc_stream *s);
/* Free a stream; one still open is cancelled first. NULL is a no-op. */
void shoal_rpc_stream_free(shoal_rpc_stream *s);

/* ---- client: many unary calls in flight from one thread ---- */

/* A completion queue of unary calls on one client: start up to max_outstanding calls without
 * waiting, then collect them as they finish, in any order. One thread drives a handle (it is
 * not thread-safe); several handles may share a client. This is gRPC's "async client,
 * outstanding RPCs per channel" shape: load generators and fan-out callers keep N calls in
 * flight without N threads. */
typedef struct shoal_rpc_async shoal_rpc_async;

/* One finished call, as shoal_rpc_async_next hands it back. */
typedef struct {
    void *user;              /* as given to shoal_rpc_async_start */
    shoal_status status;     /* as shoal_rpc_client_unary would have returned */
    ProtobufCMessage *resp;  /* on SHOAL_OK: the decoded, validated reply (caller frees with
                                shoal_rpc_msg_free); else NULL */
    shoal_rpc_result result; /* the server's code and details */
} shoal_rpc_async_done;

/* max_outstanding: 1..SHOAL_LIMIT_RPC_INFLIGHT_CALLS (LIMIT otherwise). The client must
 * outlive the handle. */
shoal_status shoal_rpc_async_new(shoal_rpc_client *cli, int max_outstanding, shoal_rpc_async **out);
/* Start a unary call (req is packed before this returns); timeout_ms <= 0: the client's
 * default. Does not block. LIMIT when max_outstanding calls are already in flight;
 * INVALID_ARG for a method that is not unary or a request of the wrong type. */
shoal_status shoal_rpc_async_start(shoal_rpc_async *a, const shoal_rpc_method *m,
                                   const ProtobufCMessage *req, int timeout_ms, void *user);
/* Wait up to timeout_ms (<= 0: forever; each call has its own deadline) for one call to
 * finish and fill *done with it: SHOAL_OK then, whatever the call's own status (in
 * done->status). TIMEOUT when none finished in time, INVALID_ARG when none is in flight. */
shoal_status shoal_rpc_async_next(shoal_rpc_async *a, int timeout_ms, shoal_rpc_async_done *done);
/* Calls started and not yet collected. */
int shoal_rpc_async_outstanding(const shoal_rpc_async *a);
/* Cancel the calls still in flight, wait for their completions, free. NULL is a no-op. */
void shoal_rpc_async_free(shoal_rpc_async *a);

#endif
