#!/usr/bin/env bash
# Runs the benchmarks. Each prints its figures next to a baseline measured
# in the same run, so the ratios hold whatever machine runs them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/build-plugins.sh exists-path >/dev/null
cargo bench -p upkeep-plugin-host --bench plugin_call
