/* echo_service.h: the test Echo service (echo.proto) on proto/rpc.h: its method table,
 * request validator, handlers and auth callback, shared by the rpc tests and the fuzz target.
 * Tests only; not part of shoal. */
#ifndef SHOAL_TESTS_PROTO_ECHO_SERVICE_H
#define SHOAL_TESTS_PROTO_ECHO_SERVICE_H

#include "echo.pb-c.h"
#include "proto/rpc.h"

enum { ECHO_SAY, ECHO_COUNT, ECHO_SUM, ECHO_SMALL, ECHO_N_METHODS };

/* /shoal.test.Echo/{Say,Count,Sum,Small}. */
extern const shoal_rpc_method echo_methods[ECHO_N_METHODS];
/* Routes for every method, handlers below. */
extern const shoal_rpc_route echo_routes[ECHO_N_METHODS];
/* The token echo_auth accepts. */
#define ECHO_TOKEN "s3cret-token"

/* Validator of EchoRequest: text <= 64 bytes, count 0..100000, delay 0..60000,
 * fail_status a shoal_status. */
shoal_status echo_validate(const ProtobufCMessage *msg, char *why, size_t cap);
/* Auth: ECHO_TOKEN -> principal "token:tester"; else a client certificate -> "cn:<CN>";
 * else refused. */
shoal_status echo_auth(const char *bearer, const char *peer_cn, const char *method, char *principal,
                       size_t cap, void *user);

#endif
