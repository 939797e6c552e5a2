#!/usr/bin/env bash
# The rauta tool on the demo configuration (in both shapes): validate, check,
# and a bad config that must fail with a clear error and exit code 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q -p rauta-cli
rauta=target/debug/rauta
$rauta validate examples/config/demo.yaml
$rauta check examples/config/demo.yaml examples/config/demo-tests.yaml
# The same configuration in Envoy's own shape passes the same expectations.
$rauta --envoy check examples/config/demo-envoy.yaml examples/config/demo-tests.yaml
$rauta validate examples/config/demo-envoy.yaml --envoy
# Rate limits: the example loads, and the tool names the local limit.
$rauta validate examples/config/rate-limits.yaml
$rauta check examples/config/rate-limits.yaml examples/config/rate-limits-tests.yaml
$rauta route examples/config/rate-limits.yaml GET http://api.example.com/login | grep -q 'local limit   login: 10 tokens, over it 429'
bad=$(mktemp)
trap 'rm -f "$bad"' EXIT
printf 'virtual_hosts: [{name: a, domains: ["*", "*"], routes: [{name: r, match: {regex: "(+"}, action: {cluster: c}}]}]\n' > "$bad"
set +e
out=$($rauta validate "$bad" 2>&1)
code=$?
set -e
echo "$out"
[ "$code" -eq 1 ] || { echo "cli: expected exit 1 for a bad config, got $code" >&2; exit 1; }
grep -q 'Only a single wildcard domain' <<<"$out"
grep -q 'no argument for repetition operator' <<<"$out"
# An Envoy-shaped file read as RAUTA's says how to read it.
set +e
out=$($rauta validate examples/config/demo-envoy.yaml 2>&1)
code=$?
set -e
[ "$code" -eq 2 ] || { echo "cli: expected exit 2 for the wrong shape, got $code" >&2; exit 1; }
grep -q 'rauta --envoy' <<<"$out"
echo "cli: ok"
