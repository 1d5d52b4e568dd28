#!/usr/bin/env bash
# run.sh: the train_cpu benchmark at B=4, T=64 and T=256 (one process each, so peak memory is
# per configuration). Usage: bench/train_cpu/run.sh [build-dir] [threads]
# OMP_WAIT_POLICY defaults to passive: on cores shared with other processes, OpenMP threads
# that spin at barriers take the core from their own descheduled sibling (measured here at load
# ~4.5: ratio 0.58 spinning vs 0.71-0.78 passive). libgomp reads it only at start-up, so it has
# to be in the environment; export OMP_WAIT_POLICY=active to measure the other way.
set -euo pipefail
BUILD=${1:-build}
THREADS=${2:-2}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
echo "OMP_WAIT_POLICY=$OMP_WAIT_POLICY"
for T in 64 256; do
  "$BUILD/bench/train_cpu/bench_train_cpu" --T "$T" --B 4 --threads "$THREADS" --steps 3
done
