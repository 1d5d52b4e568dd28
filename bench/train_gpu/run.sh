#!/usr/bin/env bash
# run.sh: bench_train_gpu (ours) and torch_baseline.py (PyTorch) on the same device and
# geometry, then one table line each. usage: bench/train_gpu/run.sh BUILD_DIR [B] [T] [ACCUM]
# Exit 77 when there is no device (either side skips).
set -uo pipefail
BUILD="${1:?build dir}"
B="${2:-8}"; T="${3:-1024}"; K="${4:-1}"
HERE="$(cd "$(dirname "$0")" && pwd)"
"$BUILD/bench/train_gpu/bench_train_gpu" --B "$B" --T "$T" --accum "$K" | tee /tmp/shoal-train-gpu.$$
rc=${PIPESTATUS[0]}
[ "$rc" -eq 77 ] && exit 77
python3 "$HERE/torch_baseline.py" --B "$B" --T "$T" --accum "$K" | tee /tmp/shoal-train-torch.$$
prc=${PIPESTATUS[0]}
echo "== summary"
grep -E "^GPT-2 124M|^device=" /tmp/shoal-train-gpu.$$
grep -E "^torch [0-9]" /tmp/shoal-train-torch.$$
rm -f /tmp/shoal-train-gpu.$$ /tmp/shoal-train-torch.$$
[ "$rc" -eq 0 ] && { [ "$prc" -eq 0 ] || [ "$prc" -eq 77 ]; }
