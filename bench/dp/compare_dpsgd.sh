#!/bin/bash
# compare_dpsgd.sh: before/after DP-SGD step ratios side by side, under the same load.
# Runs an older build's bench_dpsgd/bench_dp (first argument: its build directory, e.g. from
# `git archive <commit> | tar -x -C /tmp/old` then a RelWithDebInfo build of bench_dpsgd and
# bench_dp there) and this tree's, alternately, twice per thread count. Not run in CI; the
# figures go to docs/BENCHMARKS.md ("DP-SGD step").
# Usage: bench/dp/compare_dpsgd.sh OLD_BUILD_DIR [NEW_BUILD_DIR (default: build)]
set -euo pipefail
old=${1:?usage: compare_dpsgd.sh OLD_BUILD_DIR [NEW_BUILD_DIR]}
new=${2:-build}
for t in 2 1; do
  for rep in 1 2; do
    echo "== threads $t rep $rep  $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "-- before"
    OMP_WAIT_POLICY=passive "$old/bench/dp/bench_dpsgd" --model tiny --B 8 --T 64 --steps 41 \
      --threads "$t" | grep noise
    echo "-- after"
    OMP_WAIT_POLICY=passive "$new/bench/dp/bench_dpsgd" --model tiny --B 8 --T 64 --steps 41 \
      --threads "$t" | grep -E "noise|#"
  done
done
echo "== sampler $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "-- before"; "$old/bench/dp/bench_dp" 1.0 | sed -n 3,10p
echo "-- after"; "$new/bench/dp/bench_dp" 1.0 | sed -n 3,10p
