#!/usr/bin/env bash
# A short tour of the plugin side of upkeep, from a fresh checkout: builds
# the sample plugins from source (installing the toolchain if needed) and
# the upkeep binary, then installs, updates and uninstalls a small app with
# the install-archive plugin, checks it with exists-path and qualifies it
# with qualify-selftest, and records the events with telemetry-jsonl.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n== %s\n' "$*"; }

step "building the sample plugins (scripts/build-plugins.sh)"
scripts/build-plugins.sh
step "building upkeep"
cargo build -q -p upkeep-cli
upkeep=$root/target/debug/upkeep
plugins=$root/target/plugins

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src-1.0/bin" "$work/src-2.0/bin" "$work/payload-1.0" "$work/payload-2.0" "$work/app" "$work/telemetry"
for v in 1.0 2.0; do
    printf '#!/bin/sh\necho "hello from demo app %s"\n' "$v" > "$work/src-$v/bin/hello"
    chmod 755 "$work/src-$v/bin/hello"
    echo "$v" > "$work/src-$v/VERSION"
    (cd "$work/src-$v" && sha256sum bin/hello > SHA256SUMS)
    tar czf "$work/payload-$v/hello-$v.tar.gz" -C "$work/src-$v" .
done
echo "only in 1.0" > "$work/src-1.0/OLD-NOTES"
tar czf "$work/payload-1.0/hello-1.0.tar.gz" -C "$work/src-1.0" .

step "what the installer plugin asks for"
"$upkeep" plugin inspect "$plugins/install-archive.wasm"

step "install 1.0 with install-archive"
"$upkeep" plugin run "$plugins/install-archive.wasm" --app-id org.example.hello --app-version 1.0 \
    --payload "$work/payload-1.0" --install-dir "$work/app"
"$work/app/bin/hello"

step "is it there? exists-path"
"$upkeep" plugin run "$plugins/exists-path.wasm" --app-id org.example.hello --app-dir "$work/app" --marker bin/hello

step "update to 2.0 (files the new version dropped are removed)"
"$upkeep" plugin run "$plugins/install-archive.wasm" --operation update --app-id org.example.hello \
    --from-version 1.0 --app-version 2.0 --payload "$work/payload-2.0" --install-dir "$work/app"
"$work/app/bin/hello"
test ! -e "$work/app/OLD-NOTES" && echo "OLD-NOTES from 1.0 is gone"

step "qualify it: qualify-selftest checks VERSION and SHA256SUMS"
"$upkeep" plugin run "$plugins/qualify-selftest.wasm" --app-id org.example.hello --app-version 2.0 --app-dir "$work/app"

step "record the events: telemetry-jsonl"
cat > "$work/events.json" <<JSON
[{"appid": "org.example.hello", "eventtype": 2, "eventresult": 1, "nextversion": "1.0"},
 {"appid": "org.example.hello", "eventtype": 3, "eventresult": 1, "previousversion": "1.0", "nextversion": "2.0"}]
JSON
"$upkeep" plugin run "$plugins/telemetry-jsonl.wasm" --data-dir "$work/telemetry" --events "$work/events.json"
cat "$work/telemetry/events.jsonl"

step "uninstall"
"$upkeep" plugin run "$plugins/install-archive.wasm" --operation uninstall --app-id org.example.hello --install-dir "$work/app"
echo "left in the install dir: $(ls -A "$work/app" | wc -l) entries"

step "a hostile plugin is stopped at its deadline"
if "$upkeep" plugin run "$plugins/test/hostile.wasm" --payload "$work/payload-1.0" --install-dir "$work/app" -- loop; then
    echo "unexpected: the endless loop returned" >&2
    exit 1
fi
printf '\nshowcase complete\n'
