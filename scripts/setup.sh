#!/usr/bin/env bash
# Installs the prerequisites of the test command. Idempotent: each piece is
# skipped when it is already there. Pieces that a single part needs live in
# scripts/setup.d/ and are run from here in name order.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install a Rust toolchain with rustup first" >&2
    exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# Debian packages, installed once.
need_apt=()
apt_need() { dpkg -s "$1" >/dev/null 2>&1 || need_apt+=("$1"); }
for f in scripts/setup.d/*.apt; do
    [ -e "$f" ] || continue
    while read -r pkg; do
        [ -n "$pkg" ] && [ "${pkg#\#}" = "$pkg" ] && apt_need "$pkg"
    done < "$f"
done
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

for f in scripts/setup.d/*.sh; do
    [ -e "$f" ] || continue
    bash "$f"
done
