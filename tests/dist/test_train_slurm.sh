#!/usr/bin/env bash
# test_train_slurm.sh: deploy/slurm/finetune.sbatch on a real single-node Slurm
# (tests/harness/slurm.sh): sbatch a 2-rank `shoal train` (srun --mpi=pmix), wait for
# COMPLETED, then check the output model directory loads (a 1-step `shoal train --model` from
# it) and that the loss fell (issue 4 item 6). Label slurm; exits 77 without Slurm, root or the
# GPT-2 vocabulary.
set -u
SHOAL="${SHOAL_BIN:?}"
VOCAB="${SHOAL_VOCAB_DIR:-$HOME/.cache/shoal/gpt2-vocab}"
D=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$D/../.." && pwd)
if [ ! -s "$VOCAB/encoder.json" ] || [ ! -s "$VOCAB/vocab.bpe" ]; then
  echo "skipped: no GPT-2 vocabulary in $VOCAB"; exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/shoal-train-slurm-XXXXXX")
chmod 755 "$T"
cleanup() { bash "$SRC/tests/harness/slurm.sh" stop "$T/slurm"; rm -rf "$T"; }
trap cleanup EXIT
out=$(bash "$SRC/tests/harness/slurm.sh" start "$T/slurm")
rc=$?
[ $rc -eq 0 ] || exit $rc
eval "$out"
export SLURM_CONF PATH=$PATH:/usr/sbin
. "$D/mpi_env.sh"
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "[ ok ] $1"; }
bad() { fail=$((fail+1)); echo "[FAIL] $1"; }
. "$D/train_fixture.sh" || { echo "data prepare failed"; exit 1; }

export SHOAL_BIN="$SHOAL"
jid=$(sbatch --parsable --ntasks=2 --nodes=1 --chdir="$T" --output="$T/job-%j.out" \
  "$SRC/deploy/slurm/finetune.sbatch" "${C[@]}" --steps 20 --batch 2 --ckpt-every 10 --out "$T/out")
if [ -n "$jid" ]; then ok "sbatch accepted job $jid"; else bad "sbatch"; echo "$pass passed, $fail failed"; exit 1; fi
state=""
for _ in $(seq 1 300); do
  state=$(scontrol show job "$jid" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
  case "$state" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
  sleep 0.2
done
if [ "$state" = COMPLETED ]; then ok "job $jid COMPLETED"
else bad "job $jid ended $state"; sed 's/^/    | /' "$T"/job-*.out | tail -30; fi
grep -q "2 ranks (mpi) x micro-batch 2 x accumulation 1 = global batch 4" "$T"/job-*.out \
  && ok "2 ranks under srun --mpi=pmix" || bad "2 ranks under srun --mpi=pmix"
if python3 - "$T/out/train_log.txt" <<'PY'
import sys
l = [float(x.split()[3]) for x in open(sys.argv[1]) if x.split()[2] == "loss"]
print(f"    loss {l[0]:.4f} -> {l[-1]:.4f} over {len(l)} steps")
assert len(l) == 20 and l[-1] < l[0] - 1.0
PY
then ok "loss fell"; else bad "loss fell"; fi
if "$SHOAL" train --model "$T/out" --data "$T/ds" --out "$T/again" --steps 1 --warmup 0 --batch 2 --seq 16 \
     --threads 1 >"$T/again.log" 2>&1; then ok "the output model directory loads"
else bad "the output model directory loads"; cat "$T/again.log"; fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
