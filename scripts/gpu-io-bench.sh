#!/usr/bin/env bash
# Runs on the CUDA host from the unpacked bundle: the disk's raw sequential bandwidth (dd with
# O_DIRECT), then mlkv-bench gpu-io (device memory to files and back over our POSIX path and over
# cuFile, raw and as GPU table snapshots). First as the host is (cuFile may be refused: the product
# must fall back), then, with GPU_IO_UDEV=1, after creating the udev record cuFile's compatibility
# mode needs on a host without udev (shared/GPU-HOST.md), followed by the cuFile device tests again.
# Results: $OUT/gpu-io*.txt
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
dir=${GPU_IO_DIR:-/var/tmp/mlkv-gpu-io}
gib=${GPU_IO_GIB:-4}
mkdir -p "$out" "$dir"
cp=$(printf '%s:' "$here"/lib/*.jar)
java=("$here/jre/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Xmx24g)

{
  echo "== disk: $(findmnt -no SOURCE,FSTYPE -T "$dir")"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  echo "dd write, O_DIRECT + fsync, ${gib} GiB:"
  dd if=/dev/zero of="$dir/dd.bin" bs=64M count=$((gib * 16)) oflag=direct conv=fsync 2>&1 | tail -1
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  echo "dd read, O_DIRECT, ${gib} GiB:"
  dd if="$dir/dd.bin" of=/dev/null bs=64M iflag=direct 2>&1 | tail -1
  rm -f "$dir/dd.bin"
} | tee "$out/gpu-io-dd.txt"

echo "== gpu-io, host as it is"
timeout 240 "${java[@]}" -cp "$cp" io.mlkv.bench.Main gpu-io --dir "$dir" --gib "$gib" "$@" 2>&1 | tee "$out/gpu-io.txt"

if [ "${GPU_IO_UDEV:-0}" = 1 ]; then
  majmin=$(findmnt -no MAJ:MIN -T "$dir" | tr -d ' ')
  echo "== creating the udev record for block device $majmin (cuFile compatibility mode)"
  mkdir -p /run/udev/data && touch /run/udev/control
  printf 'I:1000000\nE:ID_FS_USAGE=filesystem\nE:ID_FS_TYPE=ext4\n' > "/run/udev/data/b$majmin"
  timeout 240 "${java[@]}" -cp "$cp" io.mlkv.bench.Main gpu-io --dir "$dir" --gib "$gib" "$@" 2>&1 \
    | tee "$out/gpu-io-udev.txt"
  timeout 120 "${java[@]}" -Djava.io.tmpdir="$dir" -jar "$here"/tools/junit-platform-console-standalone-*.jar execute \
    --class-path "$cp" --select-class io.mlkv.gpu.cufile.DeviceFileIoTest --select-class io.mlkv.core.GpuStoreTest \
    --details=tree --disable-banner --disable-ansi-colors 2>&1 | tee "$out/gpu-io-udev-tests.txt"
fi
