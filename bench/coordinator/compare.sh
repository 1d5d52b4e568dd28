#!/usr/bin/env bash
# compare.sh: the before/after side by side of docs/BENCHMARKS.md ("Coordinator: SubmitJob /
# GetJob vs sbatch"): run two bench_coordinator binaries alternately (OLD, NEW, OLD, NEW, ...)
# RUNS times each against one local Slurm (tests/harness/slurm.sh, for the sbatch baseline
# measured in every run), then print per row the median and [min-max] of ops/s, p50 and p99,
# the SubmitJob/sbatch ratios and the load average at each run's start.
#
#   bash bench/coordinator/compare.sh OLD_BIN NEW_BIN [RUNS] [-- BENCH_ARGS...]
#   e.g. bash bench/coordinator/compare.sh /tmp/old build/bench/coordinator/bench_coordinator 5
#
# Both binaries must print the row format of bench_coordinator.c (what, client, conc, ops,
# ops/s, p50_ms, p99_ms, errors); build OLD from the old commit with today's
# bench/coordinator/bench_coordinator.c and proto/rpc_client.c (the async load generator) so
# that the two differ only in the server side. Default BENCH_ARGS: --ops 4000 --sbatch-ops 96.
# Without Slurm (or root) the sbatch rows are missing and the ratios are not printed.
set -uo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,16p' "$0"
  exit 2
fi
old=$1
new=$2
shift 2
runs=5
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  runs=$1
  shift
fi
[ "${1:-}" = "--" ] && shift
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--ops 4000 --sbatch-ops 96)
here=$(cd "$(dirname "$0")" && pwd)
harness=$here/../../tests/harness/slurm.sh
dir=$(mktemp -d "${TMPDIR:-/tmp}/shoal-bench-compare-XXXXXX")
trap 'bash "$harness" stop "$dir/slurm" >/dev/null 2>&1; rm -rf "$dir"' EXIT
mkdir -p "$dir/slurm" "$dir/out"
if out=$(bash "$harness" start "$dir/slurm"); then
  eval "$out"
  export SLURM_CONF
else
  echo "# no local Slurm: running without the sbatch baseline"
fi
for i in $(seq 1 "$runs"); do
  for which in old new; do
    bin=$old
    [ "$which" = new ] && bin=$new
    f=$dir/out/$which.$i
    echo "# $which run $i, $(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$f"
    "$bin" "${args[@]}" >>"$f" 2>&1
    grep -E '^(SubmitJob|GetJob)' "$f" | grep -E ' (1|64) ' | sed 's/^/#   /'
  done
done
python3 - "$dir/out" "$runs" <<'EOF'
import os, re, statistics, sys
d, runs = sys.argv[1], int(sys.argv[2])
rows = {}  # (which, what, client, conc) -> list of (rate, p50, p99, errors)
loads = {"old": [], "new": []}
for which in ("old", "new"):
    for i in range(1, runs + 1):
        p = os.path.join(d, f"{which}.{i}")
        if not os.path.exists(p):
            continue
        for line in open(p):
            m = re.match(r"# \w+ run \d+, .* load ([\d.]+)", line)
            if m:
                loads[which].append(float(m.group(1)))
                continue
            m = re.match(r"(SubmitJob|GetJob|sbatch --wrap true)\s+(\w+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)", line)
            if m:
                k = (which, m.group(1), m.group(2), int(m.group(3)))
                rows.setdefault(k, []).append(tuple(float(m.group(j)) for j in (5, 6, 7, 8)))
def fmt(v, nd):
    return f"{statistics.median(v):.{nd}f} [{min(v):.{nd}f}-{max(v):.{nd}f}]"
print(f"# {runs} runs each, alternated; load average at the starts: old "
      f"{fmt(loads['old'], 2) if loads['old'] else '-'}, new {fmt(loads['new'], 2) if loads['new'] else '-'}")
print("# medians [min-max] of the runs")
print(f"{'what':<19} {'client':<7} {'conc':>4}  {'ops/s old -> new':<34} {'p50_ms old -> new':<34} {'p99_ms old -> new':<34} err")
keys = sorted({k[1:] for k in rows}, key=lambda k: (["SubmitJob", "GetJob", "sbatch --wrap true"].index(k[0]), k[1] != "threads", k[2]))
for what, client, conc in keys:
    o = rows.get(("old", what, client, conc), [])
    n = rows.get(("new", what, client, conc), [])
    cols = []
    for j, nd in ((0, 0), (1, 2), (2, 2)):
        a = fmt([r[j] for r in o], nd) if o else "-"
        b = fmt([r[j] for r in n], nd) if n else "-"
        cols.append(f"{a} -> {b}")
    err = int(sum(r[3] for r in o + n))
    print(f"{what:<19} {client:<7} {conc:>4}  {cols[0]:<34} {cols[1]:<34} {cols[2]:<34} {err}")
# SubmitJob/sbatch per run (same run's sbatch rows), threads client
for which in ("old", "new"):
    for conc in (1, 8, 64):
        sub = rows.get((which, "SubmitJob", "threads", conc), [])
        sb = rows.get((which, "sbatch --wrap true", "threads", conc), [])
        if sub and sb and len(sub) == len(sb):
            r = [s[0] / b[0] for s, b in zip(sub, sb) if b[0] > 0]
            print(f"# SubmitJob/sbatch at {conc:>2} client(s), {which}: {fmt(r, 1)}x")
EOF
