#!/usr/bin/env bash
# The main job, from a fresh checkout: builds the sample plugins (installing
# the WebAssembly toolchain if needed) and the upkeep binary, then runs
# `upkeep demo` — a signed repository served on loopback, an app installed
# and updated through the sample plugins, events reported.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/build-plugins.sh >/dev/null
cargo build -q -p upkeep-cli
exec target/debug/upkeep demo "$@"
