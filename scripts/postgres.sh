#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the event store's tests.
#
#   scripts/postgres.sh install      install PostgreSQL with apt-get when
#                                    initdb/pg_ctl are missing
#   scripts/postgres.sh start DIR [PORT]
#                                    initdb into DIR/data, listen on
#                                    127.0.0.1:PORT (default: a free port),
#                                    unix socket in DIR; prints the URL
#                                    postgres://upkeep@127.0.0.1:PORT/upkeep
#   scripts/postgres.sh stop DIR     stop it (fast shutdown)
#
# PostgreSQL refuses to run as root: as root, the cluster belongs to the
# user upkeep-pg (created when missing) and DIR is handed to it. Local
# connections are trusted (no password): the cluster is for tests only.
set -euo pipefail

PG_USER=upkeep-pg

die() {
    echo "postgres.sh: $*" >&2
    exit 1
}

# The directory holding initdb and pg_ctl, or nothing.
bindir() {
    local d
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return
        fi
    done
}

# The unprivileged owner of the clusters root starts, created once. Tests
# start clusters in parallel: the lock keeps two of them from racing to
# create the user (the loser's cluster directory was left unusable).
ensure_user() {
    (
        flock 9
        id -u "$PG_USER" >/dev/null 2>&1 ||
            useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
    ) 9>"${TMPDIR:-/tmp}/upkeep-postgres-user.lock"
}

install() {
    if [ -n "$(bindir)" ]; then
        [ "$(id -u)" != 0 ] || ensure_user
        return
    fi
    [ "$(id -u)" = 0 ] || die "PostgreSQL (initdb, pg_ctl) is missing; install it (apt-get install postgresql) or run this as root"
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is missing and apt-get is not available; install PostgreSQL's server binaries"
    echo "==> installing PostgreSQL (apt-get install postgresql)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends postgresql >&2
    [ -n "$(bindir)" ] || die "apt-get installed postgresql but initdb/pg_ctl are not in /usr/lib/postgresql/*/bin"
    ensure_user
}

# Runs a command as the cluster's owner.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    die "no free port found on 127.0.0.1"
}

start() {
    local dir=${1:?usage: postgres.sh start DIR [PORT]} port=${2:-}
    local bin
    bin=$(bindir)
    [ -n "$bin" ] || die "PostgreSQL (initdb, pg_ctl) is not installed; run scripts/postgres.sh install (as root, with apt-get)"
    [ -n "$port" ] || port=$(free_port)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then
        ensure_user
        chown "$PG_USER" "$dir"
    fi
    as_owner "$bin/initdb" -D "$dir/data" -U upkeep --auth=trust -E UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1 || die "initdb failed: $(tail -5 "$dir/initdb.log")"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on" start \
        >"$dir/pg_ctl.log" 2>&1 || die "the server did not start: $(tail -5 "$dir/server.log" 2>/dev/null)"
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U upkeep upkeep \
        >>"$dir/pg_ctl.log" 2>&1 || die "createdb failed: $(tail -5 "$dir/pg_ctl.log")"
    echo "postgres://upkeep@127.0.0.1:$port/upkeep"
}

stop() {
    local dir=${1:?usage: postgres.sh stop DIR}
    local bin
    bin=$(bindir)
    [ -n "$bin" ] || die "PostgreSQL is not installed"
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

case "${1:-}" in
install) install ;;
start) shift; start "$@" ;;
stop) shift; stop "$@" ;;
*) die "usage: postgres.sh install | start DIR [PORT] | stop DIR" ;;
esac
