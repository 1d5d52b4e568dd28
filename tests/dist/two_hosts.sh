#!/usr/bin/env bash
# two_hosts.sh PROGRAM: the collective checks of test_comm_mpi across two emulated hosts: two
# network namespaces joined by a veth pair, each rank in its own namespace and UTS namespace
# (its own hostname), MPI and the liveness ring over TCP on 10.77.0.0/24
# (../shared/research/infra.md §3.3). The namespaces get unique names and are deleted on exit.
# Exits 77 (skipped) when not root or `ip netns` is not permitted. Label mpi.
# `two_hosts.sh --exec CMD...` runs `mpirun -np 2 CMD...` across the two hosts instead, prints
# its output and exits with its status (test_train_two_hosts.sh; words of CMD must not need
# quoting).
set -u
prog=$1
exec_mode=0
if [ "$prog" = --exec ]; then exec_mode=1; shift; prog="$*"; fi
command -v mpirun >/dev/null 2>&1 || { echo "skipped: mpirun not found"; exit 77; }
command -v ip >/dev/null 2>&1 || { echo "skipped: ip (iproute2) not found"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "skipped: needs root for ip netns"; exit 77; }
. "$(dirname "$0")/mpi_env.sh"
tag="shd$$"
ns1="${tag}a" ns2="${tag}b"
tmp=$(mktemp -d)
cleanup() {
  ip netns del "$ns1" 2>/dev/null
  ip netns del "$ns2" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
if ! ip netns add "$ns1" 2>"$tmp/err"; then
  echo "skipped: ip netns add not permitted: $(cat "$tmp/err")"; exit 77
fi
set -e
ip netns add "$ns2"
ip link add v1 netns "$ns1" type veth peer name v2 netns "$ns2"
ip -n "$ns1" addr add 10.77.0.1/24 dev v1
ip -n "$ns2" addr add 10.77.0.2/24 dev v2
for n in "$ns1" "$ns2"; do ip -n "$n" link set lo up; done
ip -n "$ns1" link set v1 up
ip -n "$ns2" link set v2 up
set +e

# mpirun starts its remote daemon through this "ssh": run the command in the host's namespace.
cat >"$tmp/nsrsh" <<AGENT
#!/bin/sh
host=\$1; shift
case "\$host" in
  10.77.0.1) ns=$ns1; hn=h1 ;;
  10.77.0.2) ns=$ns2; hn=h2 ;;
  *) echo "nsrsh: unknown host \$host" >&2; exit 255 ;;
esac
exec ip netns exec "\$ns" unshare --uts sh -c "hostname \$hn; \$*"
AGENT
chmod +x "$tmp/nsrsh"
printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' >"$tmp/hostfile"

timeout -k 5 75 ip netns exec "$ns1" unshare --uts sh -c "hostname h1; mpirun --hostfile $tmp/hostfile -np 2 \
  --mca plm_rsh_agent $tmp/nsrsh --mca oob_tcp_if_include 10.77.0.0/24 \
  --mca btl self,tcp --mca btl_tcp_if_include 10.77.0.0/24 \
  $prog $([ $exec_mode = 1 ] || echo --expect-local-size 1)" >"$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
[ $exec_mode = 1 ] && exit $rc
if [ $rc -eq 0 ] && grep -q "rank 0 of 2 on h1" "$tmp/out" && grep -q "rank 1 of 2 on h2" "$tmp/out"; then
  echo "two hosts: collectives correct between h1 and h2"
  exit 0
fi
echo "two hosts: FAILED (mpirun status $rc)"
exit 1
