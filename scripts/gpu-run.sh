#!/usr/bin/env bash
# Runs on the CUDA host, from the unpacked bundle (see scripts/gpu-bundle.sh): the GPU tests,
# then the GPU table benchmark. Results go to $OUT (default ./out). TEST_TIMEOUT and
# BENCH_TIMEOUT (seconds) bound each part, so a hung kernel cannot eat the whole device lease;
# inside the tests, each test is also limited to TEST_CASE_TIMEOUT (default 120s), so a slow or
# hung test fails by name; each test's result is printed as it ends (--details=testfeed), so a run cut short
# still shows what passed.
#
#   tar xzf .bundle/mlkv-gpu-bundle.tgz -C /tmp && /tmp/mlkv/gpu-run.sh [gpu-bench options]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
java=("$here/jre/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Xmx24g)
cp=$(printf '%s:' "$here"/lib/*.jar)

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
"${java[@]}" -version 2>&1 | tee -a "$out/gpu.txt"

echo "== GPU tests"
timeout "${TEST_TIMEOUT:-420}" "${java[@]}" -jar "$here"/tools/junit-platform-console-standalone-*.jar execute \
  --class-path "$cp" --config=junit.jupiter.execution.timeout.default="${TEST_CASE_TIMEOUT:-120s}" \
  --select-package io.mlkv.gpu --select-class io.mlkv.core.GpuStoreTest \
  --select-class io.mlkv.core.GpuTrainingStepTest --select-class io.mlkv.core.GpuCombinedCallsTest \
  --select-class io.mlkv.core.GpuShardedStoreTest --select-class io.mlkv.core.GpuTrainingStepShardedTest --reports-dir "$out/junit" \
  --details=testfeed --disable-banner --disable-ansi-colors 2>&1 | tee "$out/gpu-tests.txt"
tests_rc=${PIPESTATUS[0]}

echo "== GPU table benchmark"
timeout "${BENCH_TIMEOUT:-600}" "${java[@]}" -cp "$cp" io.mlkv.bench.Main gpu-bench "$@" 2> >(tee "$out/gpu-bench.log" >&2) | tee "$out/gpu-bench.md"
bench_rc=${PIPESTATUS[0]}
echo "tests exit code $tests_rc, benchmark exit code $bench_rc"
exit $(( tests_rc != 0 || bench_rc != 0 ))
