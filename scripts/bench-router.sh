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
# drift between criterion's benches). It runs when the filter (a regex, as
# criterion reads it) selects any of the GitHub benches; otherwise the
# section of the last run is kept.
github_ids="github/matchit github/rauta-raw github/rauta-path-index github/rauta-safe-default"
run_paired=
if [ -z "$filter" ]; then
    run_paired=1
else
    for id in $github_ids; do
        if [[ "$id" =~ $filter ]]; then run_paired=1; fi
    done
fi
paired_heading="## GitHub API route set, in pairs"
echo >> docs/benchmarks/router.md.tmp
if [ -n "$run_paired" ]; then
    cargo bench -q -p rauta-bench-router --bench github_paired >> docs/benchmarks/router.md.tmp
elif [ -f docs/benchmarks/router.md ] && grep -qxF "$paired_heading" docs/benchmarks/router.md; then
    echo "(kept from the previous run: the filter '$filter' selected no GitHub bench)" >&2
    sed -n "/^$paired_heading\$/,\$p" docs/benchmarks/router.md >> docs/benchmarks/router.md.tmp
fi
mv docs/benchmarks/router.md.tmp docs/benchmarks/router.md
echo "wrote docs/benchmarks/router.md"
