#!/usr/bin/env bash
# The one test command: installs what the tests need (idempotently), then runs
# formatting, lints, every crate's tests, the conformance suites and the
# privileged and tool-based checks in scripts/test.d/, in name order.
#
#   scripts/test.sh            everything
#   RAUTA_QUICK=1 scripts/test.sh   skip the long steps (fuzzing, kernel tests)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
export CARGO_INCREMENTAL=0
# Line tables are enough for a failing test's backtrace; full debug info took
# the test build's target dir to several GiB (a full disk makes the linker
# die with SIGBUS). Set it yourself to keep full debug info.
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
export CARGO_PROFILE_TEST_DEBUG="${CARGO_PROFILE_TEST_DEBUG:-line-tables-only}"

step() { printf '\n== %s\n' "$*"; }

step "prerequisites"
# The whole run needs about 4 GiB for target/; say so up front when the disk
# is short of it, so that a linker dying of a full disk is explained.
free_kib=$(df -Pk . | awk 'NR == 2 { print $4 }')
echo "disk: $((free_kib / 1024)) MiB free where target/ goes"
if [ "${free_kib:-0}" -lt $((5 * 1024 * 1024)) ]; then
    echo "warning: less than 5 GiB free; the build may fail for lack of disk" >&2
fi
scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all --check
# The XDP program is a crate of its own (built for the BPF target).
cargo fmt --check --manifest-path ebpf/xdp-ebpf/Cargo.toml

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The XDP program's crate, checked for the host (lints need no BPF target).
cargo clippy --manifest-path ebpf/xdp-ebpf/Cargo.toml --locked \
    --target-dir target/xdp-ebpf-host -- -D warnings

step "cargo test"
cargo test --workspace --locked

for part in scripts/test.d/*.sh; do
    [ -e "$part" ] || continue
    step "$part"
    bash "$part"
done

step "all tests passed"
