#!/usr/bin/env bash
# test_train_coordinator.sh: a finetune job through the real coordinator (local launcher,
# `mpirun -np 2 shoal train --spec`): it must end SUCCEEDED, with the progress (step 6/6) and
# the last checkpoint reported by rank 0 over RunService, each rank's exit report in the log,
# and the model registered from output_dir. Label mpi; exits 77 without mpirun, the
# coordinator (SHOAL_RPC off) or the GPT-2 vocabulary.
set -u
SHOAL="${SHOAL_BIN:?}"
VOCAB="${SHOAL_VOCAB_DIR:-$HOME/.cache/shoal/gpt2-vocab}"
D=$(cd "$(dirname "$0")" && pwd)
command -v mpirun >/dev/null 2>&1 || { echo "skipped: mpirun not found"; exit 77; }
"$SHOAL" --help 2>&1 | grep -q "coordinator" || { echo "skipped: no coordinator in this build"; exit 77; }
if [ ! -s "$VOCAB/encoder.json" ] || [ ! -s "$VOCAB/vocab.bpe" ]; then
  echo "skipped: no GPT-2 vocabulary in $VOCAB"; exit 77
fi
. "$D/mpi_env.sh"
T=$(mktemp -d)
coord_pid=""
cleanup() {
  if [ -n "$coord_pid" ]; then
    kill "$coord_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$coord_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$coord_pid" 2>/dev/null
  fi
  rm -rf "$T"
}
trap cleanup EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "[ ok ] $1"; }
bad() { fail=$((fail+1)); echo "[FAIL] $1"; }
. "$D/train_fixture.sh" || { echo "data prepare failed"; exit 1; }
"$SHOAL" train "${C[@]}" --steps 2 --warmup 0 --batch 2 --out "$T/base" >/dev/null 2>&1 \
  || { echo "base model failed"; exit 1; }

# the coordinator launches `shoal` from PATH
export PATH="$(dirname "$SHOAL"):$PATH"
"$SHOAL" coordinator --listen 127.0.0.1:0 --data-dir "$T/coord" --slots 2 >"$T/coord.log" 2>&1 &
coord_pid=$!
for _ in $(seq 1 100); do [ -s "$T/coord/coordinator.addr" ] && break; sleep 0.1; done
export SHOAL_COORDINATOR SHOAL_TOKEN_FILE=$T/coord/token
SHOAL_COORDINATOR=$(cat "$T/coord/coordinator.addr" 2>/dev/null)
cat >"$T/job.json" <<EOF
{"name": "ft", "ranks": 2, "output_dir": "$T/out",
 "finetune": {"base_model_dir": "$T/base", "dataset_dir": "$T/ds", "learning_rate": 0.001,
              "max_steps": 6, "batch_size": 2, "seq_len": 16, "warmup_steps": 1,
              "checkpoint_every": 3, "seed": 5}}
EOF
id=$("$SHOAL" submit "$T/job.json" 2>"$T/err")
if [ -n "$id" ]; then ok "submitted job $id"; else bad "submit"; cat "$T/err" "$T/coord.log"; exit 1; fi
st=""
for _ in $(seq 1 600); do
  st=$("$SHOAL" job "$id" 2>/dev/null | awk '/^state:/ {print $2}')
  case "$st" in succeeded|failed|cancelled) break ;; esac
  sleep 0.1
done
"$SHOAL" job "$id" >"$T/job.txt" 2>&1
"$SHOAL" logs "$id" >"$T/logs.txt" 2>&1
if [ "$st" = succeeded ]; then ok "job SUCCEEDED"; else bad "job ended $st"; cat "$T/job.txt"; tail -30 "$T/logs.txt"; fi
grep -q "progress: *step 6/6" "$T/job.txt" && ok "progress reported (step 6/6)" || { bad "progress reported"; cat "$T/job.txt"; }
grep -q "checkpoint: *$T/out/checkpoints/step-00000006" "$T/job.txt" \
  && ok "checkpoint reported" || bad "checkpoint reported"
[ "$(grep -c "reported exit code 0" "$T/logs.txt")" -ge 2 ] && ok "both ranks reported their exit" \
  || { bad "both ranks reported their exit"; tail -20 "$T/logs.txt"; }
[ -f "$T/out/model.safetensors" ] && ok "model written to output_dir" || bad "model written to output_dir"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
