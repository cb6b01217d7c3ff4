#!/usr/bin/env bash
# Builds .server-bundle/mlkv-server-bundle.tgz: what the token cache's loopback benchmark needs on
# the 16-core GPU host, which has no JDK: a jlink'd Java runtime (Temurin 25), the server's jars and
# their runtime dependencies with only RocksDB's linux-x86_64 library, and
# scripts/server-loopback-bench.sh. Left out: the blob backend's stack (Azure SDK, Jackson,
# Reactor, its Netty) and the CUDA natives, which an embedded server without a backend or GPU
# never loads. It must stay under 64 MiB with the working tree (the device tool's limit); carry
# .server-bundle alone (not with .bundle).
#
#   scripts/server-bundle.sh
#   BEFORE_REF=<commit> scripts/server-bundle.sh   # with that commit's project jars in before/: the
#                                                  # benchmark then alternates the two builds
#   # on the device: tar xzf .server-bundle/mlkv-server-bundle.tgz -C /tmp && /tmp/mlkv/server-loopback-bench.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bundle-lib.sh
. "$root/scripts/bundle-lib.sh"
jdk=${BUNDLE_JDK:-/usr/lib/jvm/temurin-25-jdk-amd64}
cd "$root"

out="$root/.server-bundle"
work="$out/mlkv"
start_bundle server-bundle "$out" lib

echo "[server-bundle] collecting jars"
mvn -B -q -ntp dependency:copy-dependencies -pl mlkv-server -DincludeScope=runtime -DoutputDirectory="$work/lib"
cp mlkv-server/target/mlkv-server-0.1.0-SNAPSHOT.jar "$work/lib/"
rm -f "$work"/lib/azure-*.jar "$work"/lib/jackson-*.jar "$work"/lib/reactor-*.jar "$work"/lib/netty-*.jar \
  "$work"/lib/jcuda-natives-*.jar
slim_rocksdb "$work/lib"

echo "[server-bundle] jlink runtime from $jdk"
jlink_runtime "$jdk" java.base,java.logging,java.management,jdk.management,jdk.unsupported,java.naming,java.xml,jdk.zipfs,jdk.jfr,java.net.http,jdk.crypto.ec,java.sql \
  "$work/jre"
cp scripts/server-loopback-bench.sh "$work/"
if [ -n "${BEFORE_REF:-}" ]; then
  before_jars "$BEFORE_REF" "$work/before" mlkv-storage mlkv-gpu mlkv-core mlkv-client mlkv-server
fi

finish_bundle server-bundle "$out" mlkv-server-bundle.tgz
