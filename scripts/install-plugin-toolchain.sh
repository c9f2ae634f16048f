#!/usr/bin/env bash
# Installs what building upkeep plugins to WebAssembly needs, from Debian's
# packages: rustc-web (a Rust toolchain whose standard library sources can be
# built for wasm32 with build-std), its LLVM tools (wasm-component-ld links a
# component directly), lld and wasi-libc. Idempotent: quick when everything is
# already there. Needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(rustc-web cargo-web rust-web-src rust-web-llvm lld-22 wasi-libc)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "plugin toolchain: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "plugin toolchain: ${missing[*]} missing and not root; install them with apt-get as root" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q >&2
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}" >&2
