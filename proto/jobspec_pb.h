/* jobspec_pb.h: conversion between the plain-C job spec (proto/jobspec.h) and the protobuf-c
 * shoal.v1.JobSpec message (generated from proto/shoal.proto).
 *
 * Why shaped so: only proto/ knows protobuf types; the coordinator works on validated
 * shoal_job_spec structs. from_pb copies everything out of the message and runs
 * shoal_job_spec_validate, so a message decoded from the wire is checked by the same rules as a
 * job.json (proto3's "" for an unset string becomes NULL). to_pb borrows the struct's strings
 * and needs no allocation: the holder keeps every sub-message inline, valid while both the
 * struct and the holder live (long enough to pack or send it).
 * Tested by tests/coordinator/test_jobspec_pb.c (round trips through packed bytes, one bad
 * message per rule) and tests/fuzz/fuzz_jobspec_pb.c (seeds in tests/data/jobspec_pb).
 */
#ifndef SHOAL_PROTO_JOBSPEC_PB_H
#define SHOAL_PROTO_JOBSPEC_PB_H

#include "proto/jobspec.h"
#include "shoal.pb-c.h"

typedef struct {
    Shoal__V1__JobSpec spec;
    Shoal__V1__FinetuneSpec finetune;
    Shoal__V1__Hyperparameters hyper;
    Shoal__V1__DpSgd dp;
    Shoal__V1__CommandSpec command;
} shoal_job_spec_pb;

/* Fill out->spec from s (strings borrowed from s). */
void shoal_job_spec_to_pb(const shoal_job_spec *s, shoal_job_spec_pb *out);

/* Copy a decoded message into *out and validate it. INVALID_ARG (logged, naming the field)
 * for anything the job.json path would refuse, UNSUPPORTED for federated/serve bodies. On
 * error *out is left freed. `what` names the message in errors ("SubmitJob from alice"). */
shoal_status shoal_job_spec_from_pb(const Shoal__V1__JobSpec *m, const char *what,
                                    shoal_job_spec *out);

#endif
