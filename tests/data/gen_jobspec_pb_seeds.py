#!/usr/bin/python3
"""gen_jobspec_pb_seeds.py: write the seed corpus of tests/fuzz/fuzz_jobspec_pb.c into
tests/data/jobspec_pb: serialized shoal.v1.SubmitJobRequest messages, valid and invalid, made
with Python's protobuf from proto/shoal.proto (compiled here with grpc_tools). The outputs are
committed; CI does not run this. Usage: /usr/bin/python3 tests/data/gen_jobspec_pb_seeds.py"""
import os, sys, tempfile, importlib

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
out = os.path.join(here, "jobspec_pb")
tmp = tempfile.mkdtemp()
from grpc_tools import protoc
if protoc.main(["protoc", "-I" + os.path.join(root, "proto"), "--python_out=" + tmp,
                os.path.join(root, "proto", "shoal.proto")]) != 0:
    sys.exit("protoc failed")
sys.path.insert(0, tmp)
pb = importlib.import_module("shoal_pb2")

def cmd(argv, **kw):
    r = pb.SubmitJobRequest()
    r.spec.command.argv.extend(argv)
    for k, v in kw.items():
        setattr(r.spec, k, v)
    return r

seeds = {}
seeds["cmd_ok"] = cmd(["sh", "-c", "echo hi"], name="hello", ranks=2)
r = cmd(["true"], ranks=1)
r.spec.command.env.extend(["A=1", "B_2=two words"])
seeds["cmd_env"] = r
r = pb.SubmitJobRequest()
s = r.spec
s.name = "ft"; s.kind = pb.JOB_KIND_FINETUNE; s.ranks = 2; s.gpus_per_rank = 1
s.launcher = pb.LAUNCHER_SLURM; s.output_dir = "/out"; s.max_retries = 2
s.finetune.base_model_dir = "/m"; s.finetune.dataset_dir = "/d"
h = s.finetune.hyper
h.learning_rate = 3e-4; h.max_steps = 1000; h.batch_size = 8; h.seq_len = 512; h.lr_schedule = "cosine"
s.finetune.dp.enabled = True; s.finetune.dp.max_grad_norm = 1.0; s.finetune.dp.noise_multiplier = 1.1
seeds["finetune_ok"] = r
seeds["bad_ranks"] = cmd(["true"], ranks=0)
seeds["bad_kind_mismatch"] = cmd(["true"], kind=pb.JOB_KIND_FINETUNE)
seeds["bad_no_body"] = pb.SubmitJobRequest(spec=pb.JobSpec(name="x", ranks=1))
seeds["bad_newline_arg"] = cmd(["echo\nx"])
seeds["bad_relative_out"] = cmd(["true"], output_dir="rel")
r = pb.SubmitJobRequest(); r.spec.serve.model_dir = "/m"
seeds["unsupported_serve"] = r
r = pb.SubmitJobRequest(); r.spec.CopyFrom(seeds["finetune_ok"].spec); r.spec.finetune.hyper.lr_schedule = "step"
seeds["bad_lr_schedule"] = r
os.makedirs(out, exist_ok=True)
for name, msg in seeds.items():
    with open(os.path.join(out, name + ".bin"), "wb") as f:
        f.write(msg.SerializeToString())
raw = seeds["cmd_ok"].SerializeToString()
with open(os.path.join(out, "truncated.bin"), "wb") as f:
    f.write(raw[:-3])
with open(os.path.join(out, "garbage.bin"), "wb") as f:
    f.write(b"\xff\xff\xff\xff\x0f\x08\x01")
print("wrote", len(seeds) + 2, "seeds to", out)
