/* fuzz_watchdog_wire.c: libFuzzer target for the liveness ring's wire (worker/dist/watchdog.h):
 * the start-up rank records, the 24-byte hello and the 5-byte ring messages, all of which a
 * peer (or anything that connects to the ring's port) controls. Input: 1 byte world size
 * (1..8), then that many records if the input is long enough, then the rest read as a hello
 * and as a stream of messages. Every decoded rank must be in range. Seeds:
 * tests/data/watchdog_wire/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/dist/watchdog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int world = 1 + data[0] % 8;
    data++, size--;
    size_t rs = shoal_watchdog_record_size(), need = rs * (size_t)world;
    if (size >= need) {
        void *recs = malloc(need);
        if (!recs) return 0;
        memcpy(recs, data, need);
        (void)shoal_watchdog_check_records(recs, world);
        free(recs);
        data += need, size -= need;
    }
    if (size >= SHOAL_WD_HELLO_BYTES) (void)shoal_watchdog_hello_ok(data, world - 1, 42);
    for (; size >= SHOAL_WD_MSG_BYTES; data += SHOAL_WD_MSG_BYTES, size -= SHOAL_WD_MSG_BYTES) {
        char type = 0;
        int rank = -2;
        if (shoal_watchdog_decode_msg(data, world, &type, &rank) == 0) {
            if (!((type == 'B' && rank == -1) || (type == 'L' && rank >= 0 && rank < world)))
                abort();
        }
    }
    return 0;
}
