/* fuzz_rpc_decode.c: libFuzzer target for the request path of proto/rpc.h: size cap, protobuf-c
 * unpack, generic checks (required fields, enum values, depth) and the method's validator, on
 * the test service's EchoRequest (tests/proto/echo.proto). Any input must be accepted or
 * refused with INVALID_ARG/LIMIT, without a crash, leak or sanitizer report; an accepted
 * message must re-encode and decode again to the same bytes. Seeds:
 * tests/data/rpc_echo_seeds (tests/data/gen_rpc_echo_seeds.py). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "echo_service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        shoal_log_set_level(SHOAL_LOG_ERROR);
        quiet = 1;
    }
    const ProtobufCMessageDescriptor *d = &shoal__test__echo_request__descriptor;
    char why[256];
    ProtobufCMessage *m = NULL;
    shoal_status st = shoal_rpc_decode(d, echo_validate, 1 << 16, data, size, &m, why, sizeof why);
    if (st != SHOAL_OK) {
        if (m || (st != SHOAL_ERR_INVALID_ARG && st != SHOAL_ERR_LIMIT) || !why[0]) abort();
        return 0;
    }
    if (!m) abort();
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) abort();
    if (protobuf_c_message_pack(m, buf) != n) abort();
    ProtobufCMessage *again = NULL;
    if (shoal_rpc_decode(d, echo_validate, 0, buf, n, &again, why, sizeof why) != SHOAL_OK) abort();
    uint8_t *buf2 = malloc(n ? n : 1);
    if (!buf2) abort();
    if (protobuf_c_message_get_packed_size(again) != n ||
        protobuf_c_message_pack(again, buf2) != n || memcmp(buf, buf2, n) != 0)
        abort();
    free(buf2);
    free(buf);
    shoal_rpc_msg_free(again);
    shoal_rpc_msg_free(m);
    return 0;
}
