#!/usr/bin/env bash
# The daemon and its IPC path, against baselines measured in the same run.
#
#   bench/ipc.sh              5 rounds (the default)
#   ROUNDS=9 bench/ipc.sh     more
#
# Set up: a repository and its server on 127.0.0.1, a state root with
# `upkeep setup`, one app registered and checked once (so a wake finds the
# last check recent and has nothing to do), then the server is stopped and
# the active version's daemon started.
#
# Measured, each round interleaving every command (30 runs each per round,
# wall clock of the whole process from Python's subprocess):
#
# * `/bin/true` — the baseline: what starting any process costs here;
# * `upkeep wake` with nothing to do, through the daemon;
# * `upkeep wake --in-process` with nothing to do;
# * `upkeep status` through the daemon, and `--in-process` (which reads the
#   state root here and pings the daemon);
# * IPC round trips from a client that is already running (so no process
#   start): `{"op":"ping"}` and `{"op":"status"}`.
#
# Prints the medians over rounds, the ratios to `/bin/true`, the daemon's
# resident memory when idle (VmRSS), and the load average. Targets: any IPC
# round trip ≤ 5 ms, `wake` with nothing to do ≤ 20 ms either way, idle RSS
# ≤ 15 MiB. Traffic goes only to 127.0.0.1 and a Unix socket in a
# temporary directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/serve.sh
. "$root/bench/serve.sh"
rounds=${ROUNDS:-5}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/upkeep-bench-ipc.XXXXXX")
server_pid=
daemon_pid=
cleanup() {
    for pid in "$daemon_pid" "$server_pid"; do
        if [ -n "$pid" ]; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$root"
echo "building upkeep (release) and the install-archive plugin..." >&2
cargo build --release --quiet -p upkeep-cli
scripts/build-plugins.sh install-archive >/dev/null
upkeep=$root/target/release/upkeep
installer=$root/target/plugins/install-archive.wasm

# The repository, its server, the client configuration.
"$upkeep" repo init "$tmp/repo" >/dev/null
mkdir "$tmp/payload"
echo "bench 1.0" >"$tmp/payload/bench.txt"
tar -C "$tmp/payload" -czf "$tmp/bench.tar.gz" bench.txt
"$upkeep" repo add "$tmp/repo" --app bench --version 1.0 "$tmp/bench.tar.gz" >/dev/null
serve_repo "$upkeep" "$tmp/repo" "$tmp" ipc
# The configuration in the state root (its default place), so commands
# without --config go through the daemon.
state=$tmp/state
cp -r "$tmp/repo/client" "$state"
config=$state/config.toml
sed -i "s|^server = .*|server = \"$server\"|" "$config"

# The state root: set up, one app, one check; then no server.
"$upkeep" setup --root "$state" >/dev/null
"$upkeep" register --root "$state" --app bench --version 1.0 \
    --install-dir "$tmp/app" --installer "$installer" >/dev/null
"$upkeep" wake --now --in-process --root "$state" >/dev/null
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=

version=$("$upkeep" status --root "$state" --json | sed -n 's/^  "active_version": "\(.*\)",$/\1/p')
"$state/versions/$version/upkeep" daemon --root "$state" 2>"$tmp/daemon.err" &
daemon_pid=$!
for _ in $(seq 100); do
    [ -S "$state/versions/$version/ipc.sock" ] && break
    sleep 0.05
done
[ -S "$state/versions/$version/ipc.sock" ] || { cat "$tmp/daemon.err" >&2; exit 1; }
out=$("$upkeep" wake --root "$state" 2>&1)
case $out in
    *"next check in"*) ;;
    *) echo "ipc: wake did not find the last check recent: $out" >&2; exit 1 ;;
esac
sleep 1
rss_kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$daemon_pid/status")

python3 - "$rounds" "$upkeep" "$state" "$state/ipc.sock" "$rss_kib" <<'PY'
import json, socket, statistics, subprocess, sys, time

rounds, upkeep, state, sock, rss_kib = sys.argv[1:]
rounds, rss_kib = int(rounds), int(rss_kib)
per_round = 30
cmds = {
    "/bin/true": ["/bin/true"],
    "wake via daemon": [upkeep, "wake", "--root", state],
    "wake in-process": [upkeep, "wake", "--in-process", "--root", state],
    "status via daemon": [upkeep, "status", "--root", state],
    "status in-process": [upkeep, "status", "--in-process", "--root", state],
}

def run(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t

def exchange(request):
    t = time.perf_counter()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall(request)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    assert json.loads(buf)["ok"] is True, buf
    return time.perf_counter() - t

trips = {
    "IPC round trip: ping": b'{"op":"ping","v":1}\n',
    "IPC round trip: status": b'{"op":"status","v":1}\n',
}
medians = {name: [] for name in list(cmds) + list(trips)}
for _ in range(rounds):
    for name, cmd in cmds.items():
        medians[name].append(statistics.median(run(cmd) for _ in range(per_round)))
    for name, request in trips.items():
        medians[name].append(statistics.median(exchange(request) for _ in range(per_round)))

with open("/proc/loadavg") as f:
    load = " ".join(f.read().split()[:3])
base = statistics.median(medians["/bin/true"])
print(f"daemon and IPC: medians of {rounds} rounds x {per_round} runs, load average {load}")
for name, values in medians.items():
    m = statistics.median(values)
    ratio = "" if name == "/bin/true" else f"  ({m / base:.1f}x /bin/true)"
    print(f"  {name:<24} {m * 1000:8.2f} ms{ratio}")
print(f"  daemon idle RSS          {rss_kib / 1024:8.1f} MiB")
PY
