#!/usr/bin/env bash
# Runs on a host without a JDK, from the unpacked server bundle (scripts/server-bundle.sh): the
# token cache's loopback benchmark (server and clients in one JVM, every call type interleaved with
# an empty Ping of the same rounds) at several caller counts, so issue figures for a many-core host
# come from the same command as on the development machine. THREADS (default "8 16 32"),
# SECONDS_PER_CALL (default 5) and WARMUP (default 3) are passed on; results: $OUT/loopback-tN.md.
#
#   tar xzf .server-bundle/mlkv-server-bundle.tgz -C /tmp && /tmp/mlkv/server-loopback-bench.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
cp=$(printf '%s:' "$here"/lib/*.jar)
java=("$here/jre/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Xmx8g)
{ nproc; grep -m1 'model name' /proc/cpuinfo; uptime; } > "$out/host.txt"
rc=0
for t in ${THREADS:-8 16 32}; do
  echo "== loopback-bench --threads $t"
  timeout "${RUN_TIMEOUT:-180}" "${java[@]}" -cp "$cp" io.mlkv.server.ServerMain loopback-bench --threads "$t" \
    --seconds "${SECONDS_PER_CALL:-5}" --warmup "${WARMUP:-3}" > "$out/loopback-t$t.md" 2> "$out/loopback-t$t.log" || rc=1
  grep -E '^\||Batch forms' "$out/loopback-t$t.md"
done
exit $rc
