#!/usr/bin/env bash
# Runs on a CUDA host from the unpacked bundle (scripts/gpu-bundle.sh): the sharded table's tests
# (with two or more GPUs, also the test that spreads shards and batches over every GPU), then
# shard-bench over the GPUs it sees, every power of two up to their number: one GpuHashTable and
# N shards, one per GPU, in the same JVM. Results in $OUT (default ./out): shard-tests.txt,
# shard-bench.md (and shard-bench-one-gpu.md: four shards on GPU 0, the single-GPU figure of the
# path). TEST_TIMEOUT and BENCH_TIMEOUT (seconds) bound each part.
#
#   tar xzf .bundle/mlkv-gpu-bundle.tgz -C /tmp && /tmp/mlkv/gpu-shard-bench.sh [shard-bench options]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
java=("$here/jre/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Xmx24g)
cp=$(printf '%s:' "$here"/lib/*.jar)

gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
nvidia-smi topo -m > "$out/topology.txt" 2>&1
echo "== $gpus GPUs"

timeout "${TEST_TIMEOUT:-200}" "${java[@]}" -jar "$here"/tools/junit-platform-console-standalone-*.jar execute \
  --class-path "$cp" --config=junit.jupiter.execution.timeout.default=120s --select-package io.mlkv.gpu.shard \
  --reports-dir "$out/junit" --details=testfeed --disable-banner --disable-ansi-colors > "$out/shard-tests.txt" 2>&1
echo "shard tests: exit code $?"
grep -E "tests (successful|failed|aborted|skipped|found)" "$out/shard-tests.txt"

devices=$(seq -s, 0 $((gpus - 1)))
counts=1
for ((n = 2; n < gpus; n *= 2)); do counts="$counts,$n"; done
if [ "$gpus" -gt 1 ]; then counts="$counts,$gpus"; fi
timeout "${BENCH_TIMEOUT:-300}" "${java[@]}" -cp "$cp" io.mlkv.bench.Main shard-bench --devices "$devices" \
  --shards "$counts" "$@" > "$out/shard-bench.md" 2> "$out/shard-bench.log"
echo "shard-bench --devices $devices --shards $counts: exit code $?"
cat "$out/shard-bench.md"
timeout 120 "${java[@]}" -cp "$cp" io.mlkv.bench.Main shard-bench --devices 0,0,0,0 --shards 1,4 "$@" \
  > "$out/shard-bench-one-gpu.md" 2> "$out/shard-bench-one-gpu.log"
echo "shard-bench, four shards on GPU 0: exit code $?"
cat "$out/shard-bench-one-gpu.md"
