#!/usr/bin/env bash
# rauta-stats: the Python prometheus_client, whose strict OpenMetrics parser
# scripts/test.d/30-stats.sh uses as an independent check. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/stats-venv
if ! "$venv/bin/python" -c 'import prometheus_client' >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'prometheus_client==0.26.0'
fi
