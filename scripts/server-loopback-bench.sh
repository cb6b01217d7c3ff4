#!/usr/bin/env bash
# Runs on a host without a JDK, from the unpacked server bundle (scripts/server-bundle.sh): the
# token cache's loopback benchmark (server and clients in one JVM, every call type interleaved with
# an empty Ping of the same rounds) at several caller counts, so issue figures for a many-core host
# come from the same command as on the development machine. THREADS (default "8 16 32"),
# SECONDS_PER_CALL (default 5) and WARMUP (default 3) are passed on; results: $OUT/loopback-tN*.md.
#
#   tar xzf .server-bundle/mlkv-server-bundle.tgz -C /tmp && /tmp/mlkv/server-loopback-bench.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
cp=$(printf '%s:' "$here"/lib/*.jar)
java=("$here/jre/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Xmx8g)
{ nproc; grep -m1 'model name' /proc/cpuinfo; uptime; } > "$out/host.txt"
# With before/ in the bundle (BEFORE_REF=<commit> scripts/server-bundle.sh), each caller count runs
# the current build ([after]) and that commit's ([before], its jars first on the class path) in turn,
# ROUNDS times (default 2).
sides=(after)
if [[ -d $here/before ]]; then
  sides=()
  for ((r = 0; r < ${ROUNDS:-2}; r++)); do
    sides+=(after before)
  done
fi
before_cp=$(printf '%s:' "$here"/before/*.jar)$cp
after_cp=$cp
rc=0
for t in ${THREADS:-8 16 32}; do
  for ((i = 0; i < ${#sides[@]}; i++)); do
    side=${sides[$i]}
    cp_var=${side}_cp
    file=$out/loopback-t$t${sides[1]:+-$side-$i}
    echo "== loopback-bench --threads $t${sides[1]:+ [$side]}"
    timeout "${RUN_TIMEOUT:-180}" "${java[@]}" -cp "${!cp_var}" io.mlkv.server.ServerMain loopback-bench --threads "$t" \
      --seconds "${SECONDS_PER_CALL:-5}" --warmup "${WARMUP:-3}" > "$file.md" 2> "$file.log" || rc=1
    grep -E '^\||Batch forms' "$file.md"
  done
done
exit $rc
