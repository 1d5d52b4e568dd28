#!/usr/bin/env bash
# memcheck.sh: the attention cases of test_ops_cuda under compute-sanitizer memcheck (label
# gpu). Exit 77 without a device or without compute-sanitizer (the toolkit on CI machines has
# none). usage: memcheck.sh path/to/test_ops_cuda
set -uo pipefail
bin="$1"
cs=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [[ -z "$cs" ]]; then echo "skipped: compute-sanitizer not found"; exit 77; fi
"$bin" __probe_only__ >/dev/null 2>&1; rc=$?
if [[ $rc -eq 77 ]]; then echo "skipped: no CUDA device"; exit 77; fi
exec "$cs" --tool memcheck --error-exitcode 1 --leak-check full "$bin" attention
