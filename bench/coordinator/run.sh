#!/usr/bin/env bash
# run.sh: start a single-node Slurm (tests/harness/slurm.sh) for the sbatch baseline, run
# bench_coordinator against it, stop Slurm. Without Slurm (or root) the bench runs without
# the baseline.  usage: run.sh BENCH_BINARY [ARGS...]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
harness=$here/../../tests/harness/slurm.sh
dir=$(mktemp -d "${TMPDIR:-/tmp}/shoal-bench-slurm-XXXXXX")
trap 'bash "$harness" stop "$dir"; rm -rf "$dir"' EXIT
if out=$(bash "$harness" start "$dir"); then
  eval "$out"
  export SLURM_CONF
else
  echo "# no local Slurm: running without the sbatch baseline"
fi
"$@"
