#!/usr/bin/env bash
# Runs on the CUDA host from the unpacked bundle: HierarchicalKV's hybrid benchmark (dim 64, 128M
# capacity, half the values in pinned host memory), then mlkv-bench store-bench's read, train and
# write workloads with the HierarchicalKV figures of this same run (load factor 0.50) as the
# baseline of every ratio. HKV names the hybrid_benchmark binary (default: hkv/hybrid_benchmark
# beside this script; copy it there from shared/peers/hkv-ae24eec-sm90). STORE_BENCH_OPTS adds
# store-bench options. Results: $OUT/hkv-hybrid.md and $OUT/store-bench.md.
#
#   tar xzf .bundle/mlkv-gpu-bundle.tgz -C /tmp && /tmp/mlkv/gpu-train-bench.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
hkv=${HKV:-$here/hkv/hybrid_benchmark}
cp=$(printf '%s:' "$here"/lib/*.jar)
java=("$here/jre/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Xmx24g)

hkv_opts=()
if [[ -x $hkv ]]; then
  echo "== HierarchicalKV hybrid benchmark ($hkv)"
  timeout "${HKV_TIMEOUT:-300}" "$hkv" > "$out/hkv-hybrid.md" 2>&1
  echo "exit code $?" >> "$out/hkv-hybrid.md"
  # The row of load factor (its first column) 0.50 in the table whose header names insert_or_assign;
  # the other columns found by their header names.
  read -r find assign ioa < <(awk -F'|' '
    /insert_or_assign/ && /assign/ { for (i = 1; i <= NF; i++) { h = $i; gsub(/ /, "", h); col[h] = i }; next }
    ("insert_or_assign" in col) && !done && ($2 + 0) == 0.5 {
      f = $(col["find"]); a = $(col["assign"]); o = $(col["insert_or_assign"]); gsub(/ /, "", f); gsub(/ /, "", a); gsub(/ /, "", o)
      print f, a, o; done = 1 }' "$out/hkv-hybrid.md")
  if [[ -n ${find:-} && -n ${assign:-} && -n ${ioa:-} ]]; then
    echo "HierarchicalKV hybrid, load factor 0.50, this run: find $find, assign $assign, insert_or_assign $ioa B-KV/s"
    hkv_opts=(--hkv-find "$find" --hkv-assign "$assign" --hkv-insert-or-assign "$ioa")
  else
    echo "could not read HierarchicalKV's figures from $out/hkv-hybrid.md; store-bench uses its defaults"
  fi
else
  echo "no HierarchicalKV binary at $hkv; store-bench uses its default HierarchicalKV figures"
fi

echo "== store-bench"
# shellcheck disable=SC2086
timeout "${BENCH_TIMEOUT:-400}" "${java[@]}" -cp "$cp" io.mlkv.bench.Main store-bench --records 2097152 --hbm-entries 1048576 \
  --dim 64 --batch 1048576 --workloads read,train,write "${hkv_opts[@]}" ${STORE_BENCH_OPTS:-} 2> "$out/store-bench.log" \
  | tee "$out/store-bench.md"
