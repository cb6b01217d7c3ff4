#!/usr/bin/env bash
# Runs on the CUDA host from the unpacked bundle: each mlkv-bench command given as an argument,
# ROUNDS times (default 2), alternating the bundle's build ([after], lib/) with the build of an
# earlier commit ([before], before/ in the bundle: scripts/gpu-bundle.sh with BEFORE_REF=<commit>),
# so that a refactoring's figures are compared in one run, interleaved. Output lines are prefixed.
#
#   /tmp/mlkv/gpu-before-after.sh "store-bench --distributions scrambled" "gpu-bench --dims 64"
#
# AFTER_JAVA_OPTS and BEFORE_JAVA_OPTS add JVM options to one side, so that one build can be
# compared with itself under a switch (BEFORE_REF=HEAD, BEFORE_JAVA_OPTS=-Dmlkv.uncheckedDramProbes=false).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [[ ! -d $here/before ]]; then
  echo "no before/ in the bundle: build it with BEFORE_REF=<commit> scripts/gpu-bundle.sh" >&2
  exit 2
fi
java=("$here/jre/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Xmx24g)
after_cp=$(printf '%s:' "$here"/lib/*.jar)
# The earlier build's project jars first, so they shadow the current ones; dependencies are shared.
before_cp=$(printf '%s:' "$here"/before/*.jar)$after_cp
for cmd in "$@"; do
  echo "== $cmd"
  for ((r = 1; r <= ${ROUNDS:-2}; r++)); do
    for side in after before; do
      cp_var=${side}_cp
      if [[ $side == after ]]; then opts=${AFTER_JAVA_OPTS:-}; else opts=${BEFORE_JAVA_OPTS:-}; fi
      # shellcheck disable=SC2086 # the command's words and the options are meant to split
      timeout "${RUN_TIMEOUT:-300}" "${java[@]}" $opts -cp "${!cp_var}" io.mlkv.bench.Main $cmd 2>/dev/null | sed "s/^/[$side $r] /"
    done
  done
done
