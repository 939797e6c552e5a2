#!/usr/bin/env bash
# Builds every fuzz target (nightly, cargo-fuzz) and runs each for 30 s on
# its seed corpus. A crash fails the run; its input is left in
# fuzz/artifacts/<target>/ to become a regression test.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${RAUTA_QUICK:-0}" = 1 ]; then
    echo "fuzz: RAUTA_QUICK=1, building the targets only"
    cargo +nightly fuzz build --fuzz-dir fuzz
    exit 0
fi
scripts/fuzz.sh "${RAUTA_FUZZ_SECONDS:-30}"
