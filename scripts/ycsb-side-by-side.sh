#!/usr/bin/env bash
# YCSB's own client (0.17.0) over MLKV's binding and over YCSB's own RocksDB binding, same records,
# same workload files (mlkv-bench/ycsb/), same client threads, in one run. The RocksDB binding is
# not on Maven Central: it is built from PEER (default ../shared/peers/ycsb-rocksdb-binding-0.17.0)
# against the RocksDB MLKV uses (9.8.4). Per workload, thread count and database: a load into a fresh
# directory, one untimed warm-up run, then the timed run, each its own client JVM (the store is
# reopened from its directory, warm in the page cache). Prints one table row per workload and
# thread count: ops/s and read/update p99 of each, and MLKV's ratio. Raw client output: $OUT.
#
#   scripts/ycsb-side-by-side.sh [-r RECORDS] [-o OPERATIONS] [-t "1 4"] [-w "workloada workloadc ..."]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
records=100000
operations=100000
threads="1 4"
workloads="workloada workloadb workloadc workloadd workloadf"
peer=${PEER:-$root/../shared/peers/ycsb-rocksdb-binding-0.17.0}
out=${OUT:-$(mktemp -d)}
usage() { echo "usage: $0 [-r RECORDS] [-o OPERATIONS] [-t \"THREADS ...\"] [-w \"WORKLOAD ...\"]" >&2; exit 2; }
while getopts "r:o:t:w:" opt; do
  case $opt in
    r) records=$OPTARG ;; o) operations=$OPTARG ;; t) threads=$OPTARG ;; w) workloads=$OPTARG ;; *) usage ;;
  esac
done
[[ $records =~ ^[1-9][0-9]*$ && $operations =~ ^[1-9][0-9]*$ ]] || { echo "-r and -o take positive numbers" >&2; exit 2; }
for t in $threads; do [[ $t =~ ^[1-9][0-9]*$ ]] || { echo "-t takes positive thread counts, got '$t'" >&2; exit 2; }; done
for w in $workloads; do [ -f "mlkv-bench/ycsb/$w" ] || { echo "no workload file mlkv-bench/ycsb/$w" >&2; exit 2; }; done
[ -x "$peer/build.sh" ] || { echo "no YCSB RocksDB binding at $peer (set PEER)" >&2; exit 2; }
mkdir -p "$out"

mlkv_cp=$(YCSB_PRINT_CP=1 scripts/ycsb.sh | tail -1)
echo "building YCSB's RocksDB binding against rocksdbjni 9.8.4 (log: $out/peer-build.log)" >&2
WORK="$out/peer" ROCKSDB_VERSION=9.8.4 "$peer/build.sh" > "$out/peer-build.log" 2>&1
# The binding with YCSB's client and its dependencies (what mlkv-bench has as "provided"), no MLKV jar.
rocks_cp=$(cat "$out/peer/target/classpath.txt"):$(cat mlkv-bench/target/ycsb.cp)

client() { # db phase workload threads dir: runs one client JVM, output in $out
  local db=$1 phase=$2 w=$3 t=$4 dir=$5 cp class dirprop
  if [ "$db" = mlkv ]; then cp=$mlkv_cp; class=io.mlkv.bench.ycsb.MlkvYcsbDb; dirprop="mlkv.dir=$dir"
  else cp=$rocks_cp; class=site.ycsb.db.rocksdb.RocksDBClient; dirprop="rocksdb.dir=$dir"; fi
  local log="$out/$db-$w-t$t-$phase"
  if ! java -cp "$cp" site.ycsb.Client "$( [ "$phase" = load ] && echo -load || echo -t )" -db "$class" \
      -P "mlkv-bench/ycsb/$w" -p "$dirprop" -p recordcount="$records" -p operationcount="$operations" \
      -threads "$t" > "$log.out" 2> "$log.err"; then
    echo "YCSB client failed: $db $w ($phase, $t threads); see $log.err" >&2; tail -5 "$log.err" >&2; exit 1
  fi
  # The client exits 0 even when its database class fails to load: no operation done is a failure too.
  if ! grep -qE '^\[OVERALL\], Throughput\(ops/sec\), [1-9]' "$log.out"; then
    echo "YCSB client did no work: $db $w ($phase, $t threads); see $log.err" >&2; grep -m3 -E 'Exception|Error' "$log.err" >&2; exit 1
  fi
}
figure() { # file metric-line-prefix: the value of a "[SECTION], metric, value" line, or -
  grep -F "$2" "$1" | head -1 | awk -F', ' '{printf "%.0f", $3}' || true
}

echo "| workload | threads | MLKV ops/s | RocksDB binding ops/s | MLKV / RocksDB | MLKV read p99 (us) | RocksDB read p99 | MLKV update p99 | RocksDB update p99 |"
echo "|---|---|---|---|---|---|---|---|---|"
for w in $workloads; do
  for t in $threads; do
    for db in mlkv rocksdb; do
      dir="$out/data-$db-$w-t$t"
      rm -rf "$dir"
      client "$db" load "$w" "$t" "$dir"
      client "$db" warmup "$w" "$t" "$dir"
      client "$db" run "$w" "$t" "$dir"
      rm -rf "$dir"
    done
    m="$out/mlkv-$w-t$t-run.out"; r="$out/rocksdb-$w-t$t-run.out"
    mo=$(figure "$m" "[OVERALL], Throughput"); ro=$(figure "$r" "[OVERALL], Throughput")
    ratio=$(awk -v a="$mo" -v b="$ro" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$w" "$t" "$mo" "$ro" "$ratio" \
      "$(figure "$m" "[READ], 99thPercentileLatency")" "$(figure "$r" "[READ], 99thPercentileLatency")" \
      "$(figure "$m" "[UPDATE], 99thPercentileLatency")" "$(figure "$r" "[UPDATE], 99thPercentileLatency")"
  done
done
echo "raw client output: $out" >&2
