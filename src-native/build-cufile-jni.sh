#!/usr/bin/env sh
# Compiles src-native/cufile/mlkv_cufile.c (the JNI binding of cuFile, which loads libcufile.so.0
# with dlopen at run time) into $1/libmlkv_cufile.so for linux-x86_64. $2 is a JDK home (for
# jni.h). Without gcc, a JDK's headers or on another platform it says so and succeeds; the cuFile
# path then reports itself unavailable and the POSIX path is used.
set -eu
out_dir="$1"
jdk="$2"
src="$(dirname "$0")/cufile/mlkv_cufile.c"
out="$out_dir/libmlkv_cufile.so"
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "[mlkv-gpu] not linux-x86_64: cuFile binding not built (the POSIX file path will be used)"
  exit 0
fi
if ! command -v gcc >/dev/null 2>&1; then
  echo "[mlkv-gpu] gcc not on the PATH: cuFile binding not built (the POSIX file path will be used)"
  exit 0
fi
if [ ! -f "$jdk/include/jni.h" ]; then
  echo "[mlkv-gpu] no jni.h under $jdk/include: cuFile binding not built (the POSIX file path will be used)"
  exit 0
fi
if [ -f "$out" ] && [ "$out" -nt "$src" ]; then
  echo "[mlkv-gpu] $out is up to date"
  exit 0
fi
mkdir -p "$out_dir"
echo "[mlkv-gpu] compiling $src"
gcc -O2 -std=c11 -Wall -Wextra -Wno-unused-parameter -Werror -fPIC -shared \
  -I"$jdk/include" -I"$jdk/include/linux" -o "$out.tmp" "$src" -ldl
mv "$out.tmp" "$out"
