#!/usr/bin/env bash
# Runs on the CUDA host from the unpacked bundle: times the table's kernels with Nsight Compute
# for the gpu-bench cells given as arguments (default: dim 32, 128Mi slots, load factor 0.5), so
# kernel time can be told apart from call overhead.
#   KERNELS  regex of kernel names to profile (default: the table's batched kernels and the
#            duplicate-marking pre-pass with its scratch fill)
#   METRICS  Nsight Compute metrics (default: duration, DRAM bytes read and written, active warps)
#   NAME     output name (default: ncu-kernels): $OUT/NAME.csv, NAME.log, NAME-last.txt
#   LAST     how many of the last profiled launches to summarise (default 24: one timed cell)
#   BEFORE   1: profile the earlier build in before/ (scripts/gpu-bundle.sh with BEFORE_REF) instead
# Caches are not flushed between kernels (--cache-control none), as in an unprofiled run.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
name=${NAME:-ncu-kernels}
mkdir -p "$out"
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
if [ -z "$ncu" ]; then
  echo "gpu-profile: no ncu on this host" >&2
  exit 2
fi
kernels=${KERNELS:-mlkv_(upsert|assign_only|find|contains|dedup|fill_u64)}
metrics=${METRICS:-gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,sm__warps_active.avg.pct_of_peak_sustained_active}
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--dims 32 --load-factors 0.5)
cp=$(printf '%s:' "$here"/lib/*.jar)
if [ "${BEFORE:-0}" = 1 ]; then
  # The earlier build's project jars first, so they shadow the current ones; dependencies are shared.
  cp=$(printf '%s:' "$here"/before/*.jar)$cp
fi
"$ncu" --clock-control none --cache-control none --kernel-name "regex:$kernels" --metrics "$metrics" \
  --csv "$here/jre/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Xmx24g \
  -cp "$cp" io.mlkv.bench.Main gpu-bench --no-host-api --repeat 1 "${args[@]}" \
  > "$out/$name.csv" 2> "$out/$name.log"
# One line per launch: id, kernel, then each metric as name=value.
python3 - "$out/$name.csv" "${LAST:-24}" > "$out/$name-last.txt" <<'PY'
import csv, sys
rows = {}
with open(sys.argv[1]) as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    key = int(r["ID"])
    rows.setdefault(key, [r["Kernel Name"], r["Grid Size"]])
    rows[key].append("%s=%s" % (r["Metric Name"].split("__")[-1], r["Metric Value"].replace(",", "")))
for key in sorted(rows)[-int(sys.argv[2]):]:
    print(key, " ".join(rows[key]))
PY
cat "$out/$name-last.txt"
