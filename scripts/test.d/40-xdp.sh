#!/usr/bin/env bash
# rauta-xdp: builds the real eBPF object (feature `ebpf`), runs the tests that
# parse it without privileges, then, as root, the BPF_PROG_TEST_RUN tests, the
# veth + network-namespace end-to-end tests, the attach/detach leak check and
# rauta-proxy's --xdp flag, one at a time. Network namespaces named rauta-test-* are removed on exit,
# whatever happened. RAUTA_QUICK=1 skips the privileged part.
set -euo pipefail
cd "$(dirname "$0")/../.."

cleanup() {
    # Namespaces left by a test that was killed before its guard ran.
    for ns in $(ip netns list 2>/dev/null | awk '/^rauta-test-/ {print $1}'); do
        ip netns del "$ns" 2>/dev/null || true
    done
}
trap cleanup EXIT

echo "xdp: unprivileged tests with the embedded object"
cargo test -p rauta-xdp -p rauta-xdp-common --features rauta-xdp/ebpf --locked
echo "xdp: rauta-proxy's xdp: lists put back after a failed change (no kernel)"
cargo test -p rauta-proxy --features xdp,rauta-xdp/ebpf --locked --lib xdp::

if [ "${RAUTA_QUICK:-0}" = 1 ]; then
    echo "xdp: RAUTA_QUICK=1, skipping the privileged tests"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "xdp: the kernel tests need root (CAP_BPF, CAP_NET_ADMIN); run as root" >&2
    exit 1
fi

echo "xdp: privileged tests (BPF_PROG_TEST_RUN, veth, attach/detach x100), one at a time"
cargo test -p rauta-xdp --features ebpf --locked -- --ignored --test-threads=1

echo "xdp: rauta-proxy --xdp IFACE in a network namespace (config deny lists, /metrics)"
cargo clippy -p rauta-xdp --features ebpf --all-targets --locked -- -D warnings
cargo clippy -p rauta-proxy --features xdp,rauta-xdp/ebpf --all-targets --locked -- -D warnings
cargo test -p rauta-proxy --features xdp,rauta-xdp/ebpf --locked --test xdp -- --ignored

echo "xdp: no rauta-test-* namespace is left behind"
left="$(ip netns list | awk '/^rauta-test-/ {print $1}')"
if [ -n "$left" ]; then
    echo "xdp: namespaces left behind: $left" >&2
    exit 1
fi

# The benchmark binary in the test profile, briefly: it checks every case's
# verdict. The figures in docs/benchmarks/xdp.md come from `cargo bench`.
echo "xdp: benchmark smoke run (BPF_PROG_TEST_RUN, 10,000 repeats x 3 rounds)"
RAUTA_XDP_BENCH_REPEAT=10000 RAUTA_XDP_BENCH_ROUNDS=3 \
    cargo test -p rauta-xdp --features ebpf --locked --bench test_run

# The control-plane benchmark, one round with a smaller random list: it
# checks the verdicts after every case is denied and allowed again.
echo "xdp: control-plane benchmark smoke run (1 round)"
RAUTA_XDP_CONTROL_ROUNDS=1 RAUTA_XDP_CONTROL_LARGE=4096 \
    cargo test -p rauta-xdp --features ebpf --locked --bench control
