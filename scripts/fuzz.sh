#!/usr/bin/env bash
# Runs upkeep's cargo-fuzz targets (fuzz/fuzz_targets/*.rs).
#
#   scripts/fuzz.sh                 # every target, 60 seconds each
#   scripts/fuzz.sh cup_proof 120   # one target, 120 seconds
#   scripts/fuzz.sh all 300         # every target, 300 seconds each
#   scripts/fuzz.sh --list          # the targets
#
# Installs cargo-fuzz when it is missing. cargo-fuzz needs nightly compiler
# flags; this script uses the installed toolchain with RUSTC_BOOTSTRAP=1, so
# no nightly toolchain is needed. It uses AddressSanitizer when the toolchain
# ships its runtime and links with it, and plain libFuzzer otherwise
# (FUZZ_SANITIZER=address|none forces one). When the rustup toolchain cannot
# build the targets at all, Debian's rustc (package rustc-web, /usr/bin/rustc)
# is tried next.
#
# Environment: FUZZ_SANITIZER, FUZZ_TIMEOUT (seconds one input may take before
# it counts as a crash, default 30), CARGO_BUILD_JOBS (default 1). Crashes land in
# fuzz/artifacts/<target>/, the growing corpus in fuzz/corpus/<target>/ (both
# ignored by git); seeds in fuzz/seeds/<target>/ are read, never written.
# Exits non-zero on a crash.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz_dir="$root/fuzz"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
export RUSTC_BOOTSTRAP=1

targets() {
    for f in "$fuzz_dir"/fuzz_targets/*.rs; do basename "$f" .rs; done
}

if [[ "${1:-}" == "--list" ]]; then
    targets
    exit 0
fi
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    exit 0
fi

which="${1:-all}"
seconds="${2:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || (( seconds < 1 )); then
    echo "fuzz.sh: seconds must be a positive whole number, not '$seconds'" >&2
    exit 2
fi
if [[ "$which" == "all" ]]; then
    mapfile -t run < <(targets)
elif [[ -f "$fuzz_dir/fuzz_targets/$which.rs" ]]; then
    run=("$which")
else
    echo "fuzz.sh: no fuzz target '$which'; there are: $(targets | tr '\n' ' ')" >&2
    exit 2
fi

# cargo-fuzz, once.
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# The toolchain and sanitizer: the first that builds wins.
host="$(rustc -vV | sed -n 's/^host: //p')"
sysroot="$(rustc --print sysroot)"
has_asan_runtime() {
    compgen -G "$1/lib/rustlib/$host/lib/librustc-*_rt.asan.a" >/dev/null
}

choose() {
    local candidates=() rustc_path sanitizer
    if [[ -n "${FUZZ_SANITIZER:-}" ]]; then
        candidates+=("$(command -v rustc) ${FUZZ_SANITIZER}")
        [[ -x /usr/bin/rustc ]] && candidates+=("/usr/bin/rustc ${FUZZ_SANITIZER}")
    else
        has_asan_runtime "$sysroot" && candidates+=("$(command -v rustc) address")
        candidates+=("$(command -v rustc) none")
        if [[ -x /usr/bin/rustc ]]; then
            has_asan_runtime "$(/usr/bin/rustc --print sysroot)" && candidates+=("/usr/bin/rustc address")
            candidates+=("/usr/bin/rustc none")
        fi
    fi
    for c in "${candidates[@]}"; do
        read -r rustc_path sanitizer <<<"$c"
        echo "fuzz.sh: building with $rustc_path ($("$rustc_path" --version)), sanitizer $sanitizer" >&2
        local log
        if log="$(cd "$fuzz_dir" && RUSTC="$rustc_path" cargo fuzz build --sanitizer "$sanitizer" 2>&1)"; then
            echo "$rustc_path $sanitizer"
            return 0
        fi
        echo "$log" | tail -n 15 >&2
        echo "fuzz.sh: that did not build; trying the next way" >&2
    done
    echo "fuzz.sh: no toolchain here builds the fuzz targets" >&2
    return 1
}

read -r rustc_path sanitizer < <(choose)
export RUSTC="$rustc_path"

status=0
summary=()
for t in "${run[@]}"; do
    mkdir -p "$fuzz_dir/corpus/$t" "$fuzz_dir/artifacts/$t"
    corpora=("corpus/$t")
    [[ -d "$fuzz_dir/seeds/$t" ]] && corpora+=("seeds/$t")
    log="$fuzz_dir/artifacts/$t/last-run.log"
    echo "fuzz.sh: running $t for ${seconds}s (sanitizer $sanitizer)" >&2
    set +e
    (cd "$fuzz_dir" && cargo fuzz run --sanitizer "$sanitizer" "$t" "${corpora[@]}" -- \
        -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-30}" \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/") 2>&1 | tee "$log" | grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|Done |==[0-9]+==|SUMMARY|.*panicked|stat::number_of_executed_units)' >&2
    rc=${PIPESTATUS[0]}
    set -e
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    if (( rc == 0 )); then
        summary+=("$t: ${seconds}s, ${execs:-?} executions, no crash")
    else
        summary+=("$t: CRASH or failure (exit $rc) after ${execs:-?} executions; see $log and fuzz/artifacts/$t/")
        status=1
    fi
done

echo
echo "fuzz summary (rustc: $rustc_path, sanitizer: $sanitizer):"
printf '  %s\n' "${summary[@]}"
exit "$status"
