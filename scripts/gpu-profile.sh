#!/usr/bin/env bash
# Runs on the CUDA host from the unpacked bundle: times the table's kernels with Nsight Compute
# for one benchmark cell (dim 32, 128Mi slots, load factor 0.5), so kernel time can be told
# apart from call overhead. Output: $OUT/ncu-kernels.csv.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
cp=$(printf '%s:' "$here"/lib/*.jar)
# The fill makes 64 upsert launches; the 14 after it are the timed cell's table kernels.
"$ncu" --clock-control none --kernel-name 'regex:mlkv_(upsert|find|contains)' --launch-skip 64 --launch-count 14 \
  --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active \
  --csv "$here/jre/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Xmx24g \
  -cp "$cp" io.mlkv.bench.Main gpu-bench --dims 32 --load-factors 0.5 --no-host-api --repeat 1 \
  > "$out/ncu-kernels.csv" 2> "$out/ncu.log"
grep -E '"(mlkv_|ID)' "$out/ncu-kernels.csv" | cut -d, -f5,12- | head -60
