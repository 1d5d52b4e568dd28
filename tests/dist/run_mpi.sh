#!/usr/bin/env bash
# run_mpi.sh NP PROGRAM [ARGS...]: run a test program under `mpirun -np NP` as CTest's test
# command (label mpi). Exits 77 (skipped) when mpirun is missing. Bounded by `timeout` so a
# broken communicator cannot hang CI even if the watchdog itself failed.
set -u
np=$1; shift
command -v mpirun >/dev/null 2>&1 || { echo "skipped: mpirun not found"; exit 77; }
. "$(dirname "$0")/mpi_env.sh"
exec timeout -k 5 60 mpirun -np "$np" "$@"
