#!/usr/bin/env bash
# Runs the benchmarks. Each prints its figures next to a baseline measured
# in the same run, so the ratios hold whatever machine runs them.
#
#   bench/run.sh          the quick ones: plugin load and call costs, the
#                         daemon and its IPC path (bench/ipc.sh)
#   bench/run.sh --all    also the end-to-end update of a 256 MiB payload
#                         (bench/update_256mib.sh; a few minutes, ~1 GiB of
#                         temporary disk) and the reference server's update
#                         checks against nginx (bench/server_throughput.sh;
#                         about two minutes, installs wrk and nginx if needed)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

all=false
for arg in "$@"; do
    case $arg in
        --all) all=true ;;
        *) echo "usage: bench/run.sh [--all]" >&2; exit 2 ;;
    esac
done

scripts/build-plugins.sh exists-path >/dev/null
cargo bench -p upkeep-plugin-host --bench plugin_call
bench/ipc.sh
if $all; then
    bench/update_256mib.sh
    bench/server_throughput.sh
fi
