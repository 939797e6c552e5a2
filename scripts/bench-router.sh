#!/usr/bin/env bash
# Regenerates docs/benchmarks/router.md: runs the rauta-router benches
# (benches/router: GitHub route set against matchit, scaling against the
# ordered scan, virtual host lookup, full decision) and writes their medians
# and ratios with the machine and the command.
#
#   scripts/bench-router.sh                  all groups, 1 s warm-up, 3 s measurement
#   MEASURE=10 scripts/bench-router.sh       longer measurement
#   scripts/bench-router.sh github           only the groups matching a filter
set -euo pipefail
cd "$(dirname "$0")/.."

warmup="${WARMUP:-1}"
measure="${MEASURE:-3}"
filter="${1:-}"
command="cargo bench -p rauta-bench-router --bench router -- --warm-up-time $warmup --measurement-time $measure $filter"

export RAUTA_BENCH_MACHINE="$(nproc)"
export RAUTA_BENCH_CPU="$(lscpu | sed -n 's/^Model name: *//p' | head -n1)"
export RAUTA_BENCH_DATE="$(date -u '+%Y-%m-%d %H:%M UTC')"
export RAUTA_BENCH_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
export RAUTA_BENCH_COMMAND="${command% }"

$command

target="${CARGO_TARGET_DIR:-target}"
mkdir -p docs/benchmarks
cargo run -q -p rauta-bench-router --bin router-report -- "$target/criterion" > docs/benchmarks/router.md.tmp
# The GitHub set again, in back-to-back pairs (robust to the machine's
# drift between criterion's benches).
if [ -z "$filter" ] || [[ "github" == *"$filter"* ]]; then
    echo >> docs/benchmarks/router.md.tmp
    cargo bench -q -p rauta-bench-router --bench github_paired >> docs/benchmarks/router.md.tmp
fi
mv docs/benchmarks/router.md.tmp docs/benchmarks/router.md
echo "wrote docs/benchmarks/router.md"
