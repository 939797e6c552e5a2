#!/usr/bin/env bash
# Runs the conformance vectors through the rauta-conformance binary, exactly as
# ../shared/conformance/README.md specifies, one suite at a time.
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=../shared/conformance
if [ ! -d "$shared" ]; then
    echo "conformance: $shared not found (it sits beside the project)" >&2
    exit 1
fi
cargo build -q --release -p rauta-conformance
for suite in routes paths balance; do
    files=("$shared/$suite"/*.yaml)
    echo "-- $suite: ${files[*]}"
    target/release/rauta-conformance "$suite" "${files[@]}"
done
