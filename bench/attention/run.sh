#!/usr/bin/env bash
# run.sh: one command on the GPU machine: our flash attention and PyTorch SDPA (flash backend)
# on the same shapes in the same run, then a side-by-side table with our share of SDPA's rate.
# usage: bench/attention/run.sh [BUILD_DIR=build-gpu] [REPS=30]; exits 77 without a GPU.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build-gpu}"
[[ -d "$BUILD" ]] && BUILD="$(cd "$BUILD" && pwd)"
cd "$ROOT"
REPS="${2:-30}"
BIN="$BUILD/bench/attention/bench_attention"
if [[ ! -x "$BIN" ]]; then
  echo "run.sh: $BIN not built (cmake --build $BUILD --target bench_attention)" >&2
  exit 1
fi
ours=$("$BIN" "$REPS"); rc=$?
echo "$ours"
[[ $rc -eq 77 ]] && exit 77
[[ $rc -ne 0 ]] && exit $rc
base=$(python3 bench/attention/sdpa_baseline.py "$REPS"); rc=$?
echo "$base"
[[ $rc -ne 0 ]] && exit $rc
echo
echo "pass  B  H    T    D | ours ms  TFLOP/s | sdpa ms  TFLOP/s | ours/sdpa"
printf '%s\n%s\n' "$ours" "$base" | awk '
  $1 == "ours" && ($2 == "fwd" || $2 == "bwd") { k = $2 " " $3 " " $4 " " $5 " " $6; oms[k] = $7; otf[k] = $8; keys[++n] = k }
  $1 == "sdpa" { k = $2 " " $3 " " $4 " " $5 " " $6; sms[k] = $7; stf[k] = $8 }
  END { for (i = 1; i <= n; i++) { k = keys[i]; split(k, f, " ");
          printf "%s %2d %2d %4d %4d | %7.3f %8.1f | %7.3f %8.1f | %5.1f%%\n", f[1], f[2], f[3], f[4], f[5],
                 oms[k], otf[k], sms[k], stf[k], (stf[k] > 0 ? 100 * otf[k] / stf[k] : 0) } }'
