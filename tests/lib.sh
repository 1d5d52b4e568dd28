# tests/lib.sh: shared helpers for shoal's shell tests (source it after setting -euo pipefail).
# Gives a scratch dir $T (removed on exit), pass/fail counters, ok/bad, `expect NAME RC CMD...`
# (runs CMD with stdout in $T/out and stderr in $T/err, checks the exit code) and `finish`,
# which prints the "N passed, N failed" line CTest and CI read and sets the exit status.
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "[ ok ] $1"; }
bad() { fail=$((fail+1)); echo "[FAIL] $1"; }
expect() { # expect NAME EXPECTED_RC CMD...
  local name=$1 want=$2; shift 2
  set +e; "$@" >"$T/out" 2>"$T/err"; local rc=$?; set -e
  if [ "$rc" -eq "$want" ]; then ok "$name"; else bad "$name (rc $rc, want $want)"; cat "$T/err"; fi
}
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; }
