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

mvn -B -q -ntp -DskipTests install
mvn -B -q -ntp dependency:build-classpath -pl mlkv-bench -Dmdep.includeScope=provided -Dmdep.outputFile=target/ycsb.cp
cp="mlkv-bench/target/mlkv-bench.jar:$(cat target/ycsb.cp)"
for w in "${workloads[@]}"; do
  dir=$(mktemp -d)
  echo "== $w (store in $dir)"
  java -cp "$cp" site.ycsb.Client -load -db io.mlkv.bench.ycsb.MlkvYcsbDb -P "mlkv-bench/ycsb/$w" -p mlkv.dir="$dir/store" "$@" \
    | grep -E '^\[(OVERALL|INSERT)\]'
  java -cp "$cp" site.ycsb.Client -t -db io.mlkv.bench.ycsb.MlkvYcsbDb -P "mlkv-bench/ycsb/$w" -p mlkv.dir="$dir/store" "$@" \
    | grep -E '^\[(OVERALL|READ|UPDATE|INSERT|SCAN|READ-MODIFY-WRITE)\], (Throughput|Operations|AverageLatency|99thPercentileLatency|Return)'
  rm -rf "$dir"
done
