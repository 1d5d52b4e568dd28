#!/usr/bin/env bash
# kill_rank.sh VICTIM: a lost or stuck rank must not hang the others (issue 4 item 5).
# Three runs of comm_victim under mpirun -np 2 (label mpi):
#  1. kill -9 rank 1 mid-collective with `mpirun --enable-recovery`, so that mpirun does not end
#     the job for us: rank 0 must exit non-zero within 60 s by itself, naming rank 1 as lost
#     (the watchdog's liveness ring), with status 75 (each rank's status is recorded by a
#     wrapper shell, since mpirun with --enable-recovery exits 0).
#  2. the same under plain mpirun (which also tears the job down): non-zero within 60 s.
#  3. SIGSTOP rank 1 (alive but stuck) with a 3 s collective timeout: rank 0 must report the
#     allreduce hung and exit non-zero well within 60 s.
#  4. kill -9 rank 1 of 4: its ring neighbours (0, 2) see it go, rank 3 hears it from them.
# Prints "N passed, N failed" like every shoal test.
set -u
victim=$1
command -v mpirun >/dev/null 2>&1 || { echo "skipped: mpirun not found"; exit 77; }
. "$(dirname "$0")/mpi_env.sh"
tmp=$(mktemp -d)
pass=0; fail=0
mpid=""
cleanup() {
  [ -n "$mpid" ] && kill -9 "$mpid" 2>/dev/null
  [ -f "$tmp/pid" ] && kill -9 "$(cat "$tmp/pid")" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
ok()  { echo "[ ok ] $1"; pass=$((pass + 1)); }
bad() { echo "[FAIL] $1"; fail=$((fail + 1)); sed 's/^/    | /' "$tmp/out" | tail -30; }

now() { date +%s.%N; }
under60() { awk -v e="$ELAPSED" 'BEGIN { exit !(e < 60) }'; }
# wait_for FILE SECONDS: until FILE exists and is non-empty
wait_for() { local i=0; while [ ! -s "$1" ] && [ $i -lt $(( $2 * 20 )) ]; do sleep 0.05; i=$((i + 1)); done; [ -s "$1" ]; }
# wait_exit PID SECONDS: until PID exits; returns its status, or 124 if it outlived SECONDS
wait_exit() {
  local i=0
  while kill -0 "$1" 2>/dev/null && [ $i -lt $(( $2 * 20 )) ]; do sleep 0.05; i=$((i + 1)); done
  if kill -0 "$1" 2>/dev/null; then return 124; fi
  wait "$1"
}

run_case() { # name signal extra-mpirun-args timeout_ms [np]
  local name=$1 sig=$2 extra=$3 tmo=$4 np=${5:-2}
  rm -f "$tmp/pid" "$tmp/out" "$tmp"/rc.*
  # Each rank's own exit status goes to rc.RANK: with --enable-recovery mpirun itself exits 0.
  # shellcheck disable=SC2086
  mpirun $extra -np "$np" sh -c '"$0" "$1" "$2"; echo $? >"$3/rc.$OMPI_COMM_WORLD_RANK"' \
    "$victim" "$tmp/pid" "$tmo" "$tmp" >"$tmp/out" 2>&1 &
  mpid=$!
  if ! wait_for "$tmp/pid" 20; then bad "$name: victim never started"; kill -9 "$mpid"; mpid=""; return 1; fi
  sleep 0.3
  local vpid t0 rc t1
  vpid=$(cat "$tmp/pid")
  t0=$(now)
  kill "-$sig" "$vpid"
  if [ "$sig" = STOP ]; then
    # rank 0 must give up on its own; then the stopped rank is killed to let mpirun finish.
    local i=0
    while ! grep -q "hung" "$tmp/out" && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
    t1=$(now)
    kill -9 "$vpid" 2>/dev/null
    wait_exit "$mpid" 30; rc=$?
  else
    wait_exit "$mpid" 60; rc=$?
    t1=$(now)
  fi
  mpid=""
  RC0=$(cat "$tmp/rc.0" 2>/dev/null || echo none)
  ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  RC=$rc
  echo "    $name: mpirun status $rc, rank 0 status $RC0, survivors done after ${ELAPSED} s"
}

run_case "kill -9, --enable-recovery" KILL "--enable-recovery" 30000
if [ "$RC0" = 75 ] && [ "$RC" -ne 124 ] && under60 \
   && grep -q "lost rank 1" "$tmp/out" && grep -q "exiting with status 75" "$tmp/out" \
   && grep -q "on_fatal: lost rank 1 " "$tmp/out"; then
  ok "kill -9 of rank 1: rank 0 exits non-zero in ${ELAPSED} s naming rank 1"
else bad "kill -9 of rank 1 (--enable-recovery): rank 0 status $RC0 after $ELAPSED s"; fi

run_case "kill -9, plain mpirun" KILL "" 30000
if [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && under60 \
   && grep -Eq "lost rank 1|process rank 1" "$tmp/out"; then
  ok "kill -9 of rank 1 under plain mpirun: job ends non-zero in ${ELAPSED} s naming rank 1"
else bad "kill -9 of rank 1 (plain mpirun): status $RC after $ELAPSED s"; fi

run_case "SIGSTOP, --enable-recovery" STOP "--enable-recovery" 3000
if [ "$RC0" = 75 ] && [ "$RC" -ne 124 ] && under60 \
   && grep -q "allreduce hung" "$tmp/out" && grep -q "on_fatal: lost rank -1 " "$tmp/out"; then
  ok "stopped rank 1: rank 0 reports the hung allreduce after ${ELAPSED} s and exits non-zero"
else bad "stopped rank 1: rank 0 status $RC0 after $ELAPSED s"; fi

# 4 ranks (oversubscribed): only ranks 0 and 2 are rank 1's ring neighbours; rank 3 must learn
# "rank 1 lost" from them, and every survivor must stop with a non-zero status.
run_case "kill -9, 4 ranks" KILL "--enable-recovery" 30000 4
rcs=$(cat "$tmp/rc.0" "$tmp/rc.2" "$tmp/rc.3" 2>/dev/null | tr '\n' ' ')
if [ "$(cat "$tmp"/rc.[023] 2>/dev/null | grep -vc '^0$')" = 3 ] && [ "$RC" -ne 124 ] && under60 \
   && [ "$(grep -c "lost rank 1 (pid" "$tmp/out")" -ge 3 ] && grep -q "reported by rank" "$tmp/out"; then
  ok "kill -9 of rank 1 of 4: survivors exit non-zero ($rcs) in ${ELAPSED} s, the loss passed around the ring"
else bad "kill -9 of rank 1 of 4: survivor statuses $rcs after $ELAPSED s"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
