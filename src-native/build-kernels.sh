#!/usr/bin/env sh
# Compiles src-native/cuda/*.cu into one fatbin (sm_80 and sm_90 machine code plus compute_90
# PTX) at $1/mlkv_table.fatbin. Without nvcc on the PATH it says so and succeeds, so the build
# works on machines without CUDA; the GPU tier then reports that its kernels were not built.
set -eu
out_dir="$1"
src="$(dirname "$0")/cuda/mlkv_table.cu"
out="$out_dir/mlkv_table.fatbin"
if ! command -v nvcc >/dev/null 2>&1; then
  echo "[mlkv-gpu] nvcc not on the PATH: GPU kernels not built (the GPU tier will say so when opened)"
  exit 0
fi
if [ -f "$out" ] && [ "$out" -nt "$src" ]; then
  echo "[mlkv-gpu] $out is up to date"
  exit 0
fi
mkdir -p "$out_dir"
echo "[mlkv-gpu] compiling $src with $(nvcc --version | tail -1)"
nvcc -fatbin -O3 -std=c++17 \
  -gencode arch=compute_80,code=sm_80 \
  -gencode arch=compute_90,code=sm_90 \
  -gencode arch=compute_90,code=compute_90 \
  -o "$out.tmp" "$src"
mv "$out.tmp" "$out"
