/* rpc.c: the parts of the gRPC adapter that both sides share: status-code mapping, request
 * decoding and generic message checks, loopback detection, token comparison, gRPC library
 * init with its log routed into shoal's, byte-buffer packing and PEM loading.
 *
 * Why here: the decode + check path is the one every byte from a peer goes through, so it is a
 * plain function over (descriptor, bytes) that the fuzz target drives directly. The server
 * (rpc_server.c) and client (rpc_client.c) only add state machines around it.
 * Tested by tests/proto/test_rpc_decode.c, tests/fuzz/fuzz_rpc_decode.c and, through the
 * servers and clients, tests/proto/test_rpc*.c.
 */
#define SHOAL_LOG_SUBSYS "rpc"
#include <arpa/inet.h>
#include <grpc/support/log.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "common/fileio.h"
#include "proto/rpc_internal.h"

/* Nesting depth of messages we walk; shoal's schemas nest a handful of levels. */
#define MAX_MESSAGE_DEPTH 32

/* ---- codes ---- */

shoal_rpc_code shoal_rpc_code_from_status(shoal_status st) {
    switch (st) {
    case SHOAL_OK: return SHOAL_RPC_OK;
    case SHOAL_ERR_INVALID_ARG:
    case SHOAL_ERR_FORMAT:
    case SHOAL_ERR_PROTOCOL: return SHOAL_RPC_INVALID_ARGUMENT;
    case SHOAL_ERR_AUTH: return SHOAL_RPC_UNAUTHENTICATED;
    case SHOAL_ERR_NOT_FOUND: return SHOAL_RPC_NOT_FOUND;
    case SHOAL_ERR_LIMIT:
    case SHOAL_ERR_NOMEM: return SHOAL_RPC_RESOURCE_EXHAUSTED;
    case SHOAL_ERR_TIMEOUT: return SHOAL_RPC_DEADLINE_EXCEEDED;
    case SHOAL_ERR_UNSUPPORTED: return SHOAL_RPC_UNIMPLEMENTED;
    case SHOAL_ERR_COMM: return SHOAL_RPC_UNAVAILABLE;
    case SHOAL_ERR_REMOTE: return SHOAL_RPC_UNKNOWN;
    default: return SHOAL_RPC_INTERNAL;
    }
}

shoal_status shoal_rpc_status_from_code(int code) {
    switch (code) {
    case SHOAL_RPC_OK: return SHOAL_OK;
    case SHOAL_RPC_INVALID_ARGUMENT:
    case SHOAL_RPC_ALREADY_EXISTS:
    case SHOAL_RPC_FAILED_PRECONDITION:
    case SHOAL_RPC_ABORTED:
    case SHOAL_RPC_OUT_OF_RANGE: return SHOAL_ERR_INVALID_ARG;
    case SHOAL_RPC_UNAUTHENTICATED:
    case SHOAL_RPC_PERMISSION_DENIED: return SHOAL_ERR_AUTH;
    case SHOAL_RPC_NOT_FOUND: return SHOAL_ERR_NOT_FOUND;
    case SHOAL_RPC_RESOURCE_EXHAUSTED: return SHOAL_ERR_LIMIT;
    case SHOAL_RPC_DEADLINE_EXCEEDED: return SHOAL_ERR_TIMEOUT;
    case SHOAL_RPC_UNIMPLEMENTED: return SHOAL_ERR_UNSUPPORTED;
    case SHOAL_RPC_UNAVAILABLE:
    case SHOAL_RPC_CANCELLED: return SHOAL_ERR_COMM;
    case SHOAL_RPC_INTERNAL: return SHOAL_ERR_INTERNAL;
    default: return SHOAL_ERR_REMOTE;
    }
}

const char *shoal_rpc_code_str(int code) {
    static const char *names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    if (code < 0 || code >= (int)(sizeof names / sizeof names[0])) return "UNKNOWN_CODE";
    return names[code];
}

/* ---- generic message checks ---- */

static void set_why(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t cap, const char *fmt, ...) {
    if (!why || cap == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

static shoal_status check_enum(const ProtobufCMessageDescriptor *md,
                               const ProtobufCFieldDescriptor *f, int value, char *why,
                               size_t cap) {
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    if (ed && protobuf_c_enum_descriptor_get_value(ed, value)) return SHOAL_OK;
    set_why(why, cap, "%s.%s: unknown %s value %d", md->short_name, f->name,
            ed ? ed->short_name : "enum", value);
    return SHOAL_ERR_INVALID_ARG;
}

static shoal_status check_msg(const ProtobufCMessage *m, int depth, char *why, size_t cap) {
    const ProtobufCMessageDescriptor *md = m->descriptor;
    if (depth > MAX_MESSAGE_DEPTH) {
        set_why(why, cap, "%s: messages nested deeper than %d", md->short_name, MAX_MESSAGE_DEPTH);
        return SHOAL_ERR_INVALID_ARG;
    }
    /* protobuf-c rejects field number 0 in a one-byte key but not in an over-long varint key,
     * and would then re-encode a message that it cannot decode itself (found by fuzzing). */
    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        if (m->unknown_fields[i].tag == 0) {
            set_why(why, cap, "%s: field number 0 is not allowed", md->short_name);
            return SHOAL_ERR_INVALID_ARG;
        }
    }
    const char *base = (const char *)m;
    for (unsigned i = 0; i < md->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &md->fields[i];
        if (f->type != PROTOBUF_C_TYPE_ENUM && f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which;
            memcpy(&which, base + f->quantifier_offset, sizeof which);
            if (which != f->id) continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n;
            memcpy(&n, base + f->quantifier_offset, sizeof n);
            const void *arr;
            memcpy(&arr, base + f->offset, sizeof arr);
            for (size_t k = 0; k < n && arr; k++) {
                shoal_status st;
                if (f->type == PROTOBUF_C_TYPE_ENUM) {
                    st = check_enum(md, f, ((const int *)arr)[k], why, cap);
                } else {
                    const ProtobufCMessage *sub = ((ProtobufCMessage *const *)arr)[k];
                    st = sub ? check_msg(sub, depth + 1, why, cap) : SHOAL_OK;
                }
                if (st != SHOAL_OK) return st;
            }
            continue;
        }
        if (f->type == PROTOBUF_C_TYPE_ENUM) {
            if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
                !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && f->quantifier_offset) {
                protobuf_c_boolean has;
                memcpy(&has, base + f->quantifier_offset, sizeof has);
                if (!has) continue;
            }
            int v;
            memcpy(&v, base + f->offset, sizeof v);
            SHOAL_CHECK(check_enum(md, f, v, why, cap));
        } else {
            const ProtobufCMessage *sub;
            memcpy(&sub, base + f->offset, sizeof sub);
            if (sub) SHOAL_CHECK(check_msg(sub, depth + 1, why, cap));
        }
    }
    return SHOAL_OK;
}

shoal_status shoal_rpc_check_message(const ProtobufCMessage *msg, char *why, size_t why_cap) {
    if (!msg || !msg->descriptor) {
        set_why(why, why_cap, "no message");
        return SHOAL_ERR_INVALID_ARG;
    }
    if (!protobuf_c_message_check(msg)) {
        set_why(why, why_cap, "%s: a required field is missing", msg->descriptor->short_name);
        return SHOAL_ERR_INVALID_ARG;
    }
    return check_msg(msg, 0, why, why_cap);
}

shoal_status shoal_rpc_decode(const ProtobufCMessageDescriptor *desc,
                              shoal_rpc_validate_fn validate, size_t max_bytes, const uint8_t *data,
                              size_t len, ProtobufCMessage **out, char *why, size_t why_cap) {
    if (why && why_cap) why[0] = '\0';
    if (!out || !desc || desc->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC || (!data && len)) {
        set_why(why, why_cap, "bad decode arguments");
        return SHOAL_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (max_bytes == 0) max_bytes = shoal_limit(SHOAL_LIMIT_RPC_MESSAGE_BYTES);
    if (len > max_bytes) {
        set_why(why, why_cap, "%s: message of %zu bytes exceeds the limit of %zu bytes",
                desc->short_name, len, max_bytes);
        return SHOAL_ERR_LIMIT;
    }
    static const uint8_t empty[1];
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, len ? data : empty);
    if (!m) {
        set_why(why, why_cap, "%s: malformed or truncated message (%zu bytes)", desc->short_name,
                len);
        return SHOAL_ERR_INVALID_ARG;
    }
    shoal_status st = shoal_rpc_check_message(m, why, why_cap);
    if (st == SHOAL_OK && validate) {
        char local[SHOAL_MAX_RPC_DETAILS];
        local[0] = '\0';
        st = validate(m, local, sizeof local);
        if (st != SHOAL_OK) {
            set_why(why, why_cap, "%s", local[0] ? local : shoal_status_str(st));
        }
    }
    if (st != SHOAL_OK) {
        protobuf_c_message_free_unpacked(m, NULL);
        SHOAL_LOG_DEBUG("decode %s: %s", desc->short_name, why ? why : shoal_status_str(st));
        return st;
    }
    *out = m;
    return SHOAL_OK;
}

void shoal_rpc_msg_free(ProtobufCMessage *msg) {
    if (msg) protobuf_c_message_free_unpacked(msg, NULL);
}

/* ---- helpers ---- */

int shoal_rpc_addr_is_loopback(const char *addr) {
    if (!addr || !addr[0]) return 0;
    if (strncmp(addr, "unix:", 5) == 0 || strncmp(addr, "unix-abstract:", 14) == 0) return 1;
    static const char *schemes[] = {"dns:///", "ipv4:", "ipv6:"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(addr, schemes[i], n) == 0) {
            addr += n;
            break;
        }
    }
    char host[256];
    const char *colon = strchr(addr, ':');
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || (size_t)(end - addr - 1) >= sizeof host) return 0;
        memcpy(host, addr + 1, (size_t)(end - addr - 1));
        host[end - addr - 1] = '\0';
    } else if (colon && !strchr(colon + 1, ':')) { /* host:port */
        if ((size_t)(colon - addr) >= sizeof host) return 0;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
    } else { /* bare host or bare IPv6 */
        if (strlen(addr) >= sizeof host) return 0;
        strcpy(host, addr);
    }
    if (strcasecmp(host, "localhost") == 0) return 1;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6)) return 1;
        if (IN6_IS_ADDR_V4MAPPED(&a6)) return a6.s6_addr[12] == 127;
    }
    return 0;
}

int shoal_rpc_token_equal(const char *a, const char *b) {
    if (!a || !b) return 0;
    size_t na = strlen(a), nb = strlen(b);
    if (na != nb) return 0;
    return CRYPTO_memcmp(a, b, na) == 0;
}

/* ---- library lifetime and logging ---- */

static void log_from_grpc(gpr_log_func_args *a) {
    /* gRPC's ERROR lines are mostly about peers (failed handshakes, resets): a warning for us. */
    shoal_log_level lvl = a->severity == GPR_LOG_SEVERITY_ERROR ? SHOAL_LOG_WARN : SHOAL_LOG_DEBUG;
    const char *file = a->file ? strrchr(a->file, '/') : NULL;
    shoal_log_write(lvl, "grpc", "%s (%s:%d)", a->message ? a->message : "",
                    file ? file + 1 : (a->file ? a->file : "?"), a->line);
}

static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static void install_log(void) {
    gpr_set_log_function(log_from_grpc);
}

void shoal_rpc_lib_acquire(void) {
    pthread_once(&log_once, install_log);
    grpc_init();
}

void shoal_rpc_lib_release(void) {
    grpc_shutdown_blocking();
}

/* ---- byte buffers ---- */

shoal_status shoal_rpc_pack(const ProtobufCMessage *msg, size_t max_bytes, grpc_byte_buffer **out) {
    *out = NULL;
    SHOAL_REQUIRE(msg && msg->descriptor, SHOAL_ERR_INVALID_ARG, "pack: no message");
    size_t n = protobuf_c_message_get_packed_size(msg);
    SHOAL_REQUIRE(n <= max_bytes, SHOAL_ERR_LIMIT,
                  "%s: message of %zu bytes exceeds the send limit of %zu bytes "
                  "(stream it in chunks or raise rpc_message_bytes)",
                  msg->descriptor->short_name, n, max_bytes);
    grpc_slice s = grpc_slice_malloc(n);
    size_t w = protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
    if (w != n) {
        grpc_slice_unref(s);
        SHOAL_LOG_ERROR("%s: packed %zu bytes, expected %zu", msg->descriptor->short_name, w, n);
        return SHOAL_ERR_INTERNAL;
    }
    *out = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return *out ? SHOAL_OK : SHOAL_ERR_NOMEM;
}

shoal_status shoal_rpc_flatten(grpc_byte_buffer *bb, grpc_slice *out) {
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb)) {
        SHOAL_LOG_DEBUG("could not read a received message (bad compression?)");
        return SHOAL_ERR_PROTOCOL;
    }
    *out = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    return SHOAL_OK;
}

shoal_status shoal_rpc_decode_bb(const ProtobufCMessageDescriptor *desc,
                                 shoal_rpc_validate_fn validate, size_t max_bytes,
                                 grpc_byte_buffer *bb, ProtobufCMessage **out, char *why,
                                 size_t why_cap) {
    *out = NULL;
    size_t n = grpc_byte_buffer_length(bb);
    if (max_bytes && n > max_bytes) { /* refuse before copying */
        set_why(why, why_cap, "%s: message of %zu bytes exceeds the limit of %zu bytes",
                desc->short_name, n, max_bytes);
        return SHOAL_ERR_LIMIT;
    }
    grpc_slice all;
    if (shoal_rpc_flatten(bb, &all) != SHOAL_OK) {
        set_why(why, why_cap, "%s: unreadable message", desc->short_name);
        return SHOAL_ERR_INVALID_ARG;
    }
    shoal_status st = shoal_rpc_decode(desc, validate, max_bytes, GRPC_SLICE_START_PTR(all),
                                       GRPC_SLICE_LENGTH(all), out, why, why_cap);
    grpc_slice_unref(all);
    return st;
}

/* ---- files, time, slices ---- */

shoal_status shoal_rpc_read_pem(const char *what, const char *path, char **pem) {
    *pem = NULL;
    SHOAL_REQUIRE(path && path[0], SHOAL_ERR_INVALID_ARG, "%s: no PEM path given", what);
    size_t len = 0;
    shoal_status st =
        shoal_file_read(path, (size_t)shoal_limit(SHOAL_LIMIT_PEM_FILE_BYTES), pem, &len);
    if (st != SHOAL_OK) {
        SHOAL_LOG_ERROR("%s: cannot read PEM file %s (%s)", what, path, shoal_status_str(st));
        return st;
    }
    if (!strstr(*pem, "-----BEGIN ")) {
        SHOAL_LOG_ERROR("%s: %s is not a PEM file (no -----BEGIN line)", what, path);
        shoal_rpc_free_pem(*pem);
        *pem = NULL;
        return SHOAL_ERR_FORMAT;
    }
    return SHOAL_OK;
}

void shoal_rpc_free_pem(char *pem) {
    if (!pem) return;
    OPENSSL_cleanse(pem, strlen(pem));
    free(pem);
}

gpr_timespec shoal_rpc_deadline(int64_t timeout_ms) {
    if (timeout_ms <= 0) return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

void shoal_rpc_slice_to_str(grpc_slice s, char *buf, size_t cap) {
    size_t n = GRPC_SLICE_LENGTH(s);
    if (n >= cap) n = cap - 1;
    memcpy(buf, GRPC_SLICE_START_PTR(s), n);
    buf[n] = '\0';
}
