#!/usr/bin/env bash
# test.sh: install dependencies, build with warnings as errors, and run every test label but
# gpu and bench; then an ASan+UBSan build (clang, with the libFuzzer targets) runs the unit
# and fuzz tests. This is the README's test command and all that .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)
start=$(date +%s)

bash deploy/install-deps.sh

echo "== build (gcc, -Werror)"
cmake -S . -B build -DSHOAL_WERROR=ON >build.configure.log 2>&1 || { cat build.configure.log; exit 1; }
grep -A8 "configuration:" build.configure.log || true
cmake --build build -j"$JOBS"

echo "== tests (all labels but gpu and bench)"
ctest --test-dir build -LE 'gpu|bench' --output-on-failure -j"$JOBS"

echo "== build (clang, ASan+UBSan, libFuzzer)"
CC=clang cmake -S . -B build-asan -DSHOAL_WERROR=ON -DSHOAL_SANITIZE=address,undefined \
  -DSHOAL_FUZZ=ON -DSHOAL_CUDA=OFF >build-asan.configure.log 2>&1 \
  || { cat build-asan.configure.log; exit 1; }
cmake --build build-asan -j"$JOBS"

echo "== tests under ASan+UBSan (unit, fuzz)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -L 'unit|fuzz' --output-on-failure -j"$JOBS"

echo "== all tests passed in $(( $(date +%s) - start )) s"
