#!/usr/bin/env bash
# rauta-stats: exposition output with hostile route names (quotes, backslashes,
# newlines, unicode, empty) parsed by the Python prometheus_client's strict
# OpenMetrics parser and its 0.0.4 text parser; label values must round-trip.
# (promtool runs inside `cargo test`, tests/promtool.rs.)
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
RAUTA_STATS_DUMP_DIR="$dir" cargo test -q --locked -p rauta-stats --test promtool \
    both_formats_round_trip_names_and_agree >/dev/null
target/stats-venv/bin/python - "$dir" <<'PY'
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_prom

d = sys.argv[1]
names = set(open(f"{d}/names.bin", encoding="utf-8").read().split("\0"))
om = list(parse_om(open(f"{d}/metrics.om", encoding="utf-8").read()))
prom = list(parse_prom(open(f"{d}/metrics.prom", encoding="utf-8").read()))
key = lambda fams: sorted((s.name, sorted(s.labels.items()), repr(s.value)) for f in fams for s in f.samples)
assert key(om) == key(prom), "OpenMetrics and 0.0.4 text disagree"
for label in ("route", "virtual_host", "cluster"):
    seen = {s.labels[label] for f in om for s in f.samples if label in s.labels}
    assert seen == names, (label, seen ^ names)
kinds = {f.type for f in om}
assert kinds == {"counter", "gauge", "histogram", "summary"}, kinds
print(f"30-stats: {len(om)} families, {sum(len(f.samples) for f in om)} samples parse as OpenMetrics and 0.0.4 text")
PY
