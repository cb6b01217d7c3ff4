#!/usr/bin/env bash
# Installs Azurite (the Azure Storage emulator, npm package "azurite") into .tools/, where the
# token cache's tests look for it (after $AZURITE_BLOB and the PATH). Needs Node.js 18+ and npm.
#
#   scripts/install-azurite.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=3.37.0
if [ -x "$root/.tools/node_modules/.bin/azurite-blob" ]; then
  echo "[azurite] already installed: $("$root/.tools/node_modules/.bin/azurite-blob" --version)"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "[azurite] npm not found; installing Node.js and npm from Debian's packages"
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi
mkdir -p "$root/.tools"
npm install --prefix "$root/.tools" --no-audit --no-fund --loglevel=error "azurite@$version"
echo "[azurite] installed $("$root/.tools/node_modules/.bin/azurite-blob" --version) in .tools/"
