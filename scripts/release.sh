#!/usr/bin/env bash
# The release build of upkeep: the binary as it is shipped and published
# (debug information split off, so full and patch self-updates stay small)
# and its debug information beside it.
#
#   scripts/release.sh [OUT]            build (cargo build --release) and split into OUT (default dist/)
#   scripts/release.sh --split BIN OUT  split an already built binary BIN into OUT
#
# OUT receives:
#   upkeep         the binary to ship: no debug sections and no symbol
#                  table (a quarter of the size again), a .gnu_debuglink
#                  naming upkeep.debug, and the build ID
#   upkeep.debug   the symbols and line tables: a panic's backtrace
#                  (RUST_BACKTRACE=1) names functions, files and lines when
#                  it lies beside the binary, in a .debug/ folder beside it,
#                  or under /usr/lib/debug/.build-id/; without it, only
#                  addresses
#   SHA256SUMS     the SHA-256 of both
#
# Publish OUT/upkeep with `upkeep repo add --app <updater app> --version V
# --delta-from <earlier versions> OUT/upkeep`; keep upkeep.debug with the
# release (docs/service.md, "Releases of upkeep itself").
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "release: $*" >&2; exit 1; }

for tool in objcopy readelf sha256sum; do
    command -v "$tool" >/dev/null || die "$tool (binutils, coreutils) is needed"
done

split() {
    local bin=$1 out=$2
    [ -f "$bin" ] || die "$bin: no such file"
    readelf -S "$bin" >/dev/null 2>&1 || die "$bin is not an ELF file"
    mkdir -p "$out"
    local tmp
    tmp=$(mktemp -d "$out/.release.XXXXXX")
    trap 'rm -rf "$tmp"' RETURN
    objcopy --only-keep-debug --compress-debug-sections=zlib "$bin" "$tmp/upkeep.debug"
    # The link is made from inside the output folder so that it names the
    # file alone, as a debugger looks it up beside the binary.
    objcopy --strip-all "$bin" "$tmp/upkeep.stripped"
    (cd "$tmp" && objcopy --add-gnu-debuglink=upkeep.debug upkeep.stripped upkeep)
    rm "$tmp/upkeep.stripped"
    chmod 0755 "$tmp/upkeep"
    chmod 0644 "$tmp/upkeep.debug"
    (cd "$tmp" && sha256sum upkeep upkeep.debug >SHA256SUMS)
    mv "$tmp/upkeep" "$tmp/upkeep.debug" "$tmp/SHA256SUMS" "$out/"
    local full shipped debug
    full=$(stat -c %s "$bin")
    shipped=$(stat -c %s "$out/upkeep")
    debug=$(stat -c %s "$out/upkeep.debug")
    echo "upkeep: $shipped bytes (built: $full bytes); upkeep.debug: $debug bytes; in $out"
}

case "${1:-}" in
    --split)
        [ $# -eq 3 ] || die "usage: scripts/release.sh --split BIN OUT"
        split "$2" "$3"
        ;;
    -h|--help)
        sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
        ;;
    *)
        out=${1:-$root/dist}
        cd "$root"
        echo "building upkeep (release)..." >&2
        cargo build --release --locked -p upkeep-cli
        split "${CARGO_TARGET_DIR:-$root/target}/release/upkeep" "$out"
        ;;
esac
