#!/usr/bin/env bash
# End-to-end update of a 256 MiB payload, against a baseline measured in the
# same run from the same server and URL.
#
#   bench/update_256mib.sh            5 runs of each (the default)
#   RUNS=9 bench/update_256mib.sh     more runs
#   MIB=64 bench/update_256mib.sh     another payload size
#
# The payload is a .tar.gz made with `gzip -1` from random data: random data
# does not compress, so the archive is as large as its content (256 MiB plus
# tar and gzip framing), and the download and verification, not gzip, set
# the pace of the download part. The install part (install-archive unpacking
# it) is reported separately.
#
# Measured, each run with a fresh state directory (so a fresh download) and a
# fresh install directory, upkeep and baseline runs interleaved:
#
# * upkeep: wall clock of `upkeep update --json` for one app registered at
#   version 0 with the install-archive installer: update check (CUP), TUF
#   refresh, download to the staging file while hashing, fsync, rename,
#   install, prefs, event ping. From its JSON summary: `download_time_ms`
#   (transfer + SHA-256 + fsync + rename) and `install_time_ms` (installer
#   plugin load from the cache + unpack).
# * baseline: wall clock of `curl -s -o f URL && openssl dgst -sha256 f` on the
#   package's targets URL (openssl uses the CPU's SHA instructions).
# * baseline with unpacking: the same, then `tar xzf f` into a fresh folder.
#
# Prints the medians and the ratios: upkeep's download and verification
# against the baseline (target ≤ 0.9x), the whole update against the
# baseline with unpacking (target ≤ 1.1x), and the load average at the
# start and the end.
# Traffic goes only to the server this script starts on 127.0.0.1.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/serve.sh
. "$root/bench/serve.sh"
runs=${RUNS:-5}
mib=${MIB:-256}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

for tool in curl openssl jq gzip tar; do
    command -v "$tool" >/dev/null || { echo "update_256mib: $tool is needed" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/upkeep-bench.XXXXXX")
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

# 1. Build.
cd "$root"
echo "building upkeep (release) and the install-archive plugin..." >&2
cargo build --release --quiet -p upkeep-cli
scripts/build-plugins.sh install-archive >/dev/null
upkeep=$root/target/release/upkeep
installer=$root/target/plugins/install-archive.wasm

# 2. The payload.
mkdir "$tmp/src"
head -c "$((mib * 1024 * 1024))" /dev/urandom >"$tmp/src/content.bin"
tar -C "$tmp/src" -cf - content.bin | gzip -1 >"$tmp/payload.tar.gz"
rm -rf "$tmp/src"
size=$(stat -c %s "$tmp/payload.tar.gz")

# 3. The repository and its server.
"$upkeep" repo init "$tmp/repo" >/dev/null
"$upkeep" repo add "$tmp/repo" --app bench --version 1.0 "$tmp/payload.tar.gz" >/dev/null
rm "$tmp/payload.tar.gz"
sha256=$("$upkeep" repo list "$tmp/repo" --json | jq -r '.[0].files[0].sha256')
serve_repo "$upkeep" "$tmp/repo" "$tmp" update_256mib
url=$server/targets/apps/bench/1.0/payload.tar.gz

mkdir "$tmp/client"
cp "$tmp/repo/client/root.json" "$tmp/repo/client/cup.pub.pem" "$tmp/client/"
sed "s|^server = .*|server = \"$server\"|" "$tmp/repo/client/config.toml" >"$tmp/client/config.toml"
config=$tmp/client/config.toml

now_ns() { date +%s%N; }
ms() { echo $(($1 / 1000000)); }

# Reads the file once so both sides start with it in the server's page cache.
cat "$tmp/repo/targets/apps/bench/1.0/payload.tar.gz" >/dev/null

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
upkeep_total=() upkeep_download=() upkeep_install=() upkeep_rest=() baseline=() baseline_tar=()
for i in $(seq "$runs"); do
    # upkeep: a fresh state directory and install directory each run.
    state=$tmp/state-$i
    "$upkeep" register --app bench --version 0 --install-dir "$tmp/install-$i" \
        --installer "$installer" --root "$state" --config "$config" >/dev/null
    t0=$(now_ns)
    "$upkeep" update --json --root "$state" --config "$config" >"$tmp/update.json" 2>"$tmp/update.err" || {
        cat "$tmp/update.err" >&2
        exit 1
    }
    t1=$(now_ns)
    result=$(jq -r '.apps[0].result' "$tmp/update.json")
    [ "$result" = updated ] || { echo "update_256mib: update result $result" >&2; cat "$tmp/update.json" >&2; exit 1; }
    upkeep_total+=("$(ms $((t1 - t0)))")
    upkeep_download+=("$(jq '.apps[0].downloads[0].download_time_ms' "$tmp/update.json")")
    upkeep_install+=("$(jq '.apps[0].install_time_ms' "$tmp/update.json")")
    upkeep_rest+=("$((upkeep_total[-1] - upkeep_install[-1]))")
    rm -rf "$state" "$tmp/install-$i"

    # Baseline: the same URL, the file written next to the state directories.
    t0=$(now_ns)
    digest=$(curl -s -o "$tmp/f" "$url" && openssl dgst -sha256 "$tmp/f")
    t1=$(now_ns)
    [ "${digest##* }" = "$sha256" ] || { echo "update_256mib: baseline digest differs: $digest" >&2; exit 1; }
    baseline+=("$(ms $((t1 - t0)))")
    rm -f "$tmp/f"

    # Baseline with unpacking: the same, then tar xzf into a fresh folder.
    mkdir "$tmp/untar-$i"
    t0=$(now_ns)
    digest=$(curl -s -o "$tmp/f" "$url" && openssl dgst -sha256 "$tmp/f" && tar -C "$tmp/untar-$i" -xzf "$tmp/f")
    t1=$(now_ns)
    [ "${digest##* }" = "$sha256" ] || { echo "update_256mib: baseline digest differs: $digest" >&2; exit 1; }
    baseline_tar+=("$(ms $((t1 - t0)))")
    rm -rf "$tmp/f" "$tmp/untar-$i"
    echo "run $i: upkeep ${upkeep_total[-1]} ms (download ${upkeep_download[-1]} ms, install ${upkeep_install[-1]} ms), curl + openssl ${baseline[-1]} ms, with tar xzf ${baseline_tar[-1]} ms" >&2
done

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t ? "met" : "MISSED") }'; }

total=$(median "${upkeep_total[@]}")
download=$(median "${upkeep_download[@]}")
install=$(median "${upkeep_install[@]}")
rest=$(median "${upkeep_rest[@]}")
base=$(median "${baseline[@]}")
base_tar=$(median "${baseline_tar[@]}")
dl_ratio=$(ratio "$download" "$base")
whole_ratio=$(ratio "$total" "$base_tar")
load=$(cut -d' ' -f1-3 /proc/loadavg)

echo "update of a $mib MiB payload ($size bytes, .tar.gz of random data), medians of $runs interleaved runs, $(nproc) cores, load average $load_start at the start, $load at the end"
printf 'curl + openssl dgst (baseline)             %8d ms\n' "$base"
printf 'curl + openssl dgst + tar xzf (baseline)   %8d ms\n' "$base_tar"
printf 'upkeep download + verify                   %8d ms   %5sx curl + openssl           target ≤ 0.9x: %s\n' \
    "$download" "$dl_ratio" "$(verdict "$dl_ratio" 0.9)"
printf 'upkeep update without the install          %8d ms   %5sx curl + openssl\n' \
    "$rest" "$(ratio "$rest" "$base")"
printf 'upkeep install (install-archive)           %8d ms   %5sx tar xzf (%d ms)\n' \
    "$install" "$(ratio "$install" "$((base_tar - base))")" "$((base_tar - base))"
printf 'upkeep update, whole (incl. install)       %8d ms   %5sx curl + openssl + tar xzf target ≤ 1.1x: %s\n' \
    "$total" "$whole_ratio" "$(verdict "$whole_ratio" 1.1)"
