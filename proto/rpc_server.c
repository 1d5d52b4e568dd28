/* rpc_server.c: the gRPC-core server behind shoal_rpc_server_*: a few threads polling one
 * completion queue, a per-call state machine, and a worker pool that runs handlers.
 *
 * Why this shape (research/infra.md §2): gRPC core has no generated service code for C, so
 * calls are taken with the generic grpc_server_request_call and routed by method path. The
 * completion-queue threads (cq_threads, default 1; more let calls go on while one poller is
 * preempted or stuck in a slow inline handler, but cost switches on a 2-core host) do
 * everything that must not block: accept, auth, first read and decode, final status. Handlers run
 * on pool threads so they may block; their sends and receives start a batch and wait on the call's
 * condition variable until the CQ thread sees the completion. Exception: a unary method flagged
 * SHOAL_RPC_INLINE (short reads such as GetJob) runs its handler on the CQ thread right after the
 * request decodes; a unary handler never waits on the CQ (its reply is buffered until the final
 * status), so it cannot deadlock, and skipping the pool saves two context switches per call. A call
 * is freed by whichever side observes "no batch pending and no worker holds it", under the call's
 * mutex, so there is exactly one free. RECV_CLOSE_ON_SERVER is started first on every call and
 * completes only when the call is over, which is what makes "no batch pending" mean "finished".
 * Shutdown: grpc_server_shutdown_and_notify stops new calls; in-flight ones get drain_ms to finish;
 * then grpc_server_cancel_all_calls; once the shutdown tag has fired and every call is freed, the
 * first CQ thread to see it destroys the server and shuts the queue down, and every CQ thread
 * drains the queue until gRPC reports it shut down. Two events of one call may run on two CQ
 * threads at once: both take the call's mutex, and only the one that leaves it with no batch
 * pending and no worker frees it. Tested by tests/proto/test_rpc.c,
 * tests/proto/test_rpc_inline.c and tests/proto/test_rpc_tls.c.
 */
#define SHOAL_LOG_SUBSYS "rpc"
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/timeutil.h"
#include "proto/rpc_internal.h"

enum { T_NEW, T_CLOSE, T_FIRST_READ, T_READ, T_WRITE, T_FINAL, T_COUNT };

typedef struct {
    shoal_rpc_call *c;
    int op;
} call_tag;

struct shoal_rpc_call {
    shoal_rpc_server *srv;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    call_tag tags[T_COUNT];
    const shoal_rpc_route *route;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    int pending;   /* batches started and not completed */
    int in_worker; /* queued for or running in the pool */
    int accepted;  /* counted in srv->n_live */
    int closed, close_cancelled, md_sent, final_sent, recv_eof;
    int read_done, read_ok, write_done, write_ok;
    grpc_byte_buffer *recv_bb, *send_bb, *reply_bb;
    shoal_status sticky; /* a bad client-stream message: the call's final status */
    ProtobufCMessage *req;
    char err[SHOAL_MAX_RPC_DETAILS];
    char peer_cn[SHOAL_MAX_RPC_PRINCIPAL];
    char principal[SHOAL_MAX_RPC_PRINCIPAL];
    shoal_rpc_call *next; /* pool queue */
};

struct shoal_rpc_server {
    grpc_server *server;
    grpc_completion_queue *cq;
    shoal_rpc_route *routes;
    int n_routes;
    shoal_rpc_auth_fn auth;
    void *auth_user;
    size_t max_msg;
    int max_threads, drain_ms, port, inflight_cap;
    int started, thread_started;
    pthread_t *cq_threads;
    int n_cq, cq_started; /* configured, started */
    int shutdown_tag;     /* its address is the shutdown tag */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* n_live / got_shutdown changes */
    pthread_cond_t pool_cv; /* queue changes */
    /* under mu */
    int n_live, shutting_down, got_shutdown, abandon;
    int destroyed; /* grpc server destroyed and queue shut down (by one CQ thread) */
    shoal_rpc_call *q_head, *q_tail;
    int q_len, n_threads, n_idle, pool_stop;
    pthread_t *threads;
};

static void enqueue(shoal_rpc_server *srv, shoal_rpc_call *c);

/* ---- call helpers (c->mu held unless said) ---- */

static int start_locked(shoal_rpc_call *c, const grpc_op *ops, size_t n, int op) {
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->tags[op], NULL);
    if (e != GRPC_CALL_OK) {
        SHOAL_LOG_ERROR("grpc_call_start_batch(op %d) failed: %s", op,
                        grpc_call_error_to_string(e));
        return 0;
    }
    c->pending++;
    return 1;
}

static void start_final_locked(shoal_rpc_call *c, shoal_rpc_code code, const char *details,
                               grpc_byte_buffer *reply) {
    if (c->final_sent) return;
    c->final_sent = 1;
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    if (!c->md_sent) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        c->md_sent = 1;
    }
    if (reply) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = reply;
    }
    grpc_slice det = grpc_slice_from_copied_string(details ? details : "");
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)code;
    ops[n++].data.send_status_from_server.status_details = &det;
    start_locked(c, ops, n, T_FINAL);
    grpc_slice_unref(det);
}

static void fail_locked(shoal_rpc_call *c, shoal_rpc_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_locked(shoal_rpc_call *c, shoal_rpc_code code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    char method[160];
    shoal_rpc_slice_to_str(c->details.method, method, sizeof method);
    SHOAL_LOG_INFO("%s: %s: %s", method, shoal_rpc_code_str(code), c->err);
    start_final_locked(c, code, c->err, NULL);
}

static void free_call(shoal_rpc_call *c) {
    shoal_rpc_server *srv = c->srv;
    if (c->call) grpc_call_unref(c->call);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    shoal_rpc_msg_free(c->req);
    if (c->recv_bb) grpc_byte_buffer_destroy(c->recv_bb);
    if (c->send_bb) grpc_byte_buffer_destroy(c->send_bb);
    if (c->reply_bb) grpc_byte_buffer_destroy(c->reply_bb);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    int accepted = c->accepted;
    free(c);
    if (accepted) {
        pthread_mutex_lock(&srv->mu);
        srv->n_live--;
        pthread_cond_broadcast(&srv->cv);
        pthread_mutex_unlock(&srv->mu);
    }
}

/* Arm the next grpc_server_request_call; srv->mu held. 0 when shutting down or on failure. */
static int request_new_locked(shoal_rpc_server *srv) {
    if (srv->shutting_down) return 0;
    shoal_rpc_call *c = calloc(1, sizeof *c);
    if (!c) {
        SHOAL_LOG_ERROR("out of memory arming the next call; server stops accepting");
        return 0;
    }
    c->srv = srv;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    /* Tags are written once, here: the CQ thread reads them without the call's lock. */
    for (int i = 0; i < T_COUNT; i++) {
        c->tags[i].c = c;
        c->tags[i].op = i;
    }
    grpc_call_error e = grpc_server_request_call(srv->server, &c->call, &c->details, &c->md,
                                                 srv->cq, srv->cq, &c->tags[T_NEW]);
    if (e != GRPC_CALL_OK) {
        SHOAL_LOG_ERROR("grpc_server_request_call failed: %s", grpc_call_error_to_string(e));
        c->call = NULL;
        free_call(c);
        return 0;
    }
    return 1;
}

/* Bearer token from metadata: 1 found (copied to out), 0 absent, -1 malformed/too long. */
static int find_bearer(const grpc_metadata_array *md, char *out, size_t cap) {
    for (size_t i = 0; i < md->count; i++) {
        grpc_slice k = md->metadata[i].key, v = md->metadata[i].value;
        if (GRPC_SLICE_LENGTH(k) != 13 || memcmp(GRPC_SLICE_START_PTR(k), "authorization", 13))
            continue;
        size_t n = GRPC_SLICE_LENGTH(v);
        const char *p = (const char *)GRPC_SLICE_START_PTR(v);
        if (n < 8 || strncasecmp(p, "Bearer ", 7) != 0) return -1;
        p += 7;
        n -= 7;
        if (n == 0 || n >= cap || memchr(p, '\0', n)) return -1;
        memcpy(out, p, n);
        out[n] = '\0';
        return 1;
    }
    return 0;
}

/* Verified client-certificate CN: 1 found, 0 none, -1 too long. */
static int find_peer_cn(grpc_call *call, char *out, size_t cap) {
    int rc = 0;
    grpc_auth_context *ac = grpc_call_auth_context(call);
    if (!ac) return 0;
    if (grpc_auth_context_peer_is_authenticated(ac)) {
        grpc_auth_property_iterator it =
            grpc_auth_context_find_properties_by_name(ac, GRPC_X509_CN_PROPERTY_NAME);
        const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
        if (p && p->value) {
            size_t n = strnlen(p->value, p->value_length);
            if (n >= cap) {
                rc = -1;
            } else {
                memcpy(out, p->value, n);
                out[n] = '\0';
                rc = 1;
            }
        }
    }
    grpc_auth_context_release(ac);
    return rc;
}

static const shoal_rpc_route *find_route(const shoal_rpc_server *srv, grpc_slice method) {
    size_t n = GRPC_SLICE_LENGTH(method);
    for (int i = 0; i < srv->n_routes; i++) {
        const char *p = srv->routes[i].method->path;
        if (strlen(p) == n && memcmp(p, GRPC_SLICE_START_PTR(method), n) == 0)
            return &srv->routes[i];
    }
    return NULL;
}

static size_t request_cap(const shoal_rpc_call *c) {
    size_t m = c->route->method->max_request_bytes;
    return m && m < c->srv->max_msg ? m : c->srv->max_msg;
}

/* ---- completion-queue thread ---- */

static void on_new_call(shoal_rpc_call *c) {
    shoal_rpc_server *srv = c->srv;
    pthread_mutex_lock(&srv->mu);
    request_new_locked(srv);
    srv->n_live++;
    int busy = srv->n_live > srv->inflight_cap;
    pthread_mutex_unlock(&srv->mu);
    c->accepted = 1;

    pthread_mutex_lock(&c->mu);
    grpc_op close_op;
    memset(&close_op, 0, sizeof close_op);
    close_op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    close_op.data.recv_close_on_server.cancelled = &c->close_cancelled;
    start_locked(c, &close_op, 1, T_CLOSE);

    char method[160];
    shoal_rpc_slice_to_str(c->details.method, method, sizeof method);
    c->route = find_route(srv, c->details.method);
    int cn = find_peer_cn(c->call, c->peer_cn, sizeof c->peer_cn);
    if (!c->route) {
        fail_locked(c, SHOAL_RPC_UNIMPLEMENTED, "unknown method %s", method);
    } else if (cn < 0) {
        fail_locked(c, SHOAL_RPC_UNAUTHENTICATED, "client certificate CN longer than %d bytes",
                    SHOAL_MAX_RPC_PRINCIPAL - 1);
    } else if (busy) {
        fail_locked(c, SHOAL_RPC_RESOURCE_EXHAUSTED,
                    "server busy: more than %d calls in flight (rpc_inflight_calls)",
                    srv->inflight_cap);
    } else {
        int admitted = 1;
        if (srv->auth && !(c->route->method->flags & SHOAL_RPC_NO_AUTH)) {
            char token[SHOAL_MAX_RPC_TOKEN + 1];
            int tk = find_bearer(&c->md, token, sizeof token);
            if (tk < 0) {
                fail_locked(c, SHOAL_RPC_UNAUTHENTICATED,
                            "malformed authorization header (want 'Bearer <token>', at most %d "
                            "bytes)",
                            SHOAL_MAX_RPC_TOKEN);
                admitted = 0;
            } else {
                c->principal[0] = '\0';
                shoal_status st = srv->auth(tk ? token : NULL, cn ? c->peer_cn : NULL, method,
                                            c->principal, sizeof c->principal, srv->auth_user);
                c->principal[sizeof c->principal - 1] = '\0';
                if (st != SHOAL_OK) {
                    fail_locked(c, SHOAL_RPC_UNAUTHENTICATED, "%s",
                                tk ? "bearer token refused"
                                   : (cn ? "client certificate refused"
                                         : "missing credentials: send 'authorization: Bearer "
                                           "<token>' or a client certificate"));
                    admitted = 0;
                }
            }
            memset(token, 0, sizeof token);
        }
        if (admitted) {
            if (c->route->method->kind == SHOAL_RPC_CLIENT_STREAM) {
                c->in_worker = 1;
                enqueue(srv, c);
            } else {
                grpc_op op;
                memset(&op, 0, sizeof op);
                op.op = GRPC_OP_RECV_MESSAGE;
                op.data.recv_message.recv_message = &c->recv_bb;
                if (!start_locked(c, &op, 1, T_FIRST_READ))
                    fail_locked(c, SHOAL_RPC_INTERNAL, "could not start reading the request");
            }
        }
    }
    int done = c->pending == 0 && !c->in_worker;
    pthread_mutex_unlock(&c->mu);
    if (done) free_call(c);
}

/* First (and only) request of a unary or server-stream call; c->mu held. Returns 1 when the
 * call is a SHOAL_RPC_INLINE one to run now on this thread (in_worker set: the caller must drop
 * c->mu and call run_call, which finishes and frees it), else 0. */
static int on_first_read_locked(shoal_rpc_call *c, int ok) {
    if (!ok || !c->recv_bb) { /* gRPC refuses messages over the server cap before we see them */
        fail_locked(c, SHOAL_RPC_INVALID_ARGUMENT,
                    "no request message (client cancelled, or it exceeded %zu bytes)",
                    c->srv->max_msg);
        return 0;
    }
    char why[SHOAL_MAX_RPC_DETAILS];
    ProtobufCMessage *m = NULL;
    shoal_status st =
        shoal_rpc_decode_bb(c->route->method->request, c->route->method->validate_request,
                            request_cap(c), c->recv_bb, &m, why, sizeof why);
    grpc_byte_buffer_destroy(c->recv_bb);
    c->recv_bb = NULL;
    if (st != SHOAL_OK) {
        fail_locked(c, shoal_rpc_code_from_status(st), "%s", why);
        return 0;
    }
    c->req = m;
    c->in_worker = 1;
    if (c->route->method->flags & SHOAL_RPC_INLINE) return 1; /* caller runs it, unlocked */
    enqueue(c->srv, c);
    return 0;
}

static void run_call(shoal_rpc_call *c);

static void on_event(call_tag *t, int ok) {
    shoal_rpc_call *c = t->c;
    int run_inline = 0;
    if (t->op == T_NEW) {
        if (!ok) { /* shutting down: this armed request never got a call */
            free_call(c);
            return;
        }
        on_new_call(c);
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->pending--;
    switch (t->op) {
    case T_CLOSE:
        c->closed = 1;
        pthread_cond_broadcast(&c->cv);
        break;
    case T_FIRST_READ: run_inline = on_first_read_locked(c, ok); break;
    case T_READ:
        c->read_done = 1;
        c->read_ok = ok;
        pthread_cond_broadcast(&c->cv);
        break;
    case T_WRITE:
        c->write_done = 1;
        c->write_ok = ok;
        pthread_cond_broadcast(&c->cv);
        break;
    default: break;
    }
    int done = c->pending == 0 && !c->in_worker;
    pthread_mutex_unlock(&c->mu);
    if (run_inline)
        run_call(c); /* in_worker is set, so done is 0: run_call sends the status and frees */
    else if (done)
        free_call(c);
}

static void *cq_main(void *arg) {
    shoal_rpc_server *srv = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(srv->cq, shoal_rpc_deadline(100), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type == GRPC_OP_COMPLETE) {
            if (ev.tag == &srv->shutdown_tag) {
                pthread_mutex_lock(&srv->mu);
                srv->got_shutdown = 1;
                pthread_cond_broadcast(&srv->cv);
                pthread_mutex_unlock(&srv->mu);
            } else {
                on_event(ev.tag, ev.success); /* after destroy: leftovers, success 0 */
            }
        }
        /* The first thread to see "shut down and no call left" claims the destroy under srv->mu
         * (shoal_rpc_server_free cancels calls only while it is unclaimed), destroys the server
         * and shuts the queue down; every thread then drains until GRPC_QUEUE_SHUTDOWN. */
        pthread_mutex_lock(&srv->mu);
        int claim = srv->got_shutdown && srv->n_live == 0 && !srv->destroyed;
        if (claim) srv->destroyed = 1;
        pthread_mutex_unlock(&srv->mu);
        if (claim) {
            grpc_server_destroy(srv->server);
            srv->server = NULL;
            grpc_completion_queue_shutdown(srv->cq);
        }
    }
    return NULL;
}

/* ---- worker pool ---- */

static void run_call(shoal_rpc_call *c) {
    const shoal_rpc_route *r = c->route;
    shoal_status st = r->handler(c, c->req, r->user);
    pthread_mutex_lock(&c->mu);
    if (c->sticky != SHOAL_OK) st = c->sticky;
    shoal_rpc_code code = shoal_rpc_code_from_status(st);
    grpc_byte_buffer *reply = NULL;
    if (st == SHOAL_OK && r->method->kind != SHOAL_RPC_SERVER_STREAM) {
        if (!c->reply_bb) {
            SHOAL_LOG_ERROR("%s: handler returned OK without a reply", r->method->path);
            code = SHOAL_RPC_INTERNAL;
            snprintf(c->err, sizeof c->err, "handler returned no reply");
        }
        reply = c->reply_bb;
    } else if (st != SHOAL_OK) {
        if (!c->err[0]) snprintf(c->err, sizeof c->err, "%s", shoal_status_str(st));
        SHOAL_LOG_DEBUG("%s: %s: %s", r->method->path, shoal_rpc_code_str(code), c->err);
    }
    start_final_locked(c, code, code == SHOAL_RPC_OK ? "" : c->err, reply);
    c->in_worker = 0;
    int done = c->pending == 0;
    pthread_mutex_unlock(&c->mu);
    if (done) free_call(c);
}

static void *pool_main(void *arg) {
    shoal_rpc_server *srv = arg;
    pthread_mutex_lock(&srv->mu);
    for (;;) {
        while (!srv->q_head && !srv->pool_stop) {
            srv->n_idle++;
            pthread_cond_wait(&srv->pool_cv, &srv->mu);
            srv->n_idle--;
        }
        if (!srv->q_head) break;
        shoal_rpc_call *c = srv->q_head;
        srv->q_head = c->next;
        if (!srv->q_head) srv->q_tail = NULL;
        srv->q_len--;
        pthread_mutex_unlock(&srv->mu);
        run_call(c);
        pthread_mutex_lock(&srv->mu);
    }
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

static void enqueue(shoal_rpc_server *srv, shoal_rpc_call *c) {
    pthread_mutex_lock(&srv->mu);
    c->next = NULL;
    if (srv->q_tail)
        srv->q_tail->next = c;
    else
        srv->q_head = c;
    srv->q_tail = c;
    srv->q_len++;
    if (srv->q_len > srv->n_idle && srv->n_threads < srv->max_threads) {
        if (pthread_create(&srv->threads[srv->n_threads], NULL, pool_main, srv) == 0) {
            srv->n_threads++;
        } else if (srv->n_threads == 0) {
            /* Without any worker the call would wait forever; report it loudly. The call stays
             * queued and is served once a thread can be made. */
            SHOAL_LOG_ERROR("cannot start an RPC handler thread: %s", strerror(errno));
        }
    }
    pthread_cond_signal(&srv->pool_cv);
    pthread_mutex_unlock(&srv->mu);
}

/* ---- handler API ---- */

shoal_status shoal_rpc_call_send(shoal_rpc_call *c, const ProtobufCMessage *msg) {
    const shoal_rpc_method *m = c->route->method;
    SHOAL_REQUIRE(msg && msg->descriptor == m->response, SHOAL_ERR_INVALID_ARG,
                  "%s: reply is not a %s", m->path, m->response ? m->response->name : "?");
    grpc_byte_buffer *bb = NULL;
    SHOAL_CHECK(shoal_rpc_pack(msg, c->srv->max_msg, &bb));
    shoal_status st = SHOAL_OK;
    pthread_mutex_lock(&c->mu);
    if (m->kind != SHOAL_RPC_SERVER_STREAM) {
        if (c->reply_bb) {
            SHOAL_LOG_ERROR("%s: handler sent a second reply to a single-reply method", m->path);
            st = SHOAL_ERR_INTERNAL;
        } else {
            c->reply_bb = bb;
            bb = NULL;
        }
    } else if (c->closed || c->final_sent) {
        st = SHOAL_ERR_COMM;
    } else {
        grpc_op ops[2];
        memset(ops, 0, sizeof ops);
        size_t n = 0;
        if (!c->md_sent) ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = bb;
        c->write_done = 0;
        if (!start_locked(c, ops, n, T_WRITE)) {
            st = SHOAL_ERR_INTERNAL;
        } else {
            c->md_sent = 1;
            while (!c->write_done)
                pthread_cond_wait(&c->cv, &c->mu);
            if (!c->write_ok) st = SHOAL_ERR_COMM;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (bb) grpc_byte_buffer_destroy(bb);
    return st;
}

shoal_status shoal_rpc_call_recv(shoal_rpc_call *c, ProtobufCMessage **msg) {
    const shoal_rpc_method *m = c->route->method;
    *msg = NULL;
    SHOAL_REQUIRE(m->kind == SHOAL_RPC_CLIENT_STREAM, SHOAL_ERR_INVALID_ARG,
                  "%s: shoal_rpc_call_recv on a method that is not client-streaming", m->path);
    shoal_status st = SHOAL_OK;
    pthread_mutex_lock(&c->mu);
    if (c->sticky != SHOAL_OK) {
        st = c->sticky;
    } else if (c->recv_eof) {
        st = SHOAL_OK;
    } else if (c->closed) {
        st = SHOAL_ERR_COMM;
    } else {
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &c->recv_bb;
        c->read_done = 0;
        if (!start_locked(c, &op, 1, T_READ)) {
            st = SHOAL_ERR_INTERNAL;
        } else {
            while (!c->read_done)
                pthread_cond_wait(&c->cv, &c->mu);
            if (!c->read_ok) {
                st = SHOAL_ERR_COMM;
            } else if (!c->recv_bb) {
                c->recv_eof = 1;
            } else {
                char why[SHOAL_MAX_RPC_DETAILS];
                st = shoal_rpc_decode_bb(m->request, m->validate_request, request_cap(c),
                                         c->recv_bb, msg, why, sizeof why);
                grpc_byte_buffer_destroy(c->recv_bb);
                c->recv_bb = NULL;
                if (st != SHOAL_OK) {
                    c->sticky = st;
                    snprintf(c->err, sizeof c->err, "%s", why);
                    SHOAL_LOG_INFO("%s: refused a streamed request: %s", m->path, why);
                }
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

void shoal_rpc_call_set_error(shoal_rpc_call *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&c->mu);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    pthread_mutex_unlock(&c->mu);
    va_end(ap);
}

int64_t shoal_rpc_call_deadline_ms(shoal_rpc_call *c) {
    gpr_timespec d = c->details.deadline;
    if (gpr_time_cmp(d, gpr_inf_future(d.clock_type)) == 0) return INT64_MAX;
    gpr_timespec left =
        gpr_time_sub(gpr_convert_clock_type(d, GPR_CLOCK_MONOTONIC), gpr_now(GPR_CLOCK_MONOTONIC));
    return (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
}

int shoal_rpc_call_cancelled(shoal_rpc_call *c) {
    pthread_mutex_lock(&c->mu);
    int r = c->close_cancelled || (c->closed && !c->final_sent);
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_lock(&c->srv->mu);
    r |= c->srv->abandon;
    pthread_mutex_unlock(&c->srv->mu);
    return r || shoal_rpc_call_deadline_ms(c) <= 0;
}

const char *shoal_rpc_call_peer_cn(const shoal_rpc_call *c) {
    return c->peer_cn;
}
const char *shoal_rpc_call_principal(const shoal_rpc_call *c) {
    return c->principal;
}
const shoal_rpc_method *shoal_rpc_call_method(const shoal_rpc_call *c) {
    return c->route->method;
}

/* ---- server lifetime ---- */

static shoal_status check_config(const shoal_rpc_server_config *cfg) {
    SHOAL_REQUIRE(cfg && cfg->listen && cfg->listen[0], SHOAL_ERR_INVALID_ARG,
                  "rpc server: no listen address");
    SHOAL_REQUIRE(cfg->n_routes > 0 && cfg->routes, SHOAL_ERR_INVALID_ARG,
                  "rpc server %s: no methods to serve", cfg->listen);
    SHOAL_REQUIRE(!cfg->tls_cert == !cfg->tls_key, SHOAL_ERR_INVALID_ARG,
                  "rpc server %s: TLS needs both a certificate and a key (--tls-cert, --tls-key)",
                  cfg->listen);
    SHOAL_REQUIRE(!cfg->tls_client_ca || cfg->tls_cert, SHOAL_ERR_INVALID_ARG,
                  "rpc server %s: a client CA (mTLS) needs a server certificate and key too",
                  cfg->listen);
    SHOAL_REQUIRE(cfg->tls_cert || shoal_rpc_addr_is_loopback(cfg->listen), SHOAL_ERR_INVALID_ARG,
                  "rpc server: refusing to serve without TLS on %s; plaintext is allowed only "
                  "on loopback (127.0.0.1, [::1], localhost, unix:). Give a certificate and key "
                  "(--tls-cert/--tls-key, made by deploy/certs.sh) or listen on 127.0.0.1",
                  cfg->listen);
    SHOAL_REQUIRE(cfg->max_threads >= 0 && cfg->drain_ms >= 0, SHOAL_ERR_INVALID_ARG,
                  "rpc server %s: negative max_threads or drain_ms", cfg->listen);
    uint64_t cq_ceiling = shoal_limit_describe(SHOAL_LIMIT_RPC_CQ_THREADS)->ceiling;
    SHOAL_REQUIRE(cfg->cq_threads >= 0 && (uint64_t)cfg->cq_threads <= cq_ceiling, SHOAL_ERR_LIMIT,
                  "rpc server %s: cq_threads %d is outside 0..%llu", cfg->listen, cfg->cq_threads,
                  (unsigned long long)cq_ceiling);
    uint64_t ceiling = shoal_limit_describe(SHOAL_LIMIT_RPC_MESSAGE_BYTES)->ceiling;
    SHOAL_REQUIRE(cfg->max_message_bytes <= ceiling, SHOAL_ERR_LIMIT,
                  "rpc server %s: max_message_bytes %zu is above the ceiling %llu", cfg->listen,
                  cfg->max_message_bytes, (unsigned long long)ceiling);
    for (int i = 0; i < cfg->n_routes; i++) {
        const shoal_rpc_route *r = &cfg->routes[i];
        const shoal_rpc_method *m = r->method;
        SHOAL_REQUIRE(m && m->path && m->path[0] == '/' && r->handler && m->request &&
                          m->response && (unsigned)m->kind <= SHOAL_RPC_CLIENT_STREAM,
                      SHOAL_ERR_INVALID_ARG,
                      "rpc server: route %d is incomplete (path '/pkg.Service/Method', kind, "
                      "request and response descriptors, handler)",
                      i);
        SHOAL_REQUIRE(!(m->flags & SHOAL_RPC_INLINE) || m->kind == SHOAL_RPC_UNARY,
                      SHOAL_ERR_INVALID_ARG,
                      "rpc server: %s is streaming; SHOAL_RPC_INLINE is for unary methods only "
                      "(a streaming handler blocks on the completion-queue thread it would run on)",
                      m->path);
        for (int j = 0; j < i; j++) {
            SHOAL_REQUIRE(strcmp(cfg->routes[j].method->path, m->path) != 0, SHOAL_ERR_INVALID_ARG,
                          "rpc server: method %s routed twice", m->path);
        }
    }
    return SHOAL_OK;
}

static shoal_status make_credentials(const shoal_rpc_server_config *cfg,
                                     grpc_server_credentials **out) {
    *out = NULL;
    if (!cfg->tls_cert) {
        *out = grpc_insecure_server_credentials_create();
        return SHOAL_OK;
    }
    shoal_status st = SHOAL_OK;
    char *cert = NULL, *key = NULL, *ca = NULL;
    SHOAL_CHECK_GOTO(shoal_rpc_read_pem("server certificate", cfg->tls_cert, &cert));
    SHOAL_CHECK_GOTO(shoal_rpc_read_pem("server key", cfg->tls_key, &key));
    if (cfg->tls_client_ca)
        SHOAL_CHECK_GOTO(shoal_rpc_read_pem("client CA", cfg->tls_client_ca, &ca));
    grpc_ssl_pem_key_cert_pair kp = {key, cert};
    grpc_ssl_server_certificate_config *sc = grpc_ssl_server_certificate_config_create(ca, &kp, 1);
    grpc_ssl_server_credentials_options *opts =
        grpc_ssl_server_credentials_create_options_using_config(
            ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
               : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            sc);
    *out = grpc_ssl_server_credentials_create_with_options(opts);
    SHOAL_REQUIRE_GOTO(*out, SHOAL_ERR_INVALID_ARG,
                       "rpc server: gRPC refused the TLS material (%s, %s)", cfg->tls_cert,
                       cfg->tls_key);
cleanup:
    shoal_rpc_free_pem(ca);
    shoal_rpc_free_pem(key);
    shoal_rpc_free_pem(cert);
    return st;
}

shoal_status shoal_rpc_server_start(const shoal_rpc_server_config *cfg, shoal_rpc_server **out) {
    SHOAL_REQUIRE(out, SHOAL_ERR_INVALID_ARG, "rpc server: no output pointer");
    *out = NULL;
    SHOAL_CHECK(check_config(cfg));
    shoal_status st = SHOAL_OK;
    grpc_server_credentials *creds = NULL;
    shoal_rpc_server *srv = calloc(1, sizeof *srv);
    SHOAL_REQUIRE(srv, SHOAL_ERR_NOMEM, "rpc server: out of memory");
    shoal_rpc_lib_acquire();
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cv, NULL);
    pthread_cond_init(&srv->pool_cv, NULL);
    srv->max_msg = cfg->max_message_bytes ? cfg->max_message_bytes
                                          : (size_t)shoal_limit(SHOAL_LIMIT_RPC_MESSAGE_BYTES);
    srv->max_threads =
        cfg->max_threads ? cfg->max_threads : (int)shoal_limit(SHOAL_LIMIT_RPC_HANDLER_THREADS);
    uint64_t thread_ceiling = shoal_limit_describe(SHOAL_LIMIT_RPC_HANDLER_THREADS)->ceiling;
    if ((uint64_t)srv->max_threads > thread_ceiling) srv->max_threads = (int)thread_ceiling;
    srv->inflight_cap = (int)shoal_limit(SHOAL_LIMIT_RPC_INFLIGHT_CALLS);
    srv->drain_ms = cfg->drain_ms ? cfg->drain_ms : 5000;
    srv->auth = cfg->auth;
    srv->auth_user = cfg->auth_user;
    srv->n_routes = cfg->n_routes;
    srv->routes = calloc((size_t)cfg->n_routes, sizeof *srv->routes);
    srv->threads = calloc((size_t)srv->max_threads, sizeof *srv->threads);
    srv->n_cq = cfg->cq_threads ? cfg->cq_threads : (int)shoal_limit(SHOAL_LIMIT_RPC_CQ_THREADS);
    srv->cq_threads = calloc((size_t)srv->n_cq, sizeof *srv->cq_threads);
    SHOAL_REQUIRE_GOTO(srv->routes && srv->threads && srv->cq_threads, SHOAL_ERR_NOMEM,
                       "rpc server: out of memory");
    memcpy(srv->routes, cfg->routes, (size_t)cfg->n_routes * sizeof *srv->routes);

    grpc_arg args[3];
    memset(args, 0, sizeof args);
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)srv->max_msg;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = (int)srv->max_msg;
    args[2].type = GRPC_ARG_INTEGER; /* on by default: a 2nd server would silently share a port */
    args[2].key = GRPC_ARG_ALLOW_REUSEPORT;
    args[2].value.integer = 0;
    grpc_channel_args cargs = {3, args};
    srv->server = grpc_server_create(&cargs, NULL);
    srv->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
    SHOAL_CHECK_GOTO(make_credentials(cfg, &creds));
    srv->port = grpc_server_add_http2_port(srv->server, cfg->listen, creds);
    SHOAL_REQUIRE_GOTO(srv->port > 0, SHOAL_ERR_COMM,
                       "rpc server: cannot listen on %s (address in use or not local?)",
                       cfg->listen);
    if (strncmp(cfg->listen, "unix", 4) == 0) srv->port = 0;
    grpc_server_start(srv->server);
    srv->started = 1;
    pthread_mutex_lock(&srv->mu);
    int armed = request_new_locked(srv);
    pthread_mutex_unlock(&srv->mu);
    SHOAL_REQUIRE_GOTO(armed, SHOAL_ERR_INTERNAL, "rpc server: cannot arm the first call");
    for (int i = 0; i < srv->n_cq; i++) {
        if (pthread_create(&srv->cq_threads[i], NULL, cq_main, srv) != 0) break;
        srv->cq_started++;
    }
    srv->thread_started = srv->cq_started > 0;
    SHOAL_REQUIRE_GOTO(srv->thread_started, SHOAL_ERR_INTERNAL,
                       "rpc server: cannot start its completion-queue threads");
    if (srv->cq_started < srv->n_cq)
        SHOAL_LOG_WARN("rpc server: started %d of %d completion-queue threads", srv->cq_started,
                       srv->n_cq);
    SHOAL_LOG_INFO("serving %d methods on %s (port %d, %s)", srv->n_routes, cfg->listen, srv->port,
                   cfg->tls_client_ca ? "mTLS" : (cfg->tls_cert ? "TLS" : "plaintext, loopback"));
    *out = srv;
cleanup:
    if (creds) grpc_server_credentials_release(creds);
    if (st != SHOAL_OK) shoal_rpc_server_free(srv);
    return st;
}

int shoal_rpc_server_port(const shoal_rpc_server *srv) {
    return srv ? srv->port : 0;
}

int shoal_rpc_server_inflight(shoal_rpc_server *srv) {
    pthread_mutex_lock(&srv->mu);
    int n = srv->n_live;
    pthread_mutex_unlock(&srv->mu);
    return n;
}

static int wait_drained(shoal_rpc_server *srv, int timeout_ms) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&srv->mu);
    int rc = 0;
    while (!(srv->got_shutdown && srv->n_live == 0) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&srv->cv, &srv->mu, &until);
    int drained = srv->got_shutdown && srv->n_live == 0;
    pthread_mutex_unlock(&srv->mu);
    return drained;
}

void shoal_rpc_server_free(shoal_rpc_server *srv) {
    if (!srv) return;
    if (srv->server && srv->started) {
        pthread_mutex_lock(&srv->mu);
        srv->shutting_down = 1;
        grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
        pthread_mutex_unlock(&srv->mu);
        if (srv->thread_started) {
            double t0 = shoal_now_s();
            if (!wait_drained(srv, srv->drain_ms)) {
                SHOAL_LOG_WARN("rpc server: %d calls still running after %d ms; cancelling them",
                               shoal_rpc_server_inflight(srv), srv->drain_ms);
                pthread_mutex_lock(&srv->mu);
                srv->abandon = 1;
                /* under mu: a CQ thread may destroy the server once the last call is gone */
                if (!srv->destroyed) grpc_server_cancel_all_calls(srv->server);
                pthread_mutex_unlock(&srv->mu);
            }
            for (int i = 0; i < srv->cq_started; i++) /* they destroy server and queue */
                pthread_join(srv->cq_threads[i], NULL);
            SHOAL_LOG_DEBUG("rpc server drained in %.3f s", shoal_now_s() - t0);
        } else {
            /* never ran: nothing was accepted; collect the shutdown tag ourselves */
            grpc_server_cancel_all_calls(srv->server);
            for (;;) {
                grpc_event ev =
                    grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
                if (ev.type != GRPC_OP_COMPLETE || ev.tag == &srv->shutdown_tag) break;
                on_event(ev.tag, 0);
            }
        }
    }
    if (srv->server) grpc_server_destroy(srv->server);
    if (srv->cq) {
        if (!srv->thread_started) {
            grpc_completion_queue_shutdown(srv->cq);
            for (;;) {
                grpc_event ev =
                    grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
                if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
                if (ev.type == GRPC_OP_COMPLETE && ev.tag != &srv->shutdown_tag)
                    on_event(ev.tag, 0);
            }
        }
        grpc_completion_queue_destroy(srv->cq);
    }
    pthread_mutex_lock(&srv->mu);
    srv->pool_stop = 1;
    pthread_cond_broadcast(&srv->pool_cv);
    int n = srv->n_threads;
    pthread_mutex_unlock(&srv->mu);
    for (int i = 0; i < n; i++)
        pthread_join(srv->threads[i], NULL);
    pthread_cond_destroy(&srv->pool_cv);
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv->threads);
    free(srv->cq_threads);
    free(srv->routes);
    free(srv);
    shoal_rpc_lib_release();
}
