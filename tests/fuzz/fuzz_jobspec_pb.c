/* fuzz_jobspec_pb.c: libFuzzer target for the SubmitJob request path below the RPC adapter:
 * protobuf-c unpacks shoal.v1.SubmitJobRequest bytes, proto/jobspec_pb.c converts and
 * validates the spec. Any input must be refused or accepted without a crash, leak or sanitizer
 * report; an accepted spec must validate again and survive struct -> message -> bytes ->
 * message -> struct unchanged. Seeds: tests/data/jobspec_pb (gen_jobspec_pb_seeds.py). */
#include <stdint.h>
#include <stdlib.h>

#include "proto/jobspec_pb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        shoal_log_set_level(SHOAL_LOG_ERROR);
        quiet = 1;
    }
    Shoal__V1__SubmitJobRequest *req = shoal__v1__submit_job_request__unpack(NULL, size, data);
    if (!req) return 0;
    shoal_job_spec s;
    if (req->spec && shoal_job_spec_from_pb(req->spec, "fuzz", &s) == SHOAL_OK) {
        if (shoal_job_spec_validate(&s, "fuzz") != SHOAL_OK) abort();
        shoal_job_spec_pb holder;
        shoal_job_spec_to_pb(&s, &holder);
        size_t n = shoal__v1__job_spec__get_packed_size(&holder.spec);
        uint8_t *buf = malloc(n ? n : 1);
        if (!buf) abort();
        shoal__v1__job_spec__pack(&holder.spec, buf);
        Shoal__V1__JobSpec *m = shoal__v1__job_spec__unpack(NULL, n, buf);
        if (!m) abort();
        shoal_job_spec back;
        if (shoal_job_spec_from_pb(m, "fuzz-rt", &back) != SHOAL_OK) abort();
        if (!shoal_job_spec_equal(&s, &back)) abort();
        shoal_job_spec_free(&back);
        shoal__v1__job_spec__free_unpacked(m, NULL);
        free(buf);
        shoal_job_spec_free(&s);
    }
    shoal__v1__submit_job_request__free_unpacked(req, NULL);
    return 0;
}
