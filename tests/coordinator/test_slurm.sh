#!/usr/bin/env bash
# test_slurm.sh: bring up a real single-node Slurm (tests/harness/slurm.sh) in a scratch
# directory, run the Slurm launcher test against it, and stop the daemons whatever happens.
# Exit 77 (skipped) when Slurm is not installed or we are not root. Label slurm.
#   test_slurm.sh TEST_BINARY [ARGS...]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
harness=$here/../harness/slurm.sh
dir=$(mktemp -d "${TMPDIR:-/tmp}/shoal-slurm-XXXXXX")
cleanup() { bash "$harness" stop "$dir"; rm -rf "$dir"; }
trap cleanup EXIT
out=$(bash "$harness" start "$dir")
rc=$?
if [ $rc -ne 0 ]; then
  exit $rc
fi
eval "$out"
export SLURM_CONF
"$@"
