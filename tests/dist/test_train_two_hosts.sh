#!/usr/bin/env bash
# test_train_two_hosts.sh: `shoal train` with its 2 ranks on two emulated hosts (network
# namespaces joined by veth, MPI and the liveness ring over TCP; two_hosts.sh --exec) must give
# the loss trajectory of 1 rank at twice the micro-batch, within 1e-5 relative over 20 steps,
# with and without --zero 1 (issue 4 item 7). Label mpi. Exits 77 where `ip netns` is not
# permitted or mpirun / the GPT-2 vocabulary are missing.
set -u
SHOAL="${SHOAL_BIN:?}"
VOCAB="${SHOAL_VOCAB_DIR:-$HOME/.cache/shoal/gpt2-vocab}"
D=$(cd "$(dirname "$0")" && pwd)
command -v mpirun >/dev/null 2>&1 || { echo "skipped: mpirun not found"; exit 77; }
if [ ! -s "$VOCAB/encoder.json" ] || [ ! -s "$VOCAB/vocab.bpe" ]; then
  echo "skipped: no GPT-2 vocabulary in $VOCAB"; exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "[ ok ] $1"; }
bad() { fail=$((fail+1)); echo "[FAIL] $1"; sed 's/^/    | /' "$T/out" | tail -20; }
. "$D/train_fixture.sh" || { echo "data prepare failed"; exit 1; }
"$SHOAL" train "${C[@]}" --steps 20 --batch 4 --out "$T/big" >"$T/out" 2>&1 \
  && ok "1 rank at 2B" || bad "1 rank at 2B"
for z in 0 1; do
  bash "$D/two_hosts.sh" --exec "$SHOAL" train "${C[@]}" --steps 20 --batch 2 --zero $z \
    --out "$T/h$z" >"$T/out" 2>&1
  rc=$?
  if [ $rc -eq 77 ]; then cat "$T/out"; exit 77; fi
  if [ $rc -eq 0 ] && grep -q "2 ranks (mpi)" "$T/out"; then ok "zero $z: 2 ranks on h1 + h2"
  else bad "zero $z: 2 ranks on h1 + h2 (status $rc)"; continue; fi
  if python3 - "$T/big/train_log.txt" "$T/h$z/train_log.txt" <<'PY'
import sys
def log(p):
    return [float(l.split()[3]) for l in open(p) if l.split()[2] in ("loss", "val_loss")]
a, b = log(sys.argv[1]), log(sys.argv[2])
assert len(a) == 22 and len(a) == len(b), (len(a), len(b))
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"    worst relative difference {worst:.2e} over {len(a)} losses")
assert worst <= 1e-5
PY
  then ok "zero $z: losses equal 1 rank at 2B within 1e-5"; else bad "zero $z: losses equal"; fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
