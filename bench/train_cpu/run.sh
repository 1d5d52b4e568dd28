#!/usr/bin/env bash
# run.sh: the train_cpu benchmark at B=4, T=64 and T=256 (one process each, so peak memory is
# per configuration). Usage: bench/train_cpu/run.sh [build-dir] [threads]
set -euo pipefail
BUILD=${1:-build}
THREADS=${2:-2}
for T in 64 256; do
  "$BUILD/bench/train_cpu/bench_train_cpu" --T "$T" --B 4 --threads "$THREADS" --steps 3
done
