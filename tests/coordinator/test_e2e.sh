#!/usr/bin/env bash
# test_e2e.sh: the real `shoal coordinator` on loopback driven by the real CLI, as a user
# would: submit -> real 2-rank mpirun of a small command -> SUCCEEDED with both ranks' logs;
# a failing job -> FAILED with its exit code; a refused request (no token); cancel while
# running ends every rank; the coordinator killed with SIGKILL while a job runs and restarted:
# every acknowledged job is still there and the running one is relaunched and succeeds;
# client settings from ~/.config/shoal/config.json. Label integration.
#   test_e2e.sh  (SHOAL_BIN names the shoal binary; set by CTest)
set -uo pipefail
BIN=${SHOAL_BIN:?SHOAL_BIN not set}
here=$(cd "$(dirname "$0")" && pwd)
command -v mpirun >/dev/null 2>&1 || { echo "skipped: mpirun not installed"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shoal-e2e-XXXXXX")
data=$tmp/data
pass=0
fail=0
coord_pid=""
ok() { pass=$((pass + 1)); echo "[ ok ] $1"; }
bad() { fail=$((fail + 1)); echo "[FAIL] $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

start_coord() {
  rm -f "$data/coordinator.addr"
  "$BIN" coordinator --listen 127.0.0.1:0 --data-dir "$data" --slots 2 --retry-base 0.2 \
    >>"$tmp/coord.log" 2>&1 &
  coord_pid=$!
  for _ in $(seq 1 100); do
    [ -s "$data/coordinator.addr" ] && break
    sleep 0.1
  done
  export SHOAL_COORDINATOR
  SHOAL_COORDINATOR=$(cat "$data/coordinator.addr" 2>/dev/null)
}
stop_coord() {
  if [ -n "$coord_pid" ] && kill -0 "$coord_pid" 2>/dev/null; then
    kill "$coord_pid"
    for _ in $(seq 1 100); do kill -0 "$coord_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$coord_pid" 2>/dev/null
  fi
  wait "$coord_pid" 2>/dev/null
  coord_pid=""
}
cleanup() {
  stop_coord # a stopping coordinator kills the ranks it still runs
  rm -rf "$tmp"
}
trap cleanup EXIT

# state of job $1 ("succeeded", ...)
state() { "$BIN" job "$1" 2>/dev/null | awk '/^state:/ {print $2}'; }
wait_state() { # id want timeout_s
  for _ in $(seq 1 $(($3 * 10))); do
    [ "$(state "$1")" = "$2" ] && return 0
    sleep 0.1
  done
  return 1
}

start_coord
check "coordinator started and wrote its address" '[ -n "$SHOAL_COORDINATOR" ]'
check "token file created with mode 600" '[ "$(stat -c %a "$data/token")" = 600 ]'

# no credentials: refused
out=$("$BIN" jobs 2>&1)
check "no token: UNAUTHENTICATED" '[ $? -ne 0 ] && grep -q UNAUTHENTICATED <<<"$out"'
export SHOAL_TOKEN_FILE=$data/token

cat >"$tmp/hello.json" <<EOF
{"name": "hello", "ranks": 2,
 "command": {"argv": ["sh", "-c", "echo hello from rank \$OMPI_COMM_WORLD_RANK of \$OMPI_COMM_WORLD_SIZE; echo to-stderr >&2"]}}
EOF
id=$("$BIN" submit "$tmp/hello.json")
check "submit prints a job id" '[[ "$id" =~ ^[0-9]+$ ]]'
"$BIN" watch "$id" >"$tmp/watch.out" 2>&1
rc=$?
check "watch ends with exit 0 on success" '[ $rc -eq 0 ] && grep -q "succeeded" "$tmp/watch.out"'
"$BIN" logs "$id" >"$tmp/logs.out" 2>"$tmp/logs.err"
check "logs: rank 0 line" 'grep -qx "\[0\] hello from rank 0 of 2" "$tmp/logs.out"'
check "logs: rank 1 line" 'grep -qx "\[1\] hello from rank 1 of 2" "$tmp/logs.out"'
check "logs: stderr lines on stderr" '[ "$(grep -c "to-stderr" "$tmp/logs.err")" = 2 ]'
check "job shows succeeded" '[ "$(state "$id")" = succeeded ]'

printf '{"name": "fails", "ranks": 2, "command": {"argv": ["sh", "-c", "exit 3"]}}' >"$tmp/fail.json"
fid=$("$BIN" submit "$tmp/fail.json")
"$BIN" watch "$fid" >/dev/null 2>&1
rc=$?
check "watch exits 1 on failure" '[ $rc -eq 1 ]'
fjob=$("$BIN" job "$fid" 2>&1)
check "failed job keeps its exit code" 'grep -q "exit code 3" <<<"$fjob"'

printf '{"ranks": 0, "command": {"argv": ["x"]}}' >"$tmp/bad.json"
"$BIN" submit "$tmp/bad.json" >/dev/null 2>&1
check "a bad job.json is refused before sending" '[ $? -ne 0 ]'

# cancel while running: every rank ends
cat >"$tmp/long.json" <<EOF
{"name": "long", "ranks": 2, "command": {"argv": ["sh", "-c", "echo up; sh -c 'sleep 3000; true' marker-$$-a"]}}
EOF
lid=$("$BIN" submit "$tmp/long.json")
wait_state "$lid" running 30
check "long job running" '[ "$(state "$lid")" = running ]'
for _ in $(seq 1 50); do [ "$(pgrep -f "marker-$$-a" | wc -l)" -ge 2 ] && break; sleep 0.1; done
check "both ranks up" '[ "$(pgrep -f "marker-$$-a" | wc -l)" -ge 2 ]'
"$BIN" cancel "$lid" >/dev/null
wait_state "$lid" cancelled 30
check "cancel: job cancelled" '[ "$(state "$lid")" = cancelled ]'
check "cancel: no rank left" '[ "$(pgrep -f "marker-$$-a" | wc -l)" = 0 ]'

# kill -9 the coordinator while a job runs; restart: nothing acknowledged is lost and the job
# is relaunched (attempt 1) and finishes
cat >"$tmp/resume.json" <<EOF
{"name": "survivor", "ranks": 2,
 "command": {"argv": ["sh", "-c", "if [ \"\$SHOAL_ATTEMPT\" = 0 ]; then sh -c 'sleep 3000; true' marker-$$-b; fi; echo relaunched attempt \$SHOAL_ATTEMPT"]}}
EOF
rid=$("$BIN" submit "$tmp/resume.json")
wait_state "$rid" running 30
queued=()
for i in 1 2 3; do queued+=("$("$BIN" submit "$tmp/hello.json")"); done
kill -9 "$coord_pid"
wait "$coord_pid" 2>/dev/null
coord_pid=""
start_coord
check "restarted coordinator serves" '[ -n "$SHOAL_COORDINATOR" ]'
wait_state "$rid" succeeded 60
check "running job relaunched after SIGKILL and succeeded" '[ "$(state "$rid")" = succeeded ]'
rlogs=$("$BIN" logs "$rid" 2>&1)
check "relaunch is attempt 1" 'grep -q "relaunched attempt 1" <<<"$rlogs"'
check "old attempt's ranks were killed" '[ "$(pgrep -f "marker-$$-b" | wc -l)" = 0 ]'
lost=0
for j in "$id" "$fid" "$lid" "${queued[@]}"; do
  "$BIN" job "$j" >/dev/null 2>&1 || lost=$((lost + 1))
done
check "no acknowledged job lost" '[ $lost -eq 0 ]'
for j in "${queued[@]}"; do wait_state "$j" succeeded 60; done
check "jobs queued before the kill ran" '[ "$(state "${queued[2]}")" = succeeded ]'

# settings from ~/.config/shoal/config.json
mkdir -p "$tmp/home/.config/shoal"
printf '{"coordinator": "%s", "token_file": "%s"}\n' "$SHOAL_COORDINATOR" "$data/token" \
  >"$tmp/home/.config/shoal/config.json"
out=$(env -u SHOAL_COORDINATOR -u SHOAL_TOKEN_FILE HOME="$tmp/home" "$BIN" jobs --all 2>&1)
check "config.json gives address and token" 'grep -q survivor <<<"$out"'

stop_coord
check "coordinator stops on SIGTERM" '[ -z "$coord_pid" ]'

# mTLS: a client certificate from the deployment's CA is the credential; its CN is the
# submitter. Without a certificate the handshake is refused.
certs=$tmp/certs
if bash "$here/../../deploy/certs.sh" --dir "$certs" all >/dev/null 2>&1 &&
   bash "$here/../../deploy/certs.sh" --dir "$certs" client alice >/dev/null 2>&1; then
  data=$tmp/data-tls
  rm -f "$data/coordinator.addr"
  "$BIN" coordinator --listen 127.0.0.1:0 --data-dir "$data" --slots 2 \
    --tls-cert "$certs/coordinator.pem" --tls-key "$certs/coordinator.key" \
    --tls-ca "$certs/ca.pem" >>"$tmp/coord.log" 2>&1 &
  coord_pid=$!
  for _ in $(seq 1 100); do [ -s "$data/coordinator.addr" ] && break; sleep 0.1; done
  tls=(--coordinator "$(cat "$data/coordinator.addr")" --tls-ca "$certs/ca.pem")
  mid=$(env -u SHOAL_TOKEN_FILE "$BIN" submit "${tls[@]}" --tls-cert "$certs/alice.pem" \
        --tls-key "$certs/alice.key" "$tmp/hello.json" 2>/dev/null)
  mjob=$(env -u SHOAL_TOKEN_FILE "$BIN" job "${tls[@]}" --tls-cert "$certs/alice.pem" \
         --tls-key "$certs/alice.key" "$mid" 2>&1)
  check "mTLS: the client certificate's CN is the submitter" 'grep -q "by cn:alice" <<<"$mjob"'
  env -u SHOAL_TOKEN_FILE "$BIN" jobs "${tls[@]}" >/dev/null 2>&1
  check "mTLS: no client certificate, refused" '[ $? -ne 0 ]'
  stop_coord
else
  echo "skipping the mTLS part: deploy/certs.sh failed (openssl?)"
fi
if [ $fail -ne 0 ]; then
  echo "--- coordinator log"
  tail -40 "$tmp/coord.log"
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
