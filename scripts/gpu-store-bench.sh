#!/usr/bin/env bash
# Runs on the CUDA host from the unpacked bundle: the tiered store with and without its HBM tier,
# same workloads, same run. Zipfian (theta 0.99) and uniform batches of 65,536 keys of dim 64;
# the table is 2x and 10x the HBM tier; DRAM holds about a tenth of the table. Results: $OUT.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
cp=$(printf '%s:' "$here"/lib/*.jar)
java=("$here/jre/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Xmx16g)
run() { # label, then run options
  local label=$1; shift
  echo "== $label"
  "${java[@]}" -cp "$cp" io.mlkv.bench.Main run --out "$out/$label" --threads 4 --dim 64 --batch 65536 "$@" 2>/dev/null \
    | grep -E '^(load|\| (read|update|HBM|DRAM|SSD) )'
}
for dist in zipfian uniform; do
  for gpu in OFF ON; do
    run "c-2x-$dist-$gpu" -w workloadc --records 2000000 --operations 300 --distribution "$dist" \
      --hbm-entries 1000000 --dram-mb 64 --gpu "$gpu"
    run "a-10x-$dist-$gpu" -w workloada --records 4000000 --operations 300 --distribution "$dist" \
      --hbm-entries 400000 --dram-mb 128 --gpu "$gpu"
  done
done
