#!/usr/bin/env bash
# Throughput of the reference server's update checks, against stock nginx
# serving the same response bytes as a static file, measured in the same run.
#
#   bench/server_throughput.sh                 3 runs of 10 s each (the default)
#   RUNS=5 DURATION=20s bench/server_throughput.sh
#   CONNECTIONS=128 THREADS=2 bench/server_throughput.sh   wrk's settings
#
# Each request is a 3.1 JSON update check of one app carrying a ping and an
# update event, so each stores two records in the event store before it is
# answered (SQLite, synchronous=FULL). Per run, interleaved:
#
# * upkeep, CUP-signed: POST /service/update2/json?cup2key=..&cup2hreq=..
# * nginx: GET of a static file holding the bytes upkeep answered;
# * upkeep, unsigned: the same POST without CUP parameters.
#
# After each upkeep run the events stored during it are counted: every
# acknowledged (2xx) request must have both of its records in the store
# (requests still in flight when wrk stops may add a few more).
#
# Needs wrk, nginx, sqlite3 and curl; installs the missing ones with apt-get
# when run as root. nginx runs as a throwaway instance on a free loopback
# port with its own configuration in a temporary directory (no access log,
# as upkeep keeps none); all traffic stays on 127.0.0.1.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-3}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
threads=${THREADS:-2}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "server_throughput: please install ${need[*]}" >&2
        exit 1
    fi
    echo "installing ${need[*]}..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/upkeep-throughput.XXXXXX")
server_pid=
nginx_pid=
cleanup() {
    for pid in "$server_pid" "$nginx_pid"; do
        if [ -n "$pid" ]; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. Build.
cd "$root"
echo "building upkeep (release)..." >&2
cargo build --release --quiet -p upkeep-cli
upkeep=$root/target/release/upkeep

# 2. A repository with one release, and its server.
app='{B5A0E0C1-7E57-4C0D-8D1E-000000000001}'
echo "payload" >"$tmp/setup.bin"
"$upkeep" repo init "$tmp/repo" >/dev/null
"$upkeep" repo add "$tmp/repo" --app "$app" --version 2.0 "$tmp/setup.bin" >/dev/null
"$upkeep" repo serve "$tmp/repo" --listen 127.0.0.1:0 >"$tmp/serve.out" 2>"$tmp/serve.err" &
server_pid=$!
server=
for _ in $(seq 100); do
    server=$(sed -n 's/^listening on \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$tmp/serve.out")
    [ -n "$server" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/serve.err" >&2; exit 1; }
    sleep 0.1
done
[ -n "$server" ] || { echo "server_throughput: the server did not start" >&2; exit 1; }

# 3. The request, its CUP parameters, and the answer to serve from nginx.
cat >"$tmp/body.json" <<EOF
{"request":{"protocol":"3.1","dedup":"cr","sessionid":"{0c2a5d43-9f27-4c83-9e4b-6f3d7c1a2b90}","requestid":"{5e7b1c2d-3a4f-4b6c-8d9e-0f1a2b3c4d5e}","@updater":"upkeep","updaterversion":"0.1.0","ismachine":true,"@os":"linux","arch":"x86_64","os":{"platform":"linux","arch":"x86_64"},"app":[{"appid":"$app","version":"1.0","installdate":6500,"ping":{"r":1,"rd":6530},"updatecheck":{},"event":[{"eventtype":3,"eventresult":1,"previousversion":"0.9","nextversion":"1.0"}]}]}}
EOF
key_id=$(sed -n 's/^cup_key_id = \([0-9]*\)$/\1/p' "$tmp/repo/repo.toml")
nonce=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
hreq=$(sha256sum "$tmp/body.json" | cut -d' ' -f1)
signed_url="$server/service/update2/json?cup2key=$key_id:$nonce&cup2hreq=$hreq"
unsigned_url="$server/service/update2/json"
mkdir "$tmp/www"
curl -sf -X POST -H 'Content-Type: application/json' --data-binary "@$tmp/body.json" \
    -D "$tmp/answer.headers" -o "$tmp/www/answer.json" "$signed_url"
grep -qi '^x-cup-server-proof:' "$tmp/answer.headers" || {
    echo "server_throughput: the answer is not signed" >&2
    exit 1
}
"$upkeep" omaha decode --protocol 3.1 "$tmp/www/answer.json" >"$tmp/answer.decoded"
grep -q '"result_status": "ok"' "$tmp/answer.decoded" || {
    echo "server_throughput: the answer offers no update" >&2
    exit 1
}
cat >"$tmp/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("$tmp/body.json", "rb"))
wrk.body = f:read("*a")
f:close()
EOF

# 4. nginx, on a free loopback port.
port=
for candidate in $(shuf -i 20000-60000 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
        port=$candidate
        break
    fi
done
[ -n "$port" ] || { echo "server_throughput: no free port for nginx" >&2; exit 1; }
mkdir -p "$tmp/nginx/logs"
chmod 755 "$tmp" "$tmp/www"
chmod 644 "$tmp/www/answer.json"
cat >"$tmp/nginx/nginx.conf" <<EOF
user $(id -un);
worker_processes auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    default_type application/json;
    server {
        listen 127.0.0.1:$port;
        root $tmp/www;
    }
}
EOF
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>"$tmp/nginx/logs/stderr" &
nginx_pid=$!
nginx_url=http://127.0.0.1:$port/answer.json
for _ in $(seq 100); do
    curl -sf -o "$tmp/nginx.check" "$nginx_url" 2>/dev/null && break
    kill -0 "$nginx_pid" 2>/dev/null || { cat "$tmp/nginx/logs/stderr" >&2; exit 1; }
    sleep 0.1
done
cmp -s "$tmp/nginx.check" "$tmp/www/answer.json" || {
    echo "server_throughput: nginx does not serve the answer" >&2
    exit 1
}

# 5. The runs.
events() { sqlite3 "$tmp/repo/events.sqlite" 'SELECT count(*) FROM events'; }
# Runs wrk; prints "REQUESTS_PER_SECOND ACKNOWLEDGED".
load() {
    local out requests non2xx errors
    out=$(wrk -t"$threads" -c"$connections" -d"$duration" --latency "$@")
    echo "$out" >>"$tmp/wrk.log"
    requests=$(echo "$out" | sed -n 's/^ *\([0-9]*\) requests in .*/\1/p')
    non2xx=$(echo "$out" | sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p')
    errors=$(echo "$out" | sed -n 's/^ *Socket errors: \(.*\)/\1/p')
    [ -z "$errors" ] || echo "  wrk socket errors: $errors" >&2
    echo "$(echo "$out" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p') $((requests - ${non2xx:-0}))"
}
# Runs wrk against upkeep and checks the store; prints "REQUESTS_PER_SECOND".
upkeep_run() {
    local label=$1 url=$2 before after rps acked stored
    before=$(events)
    read -r rps acked < <(load -s "$tmp/post.lua" "$url")
    sleep 1
    after=$(events)
    stored=$((after - before))
    if [ "$stored" -lt $((2 * acked)) ]; then
        echo "server_throughput: $label: $acked requests acknowledged, only $stored events stored" >&2
        exit 1
    fi
    echo "  $label: $rps requests/s, $acked acknowledged, $stored events stored ($((2 * acked)) expected, nothing lost)" >&2
    echo "$rps"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
verdict() { awk -v r="$1" 'BEGIN { print (r >= 0.35 ? "met" : "MISSED") }'; }

# Ratios are taken within each run (upkeep against the nginx run between
# its two) and their median reported: a machine that slows down for a
# while then slows both sides of a ratio alike.
signed=() plain=() baseline=() signed_ratio=() plain_ratio=()
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for i in $(seq "$runs"); do
    echo "run $i (load average $(cut -d' ' -f1-3 /proc/loadavg)):" >&2
    signed+=("$(upkeep_run "upkeep, CUP-signed" "$signed_url")")
    [ -n "${signed[-1]}" ] || exit 1
    read -r rps _ < <(load "$nginx_url")
    echo "  nginx, static file: $rps requests/s" >&2
    baseline+=("$rps")
    plain+=("$(upkeep_run "upkeep, unsigned" "$unsigned_url")")
    [ -n "${plain[-1]}" ] || exit 1
    signed_ratio+=("$(ratio "${signed[-1]}" "$rps")")
    plain_ratio+=("$(ratio "${plain[-1]}" "$rps")")
    echo "  this run: signed ${signed_ratio[-1]}x, unsigned ${plain_ratio[-1]}x nginx" >&2
done

base=$(median "${baseline[@]}")
s=$(median "${signed[@]}")
p=$(median "${plain[@]}")
load_now=$(cut -d' ' -f1-3 /proc/loadavg)
echo "update checks with a ping and an event each, medians of $runs runs of $duration, wrk -t$threads -c$connections, $(nproc) cores, load average $load_now"
printf 'nginx, the answer as a static file (baseline)  %9.0f requests/s\n' "$base"
sr=$(median "${signed_ratio[@]}")
pr=$(median "${plain_ratio[@]}")
printf 'upkeep, CUP-signed                             %9.0f requests/s   %sx the baseline (median of the runs'"'"' ratios)   target >= 0.35x: %s\n' \
    "$s" "$sr" "$(verdict "$sr")"
printf 'upkeep, unsigned                               %9.0f requests/s   %sx the baseline (median of the runs'"'"' ratios)\n' \
    "$p" "$pr"
