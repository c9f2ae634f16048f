#!/usr/bin/env bash
# A patch against the full file, through the real client on loopback:
# download + apply + verify of the patch against download + verify of the
# whole new file, in the same run from the same server.
#
#   bench/patch_vs_full.sh OLD NEW         two releases of one file
#   RUNS=9 bench/patch_vs_full.sh OLD NEW  more runs (default 5)
#
# bench/delta_sizes.sh runs it on the release binaries it builds (HEAD~1
# and HEAD). OLD and NEW are published as versions 1.0 and 2.0 of an app
# whose one package is a zip holding the file stored (not compressed), so
# the patch sees the file's own bytes; 2.0 with `--delta-from 1.0`. Every
# run starts from the same machine on 1.0 (installed from the server, so
# its payload is in the cache) and updates it twice, interleaved: once as
# it is (the client sends the fingerprint, takes the patch) and once with
# the cache emptied (the full file). Reported: the client's
# `download_time_ms` of the package (for the patch: download, apply,
# verify against the signed hash, fsync; for the full file: download,
# verify, fsync), the bytes moved, and the medians' ratio (target < 1.0).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/serve.sh
. "$root/bench/serve.sh"
runs=${RUNS:-5}
[ $# -eq 2 ] || { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
old=$(realpath "$1") new=$(realpath "$2")
for tool in jq python3; do
    command -v "$tool" >/dev/null || { echo "patch_vs_full: $tool is needed" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/upkeep-patch-bench.XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$root"
echo "building upkeep (release) and the install-archive plugin..." >&2
cargo build --release --quiet --locked -p upkeep-cli
scripts/build-plugins.sh install-archive >/dev/null
upkeep=${CARGO_TARGET_DIR:-$root/target}/release/upkeep
installer=$root/target/plugins/install-archive.wasm

# The releases: one stored zip each, the file under the same name.
stored_zip() {
    python3 - "$1" "$2" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_STORED) as z:
    z.write(sys.argv[1], "payload.bin")
PY
}
mkdir -p "$tmp/r1" "$tmp/r2"
stored_zip "$old" "$tmp/r1/app.zip"
stored_zip "$new" "$tmp/r2/app.zip"
"$upkeep" repo init "$tmp/repo" >/dev/null
"$upkeep" repo add "$tmp/repo" --app bench --version 1.0 "$tmp/r1/app.zip" >/dev/null
serve_repo "$upkeep" "$tmp/repo" "$tmp" patch_vs_full
mkdir "$tmp/client"
cp "$tmp/repo/client/root.json" "$tmp/repo/client/cup.pub.pem" "$tmp/client/"
sed "s|^server = .*|server = \"$server\"|" "$tmp/repo/client/config.toml" >"$tmp/client/config.toml"
config=$tmp/client/config.toml

# The machine on 1.0, kept as a template.
"$upkeep" register --app bench --version 0 --install-dir "$tmp/install" \
    --installer "$installer" --root "$tmp/state" --config "$config" >/dev/null
"$upkeep" update --json --root "$tmp/state" --config "$config" >/dev/null
mv "$tmp/state" "$tmp/template-state"
mv "$tmp/install" "$tmp/template-install"
echo "making the patch (repo add --delta-from 1.0)..." >&2
"$upkeep" repo add "$tmp/repo" --app bench --version 2.0 --delta-from 1.0 "$tmp/r2/app.zip" |
    sed -n 's/^patch /  patch /p' >&2
full_size=$(stat -c %s "$tmp/r2/app.zip")

# One update of the template machine to 2.0: "<download ms> <bytes moved> <url>".
update() {
    rm -rf "$tmp/state" "$tmp/install"
    cp -a "$tmp/template-state" "$tmp/state"
    cp -a "$tmp/template-install" "$tmp/install"
    [ "$1" = full ] && rm -rf "$tmp/state/downloads/bench"
    "$upkeep" update --json --root "$tmp/state" --config "$config" >"$tmp/update.json" 2>"$tmp/update.err" || {
        cat "$tmp/update.err" >&2
        exit 1
    }
    [ "$(jq -r '.apps[0].version' "$tmp/update.json")" = 2.0 ] || { cat "$tmp/update.json" >&2; exit 1; }
    jq -r '.apps[0].downloads[0] | "\(.download_time_ms) \(.downloaded_bytes) \(.url)"' "$tmp/update.json"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
patched=() full=()
for i in $(seq "$runs"); do
    read -r p_ms p_bytes p_url < <(update patch)
    case "$p_url" in *.zpatch) ;; *) echo "patch_vs_full: run $i did not use the patch ($p_url)" >&2; exit 1 ;; esac
    read -r f_ms f_bytes f_url < <(update full)
    [ "$f_bytes" = "$full_size" ] || { echo "patch_vs_full: run $i moved $f_bytes of $full_size bytes in full" >&2; exit 1; }
    patched+=("$p_ms") full+=("$f_ms")
    echo "run $i: patch $p_ms ms ($p_bytes bytes), full file $f_ms ms ($f_bytes bytes)" >&2
done

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
p=$(median "${patched[@]}") f=$(median "${full[@]}")
echo "patch against full file ($full_size bytes, patch $p_bytes bytes), medians of $runs interleaved runs, $(nproc) cores, load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
awk -v p="$p" -v f="$f" 'BEGIN {
    printf "full download + verify            %6d ms\n", f
    printf "patch download + apply + verify   %6d ms   %.2fx the full download   target < 1.0x: %s\n", p, p / f, (p < f ? "met" : "MISSED")
}'
