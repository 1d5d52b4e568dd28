#!/usr/bin/env bash
# gpu_check.sh: everything the GPU machine should run, in one call (device METHOD.md: build,
# check, time in one command; short table last, full logs under $OUT).
#   1. configure + build with the .gpu-deps prefix (deploy/gpu-deps.sh, carried along)
#   2. unit + gpu tests (every CUDA op vs the CPU table; SHOAL_EXPECT_GPU=1 so a missing device
#      fails instead of skipping), compute-sanitizer memcheck of the attention kernels
#   3. bench/attention/run.sh: ours vs PyTorch SDPA (flash), side by side
#   4. bench/train_gpu/run.sh: GPT-2 124M bf16 training at B=8 T=1024, tok/s and MFU, beside
#      the same step in PyTorch
#   5. the kernel-lab candidates (kernels/dev/*_mma): self-check and timing vs the product
# usage (repository root, on the GPU machine): bash bench/attention/gpu_check.sh [REPS]
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
REPS="${1:-30}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"
t0=$(date +%s)
cmake -S . -B build-gpu $(bash deploy/gpu-deps.sh --cmake-args) -DSHOAL_WERROR=ON \
  > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build build-gpu -j"$(nproc)" > "$OUT/build.log" 2>&1 || { grep -E "error" -A3 "$OUT/build.log" | head -40; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
SHOAL_EXPECT_GPU=1 ctest --test-dir build-gpu -L 'unit|gpu' -E memcheck --output-on-failure \
  > "$OUT/tests.log" 2>&1; trc=$?
grep -E "tests passed|tests failed|Failed|\*\*\*|rel err" "$OUT/tests.log" | head -40
ctest --test-dir build-gpu -R memcheck --output-on-failure > "$OUT/memcheck.log" 2>&1; mrc=$?
grep -E "ERROR SUMMARY|Passed|Failed|Skipped|Not Run" "$OUT/memcheck.log" | head -5
bash bench/attention/run.sh build-gpu "$REPS" > "$OUT/bench.txt" 2>&1; brc=$?
cat "$OUT/bench.txt"
bash bench/train_gpu/run.sh build-gpu 8 1024 1 > "$OUT/train_gpu.txt" 2>&1; grc=$?
sed -n '/== summary/,$p' "$OUT/train_gpu.txt"; [ $grc -ne 0 ] && tail -20 "$OUT/train_gpu.txt"
# 5. the kernel-lab candidates (kernels/dev): self-check, then timing beside the product kernels
lrc=0
for args in "8 12 1024 64" "8 6 1024 128"; do
  for lab in dev_flash_fwd_mma dev_flash_bwd_mma; do
    echo "== $lab $args" | tee -a "$OUT/lab.txt"
    build-gpu/kernels/dev/$lab $args "$REPS" 2>&1 | tee -a "$OUT/lab.txt" || lrc=1
  done
done
echo "tests rc=$trc memcheck rc=$mrc bench rc=$brc train_gpu rc=$grc lab rc=$lrc"
[[ $trc -eq 0 && $mrc -eq 0 && $brc -eq 0 && $grc -eq 0 ]]
