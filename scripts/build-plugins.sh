#!/usr/bin/env bash
# Builds every plugin under plugins/ into a WebAssembly component and puts it,
# with its manifest, into target/plugins/ (test-only plugins into
# target/plugins/test/). Installs the toolchain first if needed.
#
#   scripts/build-plugins.sh            build all plugins
#   scripts/build-plugins.sh NAME...    build only these
#   PLUGIN_OUT=DIR scripts/build-plugins.sh   put the components elsewhere
#
# The host keeps building with the rustup toolchain; plugins build with
# Debian's rustc-web (first on PATH for this script only) and build-std, as
# plugins/.cargo/config.toml says.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${PLUGIN_OUT:-$root/target/plugins}
test_only=(hostile)

"$root/scripts/install-plugin-toolchain.sh"

if [ $# -gt 0 ]; then
    names=("$@")
else
    names=()
    for manifest in "$root"/plugins/*/upkeep-plugin.toml; do
        names+=("$(basename "$(dirname "$manifest")")")
    done
fi

mkdir -p "$out" "$out/test"
export PATH=/usr/bin:$PATH RUSTC_BOOTSTRAP=1
cd "$root/plugins"
for name in "${names[@]}"; do
    if [ ! -f "$name/upkeep-plugin.toml" ]; then
        echo "build-plugins: no plugin named $name under plugins/" >&2
        exit 1
    fi
    dest=$out
    for t in "${test_only[@]}"; do
        [ "$t" = "$name" ] && dest=$out/test
    done
    # One cargo invocation per plugin: the SDK enables one world per build.
    cargo build --release --quiet --locked -p "$name"
    wasm=target/wasm32-wasip2/release/${name//-/_}.wasm
    cp "$wasm" "$dest/$name.wasm.tmp" && mv "$dest/$name.wasm.tmp" "$dest/$name.wasm"
    cp "$name/upkeep-plugin.toml" "$dest/$name.toml"
    echo "built $dest/$name.wasm ($(stat -c %s "$dest/$name.wasm") bytes)"
done
