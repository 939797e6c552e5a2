#!/usr/bin/env bash
# rauta-xdp: the pieces that build the eBPF program (ebpf/xdp-ebpf). Idempotent:
# every step is skipped when its result is already there.
#   - the nightly toolchain with rust-src (for -Z build-std=core);
#   - bpf-linker 0.13.0 linked against the nightly toolchain's own libLLVM
#     (Debian 12 ships no LLVM of that major version).
set -euo pipefail

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! rustup component list --toolchain nightly --installed | grep -q '^rust-src'; then
    rustup component add rust-src --toolchain nightly
fi

if bpf-linker --version >/dev/null 2>&1; then
    exit 0
fi

sysroot="$(rustc +nightly --print sysroot)"
major="$(rustc +nightly -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
lib="$(find "$sysroot/lib" -maxdepth 1 -name 'libLLVM.so.*' | head -n1)"
if [ -z "$lib" ] || [ -z "$major" ]; then
    echo "setup xdp: no libLLVM in the nightly toolchain ($sysroot/lib)" >&2
    exit 1
fi
# The folder lives outside target/ so that no cargo command removes it.
prefix="${XDG_DATA_HOME:-$HOME/.local/share}/rauta/rust-llvm"
mkdir -p "$prefix/lib"
ln -sf "$lib" "$prefix/lib/libLLVM.so"
ln -sf "$lib" "$prefix/lib/$(basename "$lib")"

echo "setup xdp: cargo install bpf-linker@0.13.0 (LLVM $major from $lib)"
LLVM_PREFIX="$prefix" cargo install bpf-linker@0.13.0 --locked \
    --no-default-features --features "llvm-$major"
bpf-linker --version
