#!/usr/bin/env bash
# Installs what scripts/fuzz.sh needs: a nightly toolchain and cargo-fuzz.
# Idempotent: each piece is skipped when it is already there.
set -euo pipefail
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
