#!/usr/bin/env bash
# Builds .bundle/mlkv-gpu-bundle.tgz: everything a GPU test-and-benchmark run needs on a CUDA host
# that has no JDK. A jlink'd Java runtime (from the Temurin 25 JDK; jdk.zipfs lets JUnit scan jars), the project's jars and test
# jars, their dependencies with only the linux-x86_64 native libraries, the JUnit console
# launcher, and scripts/gpu-run.sh. It must stay under 64 MiB (the device tool's limit).
#
#   scripts/gpu-bundle.sh            # then carry .bundle into the device run
#   HKV_BINARY=../shared/peers/hkv-ae24eec-sm90/hybrid_benchmark scripts/gpu-bundle.sh   # with HierarchicalKV's hybrid benchmark
#   BEFORE_REF=<commit> scripts/gpu-bundle.sh   # with that commit's project jars in before/ (gpu-before-after.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bundle-lib.sh
. "$root/scripts/bundle-lib.sh"
jdk=${BUNDLE_JDK:-/usr/lib/jvm/temurin-25-jdk-amd64}
junit_console=org.junit.platform:junit-platform-console-standalone:1.11.4
cd "$root"

out="$root/.bundle"
work="$out/mlkv"
start_bundle bundle "$out" lib tools

echo "[bundle] collecting jars"
mvn -B -q -ntp dependency:copy-dependencies -pl mlkv-gpu -DincludeScope=test -DoutputDirectory="$work/lib"
mvn -B -q -ntp dependency:copy-dependencies -pl mlkv-bench -DincludeScope=runtime -DoutputDirectory="$work/lib"
mvn -B -q -ntp dependency:copy -Dartifact="$junit_console" -DoutputDirectory="$work/tools"
for m in mlkv-storage mlkv-gpu mlkv-core mlkv-bench; do
  cp "$m/target/$m-0.1.0-SNAPSHOT.jar" "$work/lib/"
done
cp mlkv-storage/target/mlkv-storage-0.1.0-SNAPSHOT-tests.jar mlkv-gpu/target/mlkv-gpu-0.1.0-SNAPSHOT-tests.jar \
  mlkv-core/target/mlkv-core-0.1.0-SNAPSHOT-tests.jar "$work/lib/"
rm -f "$work"/lib/jmh-generator-*.jar
# Chronicle Map and what it pulls in are a JMH baseline only (JMH does not run on the device): kept out of the 64 MiB
# (JNA itself stays: the DRAM tier asks for huge pages through it).
rm -f "$work"/lib/chronicle-*.jar "$work"/lib/affinity-*.jar "$work"/lib/posix-*.jar "$work"/lib/jnr-*.jar \
  "$work"/lib/jffi-*.jar "$work"/lib/jna-platform-*.jar "$work"/lib/javapoet-*.jar "$work"/lib/compiler-2.*.jar

# Only the linux-x86_64 natives travel.
slim_rocksdb "$work/lib"
for jar in "$work"/lib/jcuda-natives-*.jar; do
  slim "$jar" 'lib/libJNvPTXCompiler*' 'lib/libJNvrtc*' 'lib/libJCudaRuntime*'
done

echo "[bundle] jlink runtime from $jdk"
jlink_runtime "$jdk" java.base,java.logging,java.management,jdk.management,jdk.unsupported,java.naming,java.xml,jdk.zipfs,jdk.jfr \
  "$work/jre"

cp scripts/gpu-run.sh scripts/gpu-profile.sh scripts/gpu-store-bench.sh scripts/gpu-io-bench.sh scripts/gpu-train-bench.sh \
  scripts/gpu-hkv-same-run.sh scripts/gpu-shard-bench.sh \
  scripts/gpu-before-after.sh "$work/"
# The PCIe ceiling of the DRAM tier's row reads (src-native/bench/pcie_row_reads.cu), where nvcc is here.
if command -v nvcc >/dev/null 2>&1; then
  nvcc -O3 -std=c++17 -arch=sm_90 -o "$work/tools/pcie_row_reads" src-native/bench/pcie_row_reads.cu
else
  echo "[bundle] nvcc not on the PATH: tools/pcie_row_reads left out"
fi
# The peers a benchmark compares against, when given (HKV_BINARY=".../hybrid_benchmark [.../merlin_hashtable_benchmark]",
# one path or several separated by spaces): never part of the product.
if [ -n "${HKV_BINARY:-}" ]; then
  mkdir -p "$work/hkv"
  for binary in $HKV_BINARY; do cp "$binary" "$work/hkv/"; done
fi
# An earlier commit's project jars, for before/after comparisons in one run.
if [ -n "${BEFORE_REF:-}" ]; then
  before_jars "$BEFORE_REF" "$work/before" mlkv-storage mlkv-gpu mlkv-core mlkv-bench
fi
finish_bundle bundle "$out" mlkv-gpu-bundle.tgz
