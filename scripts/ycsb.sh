#!/usr/bin/env bash
# Runs YCSB's own client (site.ycsb.Client, from Maven Central) against MLKV through
# io.mlkv.bench.ycsb.MlkvYcsbDb, for workloads A to F in mlkv-bench/ycsb/: load, then run, each
# workload on a fresh store. Extra arguments go to the client, e.g. -p recordcount=10000 -threads 4.
#
#   scripts/ycsb.sh [workloada ...] [-- client args]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
workloads=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do workloads+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#workloads[@]} -eq 0 ] && workloads=(workloada workloadb workloadc workloadd workloade workloadf)

# Build only when the jar or the classpath file is missing or older than a source or pom.
jar=mlkv-bench/target/mlkv-bench.jar
cpfile=mlkv-bench/target/ycsb.cp
if [ ! -f "$jar" ] || [ ! -f "$cpfile" ] || [ -n "$(find pom.xml mlkv-*/pom.xml mlkv-*/src -newer "$jar" -type f -print -quit)" ]; then
  echo "building mlkv-bench (sources changed since the last build)" >&2
  mvn -B -q -ntp -DskipTests install >&2
  mvn -B -q -ntp dependency:build-classpath -pl mlkv-bench -Dmdep.includeScope=provided -Dmdep.outputFile="$root/$cpfile" >&2
fi
cp="mlkv-bench/target/mlkv-bench.jar:$(cat mlkv-bench/target/ycsb.cp)"
# YCSB_PRINT_CP=1: print the client's classpath (after building if needed) and stop; other scripts use it.
if [ -n "${YCSB_PRINT_CP:-}" ]; then echo "$root/mlkv-bench/target/mlkv-bench.jar:$(cat mlkv-bench/target/ycsb.cp)"; exit 0; fi
client() { # phase workload dir [args]: runs the client, keeps its log, prints the summary lines
  local phase=$1 w=$2 dir=$3; shift 3
  if ! java -cp "$cp" site.ycsb.Client "$phase" -db io.mlkv.bench.ycsb.MlkvYcsbDb -P "mlkv-bench/ycsb/$w" \
      -p mlkv.dir="$dir/store" "$@" > "$dir/$phase.out" 2> "$dir/$phase.err"; then
    echo "YCSB client failed on $w ($phase):" >&2; tail -20 "$dir/$phase.err" >&2; exit 1
  fi
  grep -E '^\[[A-Z-]+\], (Throughput|Operations|AverageLatency|99thPercentileLatency|Return)' "$dir/$phase.out"
}
for w in "${workloads[@]}"; do
  dir=$(mktemp -d)
  echo "== $w: load"
  client -load "$w" "$dir" "$@"
  echo "== $w: run"
  client -t "$w" "$dir" "$@"
  rm -rf "$dir"
done
