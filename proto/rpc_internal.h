/* rpc_internal.h: what rpc.c, rpc_server.c and rpc_client.c share. Never included outside
 * proto/: it is the only header in shoal that names grpc types.
 *
 * Why: one place for gRPC library init and log routing, byte-buffer <-> protobuf-c packing,
 * PEM loading and channel-argument building, so the server and client files stay about their
 * state machines. Tested through tests/proto/.
 */
#ifndef SHOAL_PROTO_RPC_INTERNAL_H
#define SHOAL_PROTO_RPC_INTERNAL_H

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "proto/rpc.h"

/* grpc_init() once per user (refcounted by gRPC), with gRPC's log routed into shoal's log. */
void shoal_rpc_lib_acquire(void);
void shoal_rpc_lib_release(void);

/* Pack msg into a new byte buffer (caller destroys). LIMIT when the packed size exceeds
 * max_bytes, NOMEM on allocation failure. */
shoal_status shoal_rpc_pack(const ProtobufCMessage *msg, size_t max_bytes, grpc_byte_buffer **out);
/* Flatten a received byte buffer into one slice (caller unrefs). */
shoal_status shoal_rpc_flatten(grpc_byte_buffer *bb, grpc_slice *out);
/* Decode a received byte buffer (does not destroy it). */
shoal_status shoal_rpc_decode_bb(const ProtobufCMessageDescriptor *desc,
                                 shoal_rpc_validate_fn validate, size_t max_bytes,
                                 grpc_byte_buffer *bb, ProtobufCMessage **out, char *why,
                                 size_t why_cap);

/* Read a PEM file (size-capped by SHOAL_LIMIT_PEM_FILE_BYTES); *pem is NUL-terminated, free(). */
shoal_status shoal_rpc_read_pem(const char *what, const char *path, char **pem);
/* Free a PEM buffer after wiping it (keys). NULL is a no-op. */
void shoal_rpc_free_pem(char *pem);

/* Monotonic deadline timeout_ms from now; infinite when timeout_ms <= 0. */
gpr_timespec shoal_rpc_deadline(int64_t timeout_ms);

/* Copy a slice into buf as a NUL-terminated string (truncated to cap-1). */
void shoal_rpc_slice_to_str(grpc_slice s, char *buf, size_t cap);

#endif
