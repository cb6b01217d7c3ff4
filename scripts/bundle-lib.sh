# Shared by scripts/gpu-bundle.sh and scripts/server-bundle.sh (sourced, not run): what a bundle
# for the device tool's hosts (no JDK, 64 MiB per call with the working tree) does the same way.

# Deletes the entries matching the patterns from a jar.
slim() { # jar, patterns
  local jar=$1; shift
  zip -q -d "$jar" "$@" >/dev/null 2>&1 || true
}

# Keeps only the linux-x86_64 library in RocksDB's jars under $1 (the jar carries every platform's).
slim_rocksdb() { # lib directory
  local jar
  for jar in "$1"/rocksdbjni-*.jar; do
    slim "$jar" 'librocksdbjni-linux32*' 'librocksdbjni-linux64-musl*' 'librocksdbjni-linux-aarch64*' \
      'librocksdbjni-linux-ppc64le*' 'librocksdbjni-linux-s390x*' 'librocksdbjni-linux-riscv64*' \
      'librocksdbjni-osx*' 'librocksdbjni-win64*' 'librocksdbjni-linux-aarch64-musl*' '*.jnilib' '*.dll'
  done
}

# A Java runtime with the given modules at $3, from the JDK at $1, as small as jlink makes it.
jlink_runtime() { # jdk, comma-separated modules, output directory
  "$1/bin/jlink" --add-modules "$2" --strip-debug --no-header-files --no-man-pages --compress=zip-9 --output "$3"
}

# Builds and installs the project, then empties the output directory and makes the bundle's
# folder, mlkv/, in it with the given subdirectories.
start_bundle() { # label, output directory, subdirectories of mlkv/...
  local label=$1 out=$2 d
  shift 2
  echo "[$label] building the project"
  mvn -B -q -ntp -DskipTests install
  rm -rf "$out"
  for d in "$@"; do
    mkdir -p "$out/mlkv/$d"
  done
}

# Packs the output directory's mlkv/ into the named archive beside it, removes the folder, says
# the archive's size, and fails when it leaves no room for the working tree under 64 MiB.
finish_bundle() { # label, output directory, archive name
  local tgz="$2/$3" size
  tar czf "$tgz" -C "$2" mlkv
  rm -rf "$2/mlkv"
  size=$(stat -c %s "$tgz")
  echo "[$1] $tgz: $((size / 1048576)) MiB"
  if [ "$size" -gt $((60 * 1048576)) ]; then
    echo "[$1] too large for the device tool (64 MiB with the working tree)" >&2
    exit 1
  fi
}

before_jars() { # commit, output directory, modules...: that commit's project jars, built in a throwaway
  # worktree and packaged, not installed, so the local repository keeps the current build
  local ref=$1 dest=$2 tree m
  shift 2
  tree=$(mktemp -d)
  git worktree add -q --detach "$tree" "$ref"
  (cd "$tree" && mvn -B -q -ntp -o -DskipTests package -pl "$(IFS=,; echo "$*")" -am)
  mkdir -p "$dest"
  for m in "$@"; do
    cp "$tree/$m/target/$m-0.1.0-SNAPSHOT.jar" "$dest/"
  done
  git worktree remove --force "$tree"
}
