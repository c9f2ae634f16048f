# Sourced by the benchmarks: starts `upkeep repo serve` on a free loopback
# port and waits until it says where it listens.
#
#   serve_repo UPKEEP REPO LOGDIR NAME
#
# Sets `server` (http://127.0.0.1:PORT) and `server_pid`; the caller stops
# the server. Exits with the server's stderr when it does not start.
serve_repo() {
    local upkeep=$1 repo=$2 logs=$3 name=$4
    "$upkeep" repo serve "$repo" --listen 127.0.0.1:0 >"$logs/serve.out" 2>"$logs/serve.err" &
    server_pid=$!
    server=
    for _ in $(seq 100); do
        server=$(sed -n 's/^listening on \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$logs/serve.out")
        [ -n "$server" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || { cat "$logs/serve.err" >&2; exit 1; }
        sleep 0.1
    done
    echo "$name: the server did not start" >&2
    exit 1
}
