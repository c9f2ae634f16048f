#!/usr/bin/env bash
# The whole test suite, from a fresh checkout: installs the plugin
# toolchain and the stock servers some tests start (nginx, Chromium) if
# missing, builds the sample and test plugins from source, then
# runs every test of the workspace (unit, integration, end-to-end).
#
#   scripts/test.sh                 everything
#   scripts/test.sh -p upkeep-core  extra arguments go to `cargo test`
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

echo "==> building plugins (scripts/build-plugins.sh)"
scripts/build-plugins.sh

echo "==> stock servers the fleet tests start (scripts/install-test-servers.sh)"
scripts/install-test-servers.sh

echo "==> building the systemd shim library (its loader's tests load it)"
cargo build --locked -p upkeep-shim-systemd

echo "==> PostgreSQL for the event store's tests (scripts/postgres.sh)"
scripts/postgres.sh install

echo "==> cargo test"
cargo test --workspace --locked "$@"
