#!/usr/bin/env bash
# Patch sizes on real data: upkeep's patch (`repo add --delta-from`, the
# real code path) against bsdiff and `zstd --patch-from`, for
#
# * two release builds of upkeep itself, as shipped (`scripts/release.sh
#   --split`: no debug sections, the symbol table kept): the commit before
#   HEAD and HEAD (a small change), and OLD_REV and HEAD (a larger one);
# * the source archives (`git archive`, tar.gz) of the same commits.
#
#   bench/delta_sizes.sh                   OLD_REV defaults to HEAD~20
#   OLD_REV=7fb513e bench/delta_sizes.sh
#
# The builds use git worktrees under target/bench-delta/ and the
# repository's target directory, so only what changed is rebuilt.
# Needs bsdiff and zstd; installs them with apt-get when run as root.
# Prints sizes, each patch as a share of the full file, the format upkeep
# chose (the smaller of zstd and bsdiff), the time it took to make, and for
# a zstd patch the time to apply and verify it with the zstd tool; then,
# through bench/patch_vs_full.sh, the small change's patch against the
# full download through the real client on loopback.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
old_rev=${OLD_REV:-HEAD~20}
work="$root/target/bench-delta"
# The repository's own target directory: only what changed is rebuilt.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

need=()
command -v bsdiff >/dev/null || need+=(bsdiff)
command -v zstd >/dev/null || need+=(zstd)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "delta_sizes.sh: missing ${need[*]}; install them or run as root" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

mkdir -p "$work/out"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# The stripped release binary and the source archive of commit $1, as
# $work/out/<name>.upkeep and .tar.gz.
build() {
    local rev=$1 name=$2 tree="$work/tree-$2"
    git -C "$root" worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"
    git -C "$root" worktree add --detach --force "$tree" "$rev" >/dev/null 2>&1
    (cd "$tree" && cargo build --release --locked -q -p upkeep-cli)
    "$root/scripts/release.sh" --split "$CARGO_TARGET_DIR/release/upkeep" "$work/dist-$name" >/dev/null
    mv "$work/dist-$name/upkeep" "$work/out/$name.upkeep"
    rm -rf "$work/dist-$name"
    git -C "$root" archive --format=tar.gz -o "$work/out/$name.tar.gz" "$rev"
    git -C "$root" worktree remove --force "$tree"
}

build "$old_rev" old
build HEAD~1 prev
build HEAD head
upkeep="$work/head-upkeep"
cp "$work/out/head.upkeep" "$upkeep"

now() { date +%s.%N; }

# upkeep's patch of $1 -> $2 (file name $3) through a scratch repository:
# "<patch bytes> <seconds to make> <seconds to apply and verify>".
upkeep_patch() {
    local repo="$work/repo" a="$work/a/$3" b="$work/b/$3"
    rm -rf "$repo" "$work/a" "$work/b"
    mkdir -p "$work/a" "$work/b"
    cp "$1" "$a"
    cp "$2" "$b"
    "$upkeep" repo init "$repo" >/dev/null
    "$upkeep" repo add "$repo" --app bench --version 1.0 "$a" >/dev/null
    local t0 t1 t2 patch size
    t0=$(now)
    "$upkeep" repo add "$repo" --app bench --version 2.0 --delta-from 1.0 "$b" >/dev/null
    t1=$(now)
    patch=$(find "$repo/targets/apps/bench/2.0" -name "$3.from-1.0.zpatch" | head -1)
    if [ -z "$patch" ]; then
        echo "$(stat -c %s "$2") $(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}') - none"
        return
    fi
    size=$(stat -c %s "$patch")
    # The format repo add chose; a zstd patch is applied and verified with
    # the zstd tool (no tool applies the bsdiff format: "-").
    local format
    format=$("$upkeep" repo list "$repo" --json | grep -o '"format": *"[a-z]*"' | head -1 | grep -o '[a-z]*"$' | tr -d '"')
    if [ "$format" = zstd ]; then
        t1=$(now)
        zstd -q -d --long=31 --patch-from="$1" "$patch" -c | sha256sum >/dev/null
        t2=$(now)
        echo "$size $(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}') $(awk -v a="$t1" -v b="$t2" 'BEGIN{print b-a}') $format"
    else
        echo "$size $(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}') - $format"
    fi
}

row() {
    local label=$1 a=$2 b=$3 name=$4
    local full ours make apply format bs zs
    full=$(stat -c %s "$b")
    read -r ours make apply format < <(upkeep_patch "$a" "$b" "$name")
    bsdiff "$a" "$b" "$work/bs.patch"
    bs=$(stat -c %s "$work/bs.patch")
    zstd -q -f -19 --long=31 --patch-from="$a" "$b" -o "$work/zs.patch"
    zs=$(stat -c %s "$work/zs.patch")
    awk -v l="$label" -v f="$full" -v o="$ours" -v b="$bs" -v z="$zs" -v m="$make" -v p="$apply" -v t="$format" 'BEGIN {
        printf "%-34s %11d %10d (%5.2f %%) %-6s %10d (%5.2f %%) %10d (%5.2f %%)  make %5.1f s  apply+verify %s s  ours/bsdiff %.3f\n",
            l, f, o, 100*o/f, t, b, 100*b/f, z, 100*z/f, m, p, o/b }'
}

printf '%-34s %11s %22s %22s %22s\n' "pair" "full bytes" "upkeep patch" "bsdiff" "zstd --patch-from"
row "upkeep binary, HEAD~1 -> HEAD" "$work/out/prev.upkeep" "$work/out/head.upkeep" upkeep
row "upkeep binary, $old_rev -> HEAD" "$work/out/old.upkeep" "$work/out/head.upkeep" upkeep
row "source tar.gz, HEAD~1 -> HEAD" "$work/out/prev.tar.gz" "$work/out/head.tar.gz" src.tar.gz
row "source tar.gz, $old_rev -> HEAD" "$work/out/old.tar.gz" "$work/out/head.tar.gz" src.tar.gz
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "the HEAD~1 -> HEAD binary: patch against the full file (bench/patch_vs_full.sh)"
"$root/bench/patch_vs_full.sh" "$work/out/prev.upkeep" "$work/out/head.upkeep"
