#!/usr/bin/env bash
# rauta-balance with its optional `http` feature (HttpInput), which the
# workspace test run does not enable.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test -p rauta-balance --features http --locked
