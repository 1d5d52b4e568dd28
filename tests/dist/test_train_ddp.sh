#!/usr/bin/env bash
# test_train_ddp.sh: `shoal train` as users and the coordinator run it, on 1 and 2 ranks
# (label mpi; issue 4 items 3-5). A tiny GPT-2 (1 layer, 16 wide, GPT-2 vocabulary) on a small
# text set prepared with the real GPT-2 tokenizer (every target trained on, so micro-batches
# carry equal token counts):
#  - usage errors exit 2 naming the flag; a missing dataset exits 1;
#  - equivalence over 20 steps: 1 rank at 2B == 1 rank at B with accumulation 2 == 2 ranks at
#    B == 2 ranks at B with --zero 1: train losses within 1e-5 relative, and the validation
#    losses of 1 rank at 2B and 2 ranks at B (--eval-batches counts global batches);
#  - resume across ranks: 10 steps straight vs 5, stop, --resume auto for 5 more, with and
#    without ZeRO: the final model.safetensors are byte-identical; a checkpoint directory with
#    no DONE is not resumed from;
#  - kill -9 of rank 1 mid-run: rank 0 exits 75 within 60 s naming rank 1; relaunching with
#    --resume auto continues from the last complete checkpoint and finishes.
# Run in two parts (each < 60 s): `test_train_ddp.sh equiv` (usage, equivalence, --spec) and
# `test_train_ddp.sh resume` (resume, kill -9).
# Skipped (77) without mpirun or the GPT-2 vocabulary (deploy/install-deps.sh fetches it).
set -u
PART=${1:-all}
SHOAL="${SHOAL_BIN:?}"
VOCAB="${SHOAL_VOCAB_DIR:-$HOME/.cache/shoal/gpt2-vocab}"
command -v mpirun >/dev/null 2>&1 || { echo "skipped: mpirun not found"; exit 77; }
if [ ! -s "$VOCAB/encoder.json" ] || [ ! -s "$VOCAB/vocab.bpe" ]; then
  echo "skipped: no GPT-2 vocabulary in $VOCAB"; exit 77
fi
. "$(dirname "$0")/mpi_env.sh"
T=$(mktemp -d)
mpid=""
cleanup() { [ -n "$mpid" ] && kill -9 "$mpid" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "[ ok ] $1"; }
bad() { fail=$((fail+1)); echo "[FAIL] $1"; [ -f "$T/err" ] && sed 's/^/    | /' "$T/err" | tail -20; }
expect() { # expect NAME RC CMD...
  local name=$1 want=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ "$rc" -eq "$want" ]; then ok "$name"; else bad "$name (rc $rc, want $want)"; fi
}
MPI() { timeout -k 5 60 mpirun -np 2 "$@"; }

# ---- a tiny model and data set ----
if . "$(dirname "$0")/train_fixture.sh"; then ok "data prepare"; else bad "data prepare"; fi

if [ "$PART" != resume ]; then
# ---- usage ----
expect "unknown flag" 2 "$SHOAL" train "${C[@]}" --out "$T/u" --bogus 1
grep -q -- "--bogus" "$T/err" && ok "message names the flag" || bad "message names the flag"
expect "bad value" 2 "$SHOAL" train "${C[@]}" --out "$T/u" --batch 0
grep -q -- "--batch '0'" "$T/err" && ok "message names the value" || bad "message names the value"
expect "missing --out" 2 "$SHOAL" train "${C[@]}"
expect "--zero 2" 2 "$SHOAL" train "${C[@]}" --out "$T/u" --zero 2
expect "no such data" 1 "$SHOAL" train --init-config "$T/cfg.json" --data "$T/nope" --out "$T/u"
expect "help" 0 "$SHOAL" train --help
expect "DP-SGD on 2 ranks refused" 1 MPI "$SHOAL" train "${C[@]}" --out "$T/u" --steps 2 \
  --dp-clip 1 --dp-noise 1 --dp-delta 1e-5
grep -q "DP-SGD runs on one rank" "$T/err" && ok "refusal says DP-SGD is one rank" \
  || bad "refusal says DP-SGD is one rank"

# ---- equivalence ----
expect "1 rank, 2B" 0 "$SHOAL" train "${C[@]}" --steps 20 --batch 4 --out "$T/big"
grep -q "global batch 4 sequences" "$T/out" && ok "global batch printed" || bad "global batch printed"
expect "1 rank, B x accumulation 2" 0 "$SHOAL" train "${C[@]}" --steps 20 --batch 2 --grad-accum 2 --out "$T/acc"
expect "2 ranks, B" 0 MPI "$SHOAL" train "${C[@]}" --steps 20 --batch 2 --out "$T/ddp"
grep -q "2 ranks (mpi) x micro-batch 2 x accumulation 1 = global batch 4" "$T/out" \
  && ok "2 ranks: global batch printed once" || bad "2 ranks: global batch printed once"
expect "2 ranks, B, --zero 1" 0 MPI "$SHOAL" train "${C[@]}" --steps 20 --batch 2 --zero 1 --out "$T/zero"
[ -f "$T/zero/checkpoints/step-00000020/optim-rank-00001.safetensors" ] \
  && ok "ZeRO: each rank wrote its optimizer shard" || bad "ZeRO: each rank wrote its optimizer shard"
if python3 - "$T" <<'PY'
import sys
t = sys.argv[1]
def log(name, kind):
    out = []
    for line in open(f"{t}/{name}/train_log.txt"):
        f = line.split()
        if f[2] == kind: out.append(float(f[3]))
    return out
ref = log("big", "loss")
assert len(ref) == 20, ref
worst = 0.0
for name in ("acc", "ddp", "zero"):
    got = log(name, "loss")
    assert len(got) == 20, (name, got)
    for a, b in zip(ref, got):
        worst = max(worst, abs(a - b) / abs(a))
vb, vd = log("big", "val_loss"), log("ddp", "val_loss")
assert len(vb) == 2 and len(vb) == len(vd), (vb, vd)
for a, b in zip(vb, vd):
    worst = max(worst, abs(a - b) / abs(a))
print(f"    losses {ref[0]:.4f} -> {ref[-1]:.4f}; worst relative difference {worst:.2e}")
assert worst <= 1e-5
assert ref[-1] < ref[0] - 1.0
PY
then ok "loss trajectories equal within 1e-5 (2B, B x2 accumulation, 2 ranks, 2 ranks ZeRO)"
else bad "loss trajectories equal"; fi

# ---- the coordinator's job spec (finetune section), starting from the 2B run's model ----
cat >"$T/job.json" <<EOF
{"name": "ft", "ranks": 2, "output_dir": "$T/spec-out",
 "finetune": {"base_model_dir": "$T/big", "dataset_dir": "$T/ds", "learning_rate": 0.001,
              "max_steps": 4, "batch_size": 2, "seq_len": 16, "warmup_steps": 1,
              "checkpoint_every": 2, "seed": 5}}
EOF
sed 's/"seed": 5/"seed": 5, "lora_rank": 4/' "$T/job.json" >"$T/job-lora.json"
if ! "$SHOAL" train --spec /nonexistent 2>&1 | grep -q "not in this build"; then
  expect "--spec: 2 ranks" 0 MPI "$SHOAL" train --spec "$T/job.json" --threads 1
  grep -q "global batch 4 sequences of 16 tokens (64 tokens/step), 4 steps" "$T/out" \
    && ok "--spec: settings from the spec" || bad "--spec: settings from the spec"
  [ -f "$T/spec-out/checkpoints/step-00000004/DONE" ] && [ -f "$T/spec-out/model.safetensors" ] \
    && ok "--spec: checkpoints and model in output_dir" || bad "--spec: checkpoints and model in output_dir"
  expect "--spec: a flag overrides it" 0 MPI "$SHOAL" train --spec "$T/job.json" --steps 6 --threads 1
  grep -q "resumed from .*step-00000004 at step 4" "$T/err" && ok "--spec: a retry resumes (auto)" \
    || bad "--spec: a retry resumes (auto)"
  expect "--spec: LoRA refused" 2 "$SHOAL" train --spec "$T/job-lora.json"
  grep -q "lora_rank" "$T/err" && ok "--spec: refusal names lora_rank" || bad "--spec: refusal names lora_rank"
else
  echo "    (--spec not in this build: coordinator not built)"
fi

fi
if [ "$PART" != equiv ]; then
# ---- resume across ranks ----
for z in 0 1; do
  R=(--steps 10 --batch 2 --ckpt-every 5 --zero $z)
  expect "zero $z: 10 steps straight" 0 MPI "$SHOAL" train "${C[@]}" "${R[@]}" --out "$T/s$z"
  expect "zero $z: 5 steps, stop" 0 MPI "$SHOAL" train "${C[@]}" "${R[@]}" --stop-after 5 --out "$T/r$z"
  [ -f "$T/r$z/checkpoints/step-00000005/DONE" ] && [ ! -e "$T/r$z/model.safetensors" ] \
    && ok "zero $z: checkpoint 5 complete, no model yet" || bad "zero $z: checkpoint 5 complete"
  mkdir -p "$T/r$z/checkpoints/step-00000007"   # incomplete: no DONE
  expect "zero $z: resume auto" 0 MPI "$SHOAL" train "${C[@]}" "${R[@]}" --resume auto --out "$T/r$z"
  grep -q "resumed from .*step-00000005 at step 5" "$T/err" && ok "zero $z: resumed from step 5" \
    || bad "zero $z: resumed from step 5"
  cmp -s "$T/s$z/model.safetensors" "$T/r$z/model.safetensors" \
    && ok "zero $z: resumed model == uninterrupted model, byte for byte" \
    || bad "zero $z: resumed model == uninterrupted model"
done
expect "resume with another world size refused" 1 "$SHOAL" train "${C[@]}" --steps 10 --batch 2 \
  --ckpt-every 5 --resume "$T/r0/checkpoints/step-00000005" --out "$T/r0"
grep -q "geometry" "$T/err" && ok "refusal names the geometry" || bad "refusal names the geometry"

# ---- kill -9 of a rank ----
K=(--steps 3000 --batch 2 --ckpt-every 5 --eval-every 0)
rm -f "$T"/pid.* "$T"/rc.*
mpirun --enable-recovery -np 2 sh -c '"$0" train "$@" & p=$!; echo $p >'"$T"'/pid.$OMPI_COMM_WORLD_RANK; wait $p; echo $? >'"$T"'/rc.$OMPI_COMM_WORLD_RANK' \
  "$SHOAL" "${C[@]}" "${K[@]}" --out "$T/k" >"$T/out" 2>"$T/err" &
mpid=$!
i=0; while [ ! -f "$T/k/checkpoints/step-00000010/DONE" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done
if [ -f "$T/k/checkpoints/step-00000010/DONE" ] && [ -s "$T/pid.1" ]; then
  t0=$(date +%s.%N)
  kill -9 "$(cat "$T/pid.1")"
  i=0; while [ ! -s "$T/rc.0" ] && [ $i -lt 1300 ]; do sleep 0.05; i=$((i+1)); done
  t1=$(date +%s.%N)
  el=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  rc0=$(cat "$T/rc.0" 2>/dev/null || echo none)
  echo "    rank 0 exit status $rc0 after $el s"
  if [ "$rc0" = 75 ] && awk -v e="$el" 'BEGIN { exit !(e < 60) }' && grep -q "lost rank 1" "$T/err"; then
    ok "kill -9 of rank 1: rank 0 exits 75 in $el s naming rank 1"
  else bad "kill -9 of rank 1: rank 0 status $rc0 after $el s"; fi
else
  bad "kill run never reached checkpoint 10"
fi
timeout 30 tail --pid="$mpid" -f /dev/null; kill -9 "$mpid" 2>/dev/null; mpid=""
last=$(ls "$T/k/checkpoints" | sort | tail -1)
n=$(ls -d "$T"/k/checkpoints/*/DONE | wc -l)
echo "    checkpoints: $n complete, newest directory $last"
expect "relaunch --resume auto" 0 MPI "$SHOAL" train "${C[@]}" "${K[@]}" --resume auto --stop-after $(( n * 5 + 5 )) --out "$T/k"
grep -q "resumed from .*step-$(printf %08d $(( n * 5 ))) at step $(( n * 5 ))" "$T/err" \
  && ok "relaunch resumed from the last complete checkpoint (step $(( n * 5 )))" \
  || bad "relaunch resumed from the last complete checkpoint"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
