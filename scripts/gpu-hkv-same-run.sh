#!/usr/bin/env bash
# Runs on the CUDA host from the unpacked bundle (scripts/gpu-bundle.sh with
# HKV_BINARY=.../merlin_hashtable_benchmark): our table benchmark and HierarchicalKV's own in the
# same call, so every ratio is same GPU, same run. gpu-bench --host-api=false over dims 8, 32 and
# 64, then HierarchicalKV's pure-HBM tables (its program goes on to hybrid modes and is cut at
# HKV_TIMEOUT seconds, default 330, by when its pure-HBM part has printed), then gpu-bench dim 64
# once more. Results in $OUT (default ./out): gb-1.md, hkv-pure.md, gb-2.md, and same-run.md,
# each cell as ours / HierarchicalKV's (ratio).
#
#   tar xzf .bundle/mlkv-gpu-bundle.tgz -C /tmp && /tmp/mlkv/gpu-hkv-same-run.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
hkv="$here/hkv/merlin_hashtable_benchmark"
if [ ! -x "$hkv" ]; then
  echo "gpu-hkv-same-run: no $hkv in the bundle: build it with HKV_BINARY=.../merlin_hashtable_benchmark" >&2
  exit 2
fi
java=("$here/jre/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Xmx24g)
cp=$(printf '%s:' "$here"/lib/*.jar)

timeout 150 "${java[@]}" -cp "$cp" io.mlkv.bench.Main gpu-bench --host-api=false > "$out/gb-1.md" 2> "$out/gb-1.log"
echo "gpu-bench dims 8,32,64: exit code $?"
# Line-buffered, so that what it printed before the cut is kept.
timeout "${HKV_TIMEOUT:-330}" stdbuf -oL "$hkv" > "$out/hkv-pure.md" 2>&1
echo "HierarchicalKV: exit code $? (124: cut after its pure-HBM part, as intended)"
timeout 60 "${java[@]}" -cp "$cp" io.mlkv.bench.Main gpu-bench --host-api=false --dims 64 > "$out/gb-2.md" 2> "$out/gb-2.log"
echo "gpu-bench dim 64: exit code $?"

python3 - "$out/hkv-pure.md" "$out/gb-1.md" "$out/gb-2.md" > "$out/same-run.md" <<'PY'
import re, sys
hkv, dim, section = {}, None, 0
for line in open(sys.argv[1]):
    m = re.search(r"dim = (\d+),", line)
    if m:
        dim, section = int(m.group(1)), 0
    if "hybrid" in line:
        break
    if line.startswith("|    λ"):
        section += 1
        continue
    m = re.match(r"\|\s*([\d.]+) \|(.*)", line)
    if m and dim:
        v = [float(x) for x in m.group(2).split("|") if x.strip()]
        cell = hkv.setdefault((dim, float(m.group(1))), {})
        if section == 1:
            cell.update(insert_or_assign=v[0], find=v[1], find_or_insert=v[2], assign=v[3], insert_and_evict=v[6])
        else:
            cell.update(export_batch=v[0], contains=v[2])
cols = ["insert_or_assign", "find", "find_or_insert", "assign", "insert_and_evict", "export_batch", "contains"]
ours = {}
for path in sys.argv[2:]:
    for line in open(path):
        m = re.match(r"\| (\d+), \d+M \| ([\d.]+) \|((?: [\d.]+ \|){7})$", line.strip())
        if m:
            ours.setdefault((int(m.group(1)), float(m.group(2))), []).append([float(x) for x in m.group(3).split("|") if x.strip()])
print("| dim, λ | " + " | ".join(cols) + " |")
print("|---" * (len(cols) + 1) + "|")
for key in sorted(ours):
    if key not in hkv:
        continue
    cells = []
    for i, c in enumerate(cols):
        low = min(r[i] for r in ours[key])
        cells.append("%.2f / %.2f (%.2fx)" % (low, hkv[key][c], low / hkv[key][c]))
    print("| %d, %.2f | %s |" % (key[0], key[1], " | ".join(cells)))
print("\nours: the lowest of our runs of that cell; HierarchicalKV: its one run; B-KV/s")
PY
cat "$out/same-run.md"
