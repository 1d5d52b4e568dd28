#!/usr/bin/env bash
# test_configure.sh: the AUTO|ON|OFF contract of the SHOAL_* options, checked by running
# CMake configure in scratch build dirs: ON without the dependency is an error with a hint,
# AUTO without it builds without and says so, a bad value is refused.
set -uo pipefail
SRC="${SHOAL_SOURCE_DIR:?}"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass+1)); echo "[ ok ] $1"; else fail=$((fail+1)); echo "[FAIL] $1"; cat "$T/log"; fi; }
conf() { rm -rf "$T/b"; cmake -S "$SRC" -B "$T/b" "$@" >"$T/log" 2>&1; }

conf -DSHOAL_CUDA=ON -DCMAKE_CUDA_COMPILER=/nonexistent/nvcc -DSHOAL_RPC=OFF
rc=$?
check "CUDA=ON without nvcc fails" '[ $rc -ne 0 ]'
check "CUDA=ON error has a hint" 'grep -q "SHOAL_CUDA=ON but" "$T/log" && grep -q "Hint:" "$T/log"'

conf -DSHOAL_CUDA=AUTO -DCMAKE_CUDA_COMPILER=/nonexistent/nvcc -DSHOAL_RPC=OFF
rc=$?
check "CUDA=AUTO without nvcc configures" '[ $rc -eq 0 ]'
check "summary says building without CUDA" 'grep -q "CUDA   OFF  (AUTO: no CUDA toolkit found" "$T/log"'

conf -DSHOAL_CUDA=OFF -DSHOAL_MPI=ON -DCMAKE_DISABLE_FIND_PACKAGE_MPI=TRUE -DSHOAL_RPC=OFF
rc=$?
check "MPI=ON without MPI fails" '[ $rc -ne 0 ] && grep -q "SHOAL_MPI=ON but" "$T/log"'

conf -DSHOAL_CUDA=OFF -DSHOAL_MPI=AUTO -DCMAKE_DISABLE_FIND_PACKAGE_MPI=TRUE -DSHOAL_RPC=OFF
rc=$?
check "MPI=AUTO without MPI configures without" '[ $rc -eq 0 ] && grep -q "MPI    OFF  (AUTO" "$T/log"'

conf -DSHOAL_CUDA=OFF -DSHOAL_MPI=OFF -DSHOAL_RPC=OFF -DSHOAL_BLAS=OFF
rc=$?
check "all OFF configures" '[ $rc -eq 0 ] && grep -q "BLAS   OFF  (disabled" "$T/log"'

conf -DSHOAL_BLAS=maybe -DSHOAL_CUDA=OFF
rc=$?
check "bad option value refused" '[ $rc -ne 0 ] && grep -q "SHOAL_BLAS=maybe: expected AUTO, ON or OFF" "$T/log"'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
