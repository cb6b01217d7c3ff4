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
  "${java[@]}" -cp "$cp" io.mlkv.bench.Main run --out "$out/$label" --threads 4 --dim 64 --batch "${BATCH:-65536}" "$@" 2>/dev/null \
    | grep -E '^(load|\| (read|update|HBM|DRAM|SSD) )'
}
# Reads into device memory (the store's device-pointer path), read-only workload, batches of 64K and 1M keys.
for dist in zipfian uniform; do
  run "c-2x-$dist-ON-device" -w workloadc --records 2000000 --operations 300 --distribution "$dist" \
    --hbm-entries 1000000 --dram-mb 64 --gpu ON --device-reads
done
BATCH=1048576 run "c-2x-zipfian-OFF-1M" -w workloadc --records 2000000 --operations 20 --distribution zipfian \
  --hbm-entries 1000000 --dram-mb 64 --gpu OFF
BATCH=1048576 run "c-2x-zipfian-ON-1M" -w workloadc --records 2000000 --operations 20 --distribution zipfian \
  --hbm-entries 1000000 --dram-mb 64 --gpu ON
BATCH=1048576 run "c-2x-zipfian-ON-device-1M" -w workloadc --records 2000000 --operations 20 --distribution zipfian \
  --hbm-entries 1000000 --dram-mb 64 --gpu ON --device-reads
for dist in zipfian uniform; do
  for gpu in OFF ON; do
    run "c-2x-$dist-$gpu" -w workloadc --records 2000000 --operations 300 --distribution "$dist" \
      --hbm-entries 1000000 --dram-mb 64 --gpu "$gpu"
    run "a-10x-$dist-$gpu" -w workloada --records 4000000 --operations 300 --distribution "$dist" \
      --hbm-entries 400000 --dram-mb 128 --gpu "$gpu"
  done
done
