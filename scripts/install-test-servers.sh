#!/usr/bin/env bash
# Installs the stock servers the fleet tests start themselves, from Debian's
# packages: nginx (the load balancer in front of several `upkeep repo serve`
# instances, and a static host of a repository's files) and Chromium (the
# headless browser the dashboard test drives). Idempotent: quick when
# everything is already there. Needs root (or sudo) only when something is
# missing. PostgreSQL comes from scripts/postgres.sh.
set -euo pipefail

packages=(nginx-light chromium)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "test servers: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "test servers: ${missing[*]} missing and not root; install them with apt-get as root" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
# The package lists may be fresh already; a failed update still lets a
# cached list install.
"${sudo[@]}" apt-get update -q >&2 || true
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
# Debian starts the packaged nginx on port 80; the tests run their own.
if command -v systemctl >/dev/null 2>&1; then
    "${sudo[@]}" systemctl disable --now nginx >/dev/null 2>&1 || true
fi
"${sudo[@]}" pkill -x nginx >/dev/null 2>&1 || true
