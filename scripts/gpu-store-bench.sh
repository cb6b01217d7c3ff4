#!/usr/bin/env bash
# Runs on the CUDA host from the unpacked bundle: the tiered store with and without its HBM tier,
# same workloads, same run. Zipfian (theta 0.99) and uniform batches of 65,536 keys (BATCH) of
# dim 64; the table is 2x and 10x the HBM tier. Results: $OUT.
# CASES picks groups (default all): device (reads into device memory), hybrid (DRAM holds the
# whole table, as in HierarchicalKV's hybrid mode), writeback (HBM write-back on workload A),
# host (host arrays, GPU OFF against ON), writes (multiPut only: OFF, ON, ON with HBM write-back),
# admission (the hybrid zipfian case with SECOND_MISS HBM admission), train (embedding-train:
# lookups then gradient accumulation into the same rows; OFF, ON, ON with write-back, each ON
# also with keys, rows and deltas in device memory).
# spill (device reads, table 8x HBM, DRAM a tenth of the table: without the HBM spill log, with it
# over the automatic path and over POSIX).
# hkv (mlkv-bench store-bench: device reads of 1M-key batches by one caller, timed as HierarchicalKV
# times its hybrid find, against the store without a GPU; STORE_BENCH_OPTS adds options).
# WB_DISTS narrows the write-back group's distributions. JAVA_OPTS adds JVM options to every run
# (a switch such as -Dmlkv.rocksdbClockCache=true, or a flight recording).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
cases=${CASES:-hkv device hybrid admission train writeback writes host spill}
cp=$(printf '%s:' "$here"/lib/*.jar)
java=("$here/jre/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Xmx16g)
# shellcheck disable=SC2206 # the options are meant to split
java+=(${JAVA_OPTS:-})
run() { # label, then run options
  local label=$1; shift
  echo "== $label"
  "${java[@]}" -cp "$cp" io.mlkv.bench.Main run --out "$out/$label" --threads 4 --dim 64 --batch "${BATCH:-65536}" "$@" 2>/dev/null \
    | grep -E '^(load|spill log path|\| (read|update|train[a-z_-]*|HBM|DRAM|SPILL|SSD) )'
}
has() { [[ " $cases " == *" $1 "* ]]; }
mode_opts() { # OFF, ON, ON-wb, ON-device or ON-wb-device -> the run options it stands for, in $opts
  opts=()
  [[ $1 == OFF ]] && opts+=(--gpu OFF) || opts+=(--gpu ON)
  [[ $1 == *wb* ]] && opts+=(--hbm-write-back)
  [[ $1 == *device ]] && opts+=(--device-reads)
  return 0
}
c2x=(-w workloadc --records 2000000 --hbm-entries 1000000)
a10x=(-w workloada --records 4000000 --hbm-entries 400000 --dram-mb 128)
if has device; then
  # Reads into device memory (the store's device-pointer path), read-only workload, batches of 64K and 1M keys.
  for dist in zipfian uniform; do
    run "c-2x-$dist-ON-device" "${c2x[@]}" --operations 300 --distribution "$dist" --dram-mb 64 --gpu ON --device-reads
  done
  BATCH=1048576 run "c-2x-zipfian-OFF-1M" "${c2x[@]}" --operations 20 --distribution zipfian --dram-mb 64 --gpu OFF
  BATCH=1048576 run "c-2x-zipfian-ON-device-1M" "${c2x[@]}" --operations 20 --distribution zipfian --dram-mb 64 \
    --gpu ON --device-reads
fi
if has hybrid; then
  # DRAM large enough for the whole table (2,000,000 x 256 B): misses of HBM are DRAM hits.
  for dist in zipfian uniform; do
    run "c-2x-$dist-OFF-dram1g" "${c2x[@]}" --operations 300 --distribution "$dist" --dram-mb 1024 --gpu OFF
    run "c-2x-$dist-ON-device-dram1g" "${c2x[@]}" --operations 300 --distribution "$dist" --dram-mb 1024 --gpu ON \
      --device-reads
  done
fi
if has admission; then
  run "c-2x-zipfian-ON-device-dram1g-second-miss" "${c2x[@]}" --operations 300 --distribution zipfian --dram-mb 1024 \
    --gpu ON --device-reads --hbm-admission SECOND_MISS
fi
if has train; then
  for mode in OFF ON ON-wb ON-device ON-wb-device; do
    mode_opts "$mode"
    run "train-2x-$mode" -w embedding-train --records 2000000 --hbm-entries 1000000 --dram-mb 1024 --operations 300 \
      "${opts[@]}"
  done
fi
if has writeback; then
  for dist in ${WB_DISTS:-zipfian uniform}; do
    for mode in OFF ON ON-wb; do
      mode_opts "$mode"
      run "a-10x-$dist-$mode" "${a10x[@]}" --operations 300 --distribution "$dist" "${opts[@]}"
    done
  done
fi
if has writes; then
  # multiPut only (the read-only workload's mirror), zipfian keys over a table 2x HBM, DRAM 1 GiB.
  printf 'recordcount=2000000\noperationcount=300\nupdateproportion=1.0\nrequestdistribution=zipfian\n' \
    > "$out/workload-update.properties"
  for mode in OFF ON ON-wb; do
    mode_opts "$mode"
    run "u-2x-zipfian-$mode" -w "$out/workload-update.properties" --hbm-entries 1000000 --dram-mb 1024 "${opts[@]}"
  done
fi
if has hkv; then
  echo "== store-bench"
  # shellcheck disable=SC2086
  "${java[@]}" -cp "$cp" io.mlkv.bench.Main store-bench ${STORE_BENCH_OPTS:-} 2>&1 | grep -v '^\[' | grep -v 'SLF4J'
fi
if has spill; then
  # Table 8x HBM (2,000,000 records, HBM 250,000 entries), DRAM 64 MiB (about a tenth of the table): what HBM
  # evicts and DRAM lacks is read again from RocksDB, or from the spill log, over cuFile where the host takes
  # it (AUTO) and over our POSIX path.
  c8x=(-w workloadc --records 2000000 --hbm-entries 250000 --dram-mb 64 --gpu ON --device-reads --operations 300)
  for dist in zipfian uniform; do
    run "c-8x-$dist-ON-device-nospill" "${c8x[@]}" --distribution "$dist"
    run "c-8x-$dist-ON-device-spill-auto" "${c8x[@]}" --distribution "$dist" --hbm-spill-rows 2000000
    run "c-8x-$dist-ON-device-spill-posix" "${c8x[@]}" --distribution "$dist" --hbm-spill-rows 2000000 --file-io POSIX
  done
fi
if has host; then
  for dist in zipfian uniform; do
    for gpu in OFF ON; do
      run "c-2x-$dist-$gpu" "${c2x[@]}" --operations 300 --distribution "$dist" --dram-mb 64 --gpu "$gpu"
    done
  done
fi
