#!/usr/bin/python3
"""interop_jobs.py: a Python client (Debian's python3-grpcio + grpc_tools, stubs compiled at run
time from proto/shoal.proto) against the real `shoal coordinator` on loopback.

Submits, lists and watches jobs; acts as a rank on RunService (progress and checkpoint reports
with the attempt's run token, refused with a wrong one); and sends malformed, truncated,
oversized and absurd requests, which must get INVALID_ARGUMENT (or RESOURCE_EXHAUSTED) with a
reason while the server keeps serving. Label interop.
usage: interop_jobs.py SHOAL_BINARY PROTO_DIR
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc

shoal_bin, proto_dir = sys.argv[1], sys.argv[2]
gen = tempfile.mkdtemp(prefix="shoal-interop-jobs-")
if protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={gen}", f"--grpc_python_out={gen}",
                os.path.join(proto_dir, "shoal.proto")]) != 0:
    sys.exit("protoc failed")
sys.path.insert(0, gen)
import shoal_pb2 as pb  # noqa: E402
import shoal_pb2_grpc as pbg  # noqa: E402

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"[ ok ] {name}", file=sys.stderr)
    else:
        failed += 1
        print(f"[FAIL] {name} {detail}", file=sys.stderr)


def error_of(fn):
    try:
        fn()
        return None, ""
    except grpc.RpcError as e:
        return e.code(), e.details() or ""


data = os.path.join(gen, "data")
log = open(os.path.join(gen, "coord.log"), "w")
coord = subprocess.Popen([shoal_bin, "coordinator", "--listen", "127.0.0.1:0", "--data-dir", data,
                          "--slots", "2"], stdout=log, stderr=subprocess.STDOUT)
addr_file = os.path.join(data, "coordinator.addr")
for _ in range(100):
    if os.path.exists(addr_file) and os.path.getsize(addr_file) > 0:
        break
    time.sleep(0.1)
addr = open(addr_file).read().strip()
token = open(os.path.join(data, "token")).read().strip()
md = [("authorization", f"Bearer {token}")]
chan = grpc.insecure_channel(addr)
jobs = pbg.JobServiceStub(chan)
runs = pbg.RunServiceStub(chan)

try:
    # --- a job that acts as a rank: prints its run identity, waits for a go file, exits 0
    go = os.path.join(gen, "go")
    spec = pb.JobSpec(name="py-job", ranks=1)
    spec.command.argv.extend(["sh", "-c", "echo ident $SHOAL_JOB_ID $SHOAL_ATTEMPT $SHOAL_RUN_TOKEN; "
                              f"while [ ! -e {go} ]; do sleep 0.05; done; echo done"])
    resp = jobs.SubmitJob(pb.SubmitJobRequest(spec=spec), metadata=md, timeout=10)
    jid = resp.id
    check("SubmitJob returns an id", jid > 0)
    again = jobs.SubmitJob(pb.SubmitJobRequest(spec=spec, idempotency_key="k1"), metadata=md).id
    same = jobs.SubmitJob(pb.SubmitJobRequest(spec=spec, idempotency_key="k1"), metadata=md).id
    check("idempotency key returns the same id", again == same and again != jid)
    jobs.CancelJob(pb.CancelJobRequest(id=again), metadata=md)

    ident = None
    for _ in range(200):
        for line in jobs.GetLogs(pb.GetLogsRequest(id=jid), metadata=md, timeout=10):
            if line.text.startswith("ident "):
                ident = line.text.split()
        if ident:
            break
        time.sleep(0.05)
    check("rank sees its job id, attempt and run token", ident is not None and
          ident[1] == str(jid) and ident[2] == "0" and len(ident[3]) == 32, str(ident))
    run = pb.RunIdentity(job_id=jid, attempt=0, rank=0, run_token=ident[3] if ident else "")
    bad_run = pb.RunIdentity(job_id=jid, attempt=0, rank=0, run_token="0" * 32)
    code, _ = error_of(lambda: runs.ReportProgress(pb.ReportProgressRequest(
        run=bad_run, progress=pb.Progress(step=1)), timeout=10))
    check("RunService refuses a wrong run token", code == grpc.StatusCode.UNAUTHENTICATED, str(code))
    r = runs.ReportProgress(pb.ReportProgressRequest(
        run=run, progress=pb.Progress(step=5, total_steps=10, loss=2.5, tokens_per_s=1000, eta_s=3)),
        timeout=10)
    check("ReportProgress accepted, no cancel", r.cancel_requested is False)
    runs.ReportCheckpoint(pb.ReportCheckpointRequest(run=run, step=5, path="/ckpt/step-5"),
                          timeout=10)
    job = jobs.GetJob(pb.GetJobRequest(id=jid), metadata=md).job
    check("GetJob shows the progress and checkpoint", job.progress.step == 5 and
          job.progress.total_steps == 10 and job.last_checkpoint == "/ckpt/step-5"
          and job.state == pb.JOB_STATE_RUNNING, str(job))

    # WatchJob: current state first, then the end
    stream = jobs.WatchJob(pb.WatchJobRequest(id=jid), metadata=md, timeout=60)
    first = next(stream)
    check("WatchJob starts with the current state", first.state == pb.JOB_STATE_RUNNING)
    open(go, "w").close()
    states = [e.state for e in stream]
    check("WatchJob ends with SUCCEEDED", states and states[-1] == pb.JOB_STATE_SUCCEEDED, str(states))

    lst = jobs.ListJobs(pb.ListJobsRequest(page_size=1), metadata=md)
    check("ListJobs pages", len(lst.jobs) == 1 and lst.next_page_token != "")
    lst2 = jobs.ListJobs(pb.ListJobsRequest(page_size=1, page_token=lst.next_page_token), metadata=md)
    check("ListJobs second page", len(lst2.jobs) == 1 and lst2.jobs[0].id > lst.jobs[0].id)
    done = jobs.ListJobs(pb.ListJobsRequest(states=[pb.JOB_STATE_SUCCEEDED]), metadata=md)
    check("ListJobs filters by state", [j.id for j in done.jobs] == [jid])

    # --- refusals; the server keeps serving after each
    def submit(s):
        return lambda: jobs.SubmitJob(pb.SubmitJobRequest(spec=s), metadata=md, timeout=10)

    bad = pb.JobSpec(ranks=0)
    bad.command.argv.append("true")
    code, why = error_of(submit(bad))
    check("ranks 0: INVALID_ARGUMENT naming the field", code == grpc.StatusCode.INVALID_ARGUMENT
          and "ranks" in why, f"{code} {why}")
    bad = pb.JobSpec(ranks=2**31 - 1)
    bad.command.argv.append("true")
    code, _ = error_of(submit(bad))
    check("absurd ranks: INVALID_ARGUMENT", code == grpc.StatusCode.INVALID_ARGUMENT)
    bad = pb.JobSpec(ranks=1, output_dir="relative/dir")
    bad.command.argv.append("true")
    code, why = error_of(submit(bad))
    check("relative path: INVALID_ARGUMENT", code == grpc.StatusCode.INVALID_ARGUMENT and "absolute" in why, why)
    bad = pb.JobSpec(ranks=1)
    code, _ = error_of(submit(bad))
    check("no body: INVALID_ARGUMENT", code == grpc.StatusCode.INVALID_ARGUMENT)
    # an enum number the schema does not name, written on the wire by hand
    ok_spec = pb.JobSpec(ranks=1)
    ok_spec.command.argv.append("true")
    raw = pb.SubmitJobRequest(spec=ok_spec).SerializeToString()
    spec_bytes = ok_spec.SerializeToString() + bytes([0x10, 0x63])  # field 2 (kind) = 99
    raw_enum = bytes([0x0A, len(spec_bytes)]) + spec_bytes
    raw_call = chan.unary_unary("/shoal.v1.JobService/SubmitJob",
                                request_serializer=None, response_deserializer=None)
    code, _ = error_of(lambda: raw_call(raw_enum, metadata=md, timeout=10))
    check("unknown enum value: INVALID_ARGUMENT", code == grpc.StatusCode.INVALID_ARGUMENT, str(code))
    code, _ = error_of(lambda: raw_call(raw[:-2], metadata=md, timeout=10))
    check("truncated message: INVALID_ARGUMENT", code == grpc.StatusCode.INVALID_ARGUMENT, str(code))
    code, _ = error_of(lambda: raw_call(b"\xff\xff\xff\xff\xff\xff", metadata=md, timeout=10))
    check("garbage: INVALID_ARGUMENT", code == grpc.StatusCode.INVALID_ARGUMENT, str(code))
    big = pb.JobSpec(ranks=1)
    big.command.argv.extend(["x" * 4000] * 5000)
    code, _ = error_of(submit(big))
    check("oversized request refused", code in (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                                grpc.StatusCode.INVALID_ARGUMENT), str(code))
    code, _ = error_of(lambda: jobs.GetJob(pb.GetJobRequest(id=0), metadata=md, timeout=10))
    check("id 0: INVALID_ARGUMENT", code == grpc.StatusCode.INVALID_ARGUMENT)
    code, _ = error_of(lambda: jobs.GetJob(pb.GetJobRequest(id=424242), metadata=md, timeout=10))
    check("unknown job: NOT_FOUND", code == grpc.StatusCode.NOT_FOUND)
    code, _ = error_of(lambda: jobs.ListJobs(pb.ListJobsRequest(page_size=100000), metadata=md))
    check("page_size too big: INVALID_ARGUMENT", code == grpc.StatusCode.INVALID_ARGUMENT)
    code, _ = error_of(lambda: jobs.ListJobs(pb.ListJobsRequest(), timeout=10))
    check("no token: UNAUTHENTICATED", code == grpc.StatusCode.UNAUTHENTICATED)
    code, _ = error_of(lambda: jobs.ListJobs(pb.ListJobsRequest(),
                                             metadata=[("authorization", "Bearer nope")]))
    check("wrong token: UNAUTHENTICATED", code == grpc.StatusCode.UNAUTHENTICATED)
    still = jobs.GetJob(pb.GetJobRequest(id=jid), metadata=md, timeout=10).job
    check("server still serving after the refusals", still.state == pb.JOB_STATE_SUCCEEDED)
finally:
    coord.send_signal(signal.SIGTERM)
    try:
        rc = coord.wait(timeout=20)
    except subprocess.TimeoutExpired:
        coord.kill()
        rc = -9
    check("coordinator exits cleanly on SIGTERM", rc == 0, str(rc))
    if failed:
        log.flush()
        print(open(os.path.join(gen, "coord.log")).read()[-3000:], file=sys.stderr)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
