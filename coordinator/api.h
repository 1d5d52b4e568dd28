/* api.h: the shoal.v1 JobService and RunService methods as proto/rpc.h method descriptors,
 * shared by the coordinator (server) and the CLI (client), with the request validators the
 * adapter runs before any handler, and job record -> shoal.v1.Job conversion.
 *
 * Why shaped so: one table describes each method once for both sides (path, kind, message
 * types, size cap, validator); every request is checked here (ids, ranges, string lengths,
 * enum values, and the whole job spec through proto/jobspec_pb.c) so handlers only see valid
 * input and a bad request gets INVALID_ARGUMENT with the reason in the status details.
 * Tested by tests/coordinator/test_e2e.sh (through the CLI against a live coordinator) and
 * tests/fuzz/fuzz_jobspec_pb.c (the SubmitJob decode + validate path).
 */
#ifndef SHOAL_COORDINATOR_API_H
#define SHOAL_COORDINATOR_API_H

#include "coordinator/store.h"
#include "proto/jobspec_pb.h"
#include "proto/rpc.h"
#include "shoal.pb-c.h"

extern const shoal_rpc_method shoal_api_submit_job;
extern const shoal_rpc_method shoal_api_get_job;
extern const shoal_rpc_method shoal_api_list_jobs;
extern const shoal_rpc_method shoal_api_cancel_job;
extern const shoal_rpc_method shoal_api_watch_job;
extern const shoal_rpc_method shoal_api_get_logs;
extern const shoal_rpc_method shoal_api_report_progress;
extern const shoal_rpc_method shoal_api_report_checkpoint;
extern const shoal_rpc_method shoal_api_report_exit;

/* Largest page ListJobs returns (and the default when the request says 0: 100). */
#define SHOAL_API_MAX_PAGE 1000

/* A shoal.v1.Job built from a record, all sub-messages inline; strings borrowed from the
 * record (valid while both live). */
typedef struct {
    Shoal__V1__Job job;
    shoal_job_spec_pb spec;
    Shoal__V1__Progress progress;
} shoal_api_job_pb;

void shoal_api_job_to_pb(const shoal_job_record *r, shoal_api_job_pb *out);

#endif
