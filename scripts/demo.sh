#!/usr/bin/env bash
# The README's run command: builds rauta-proxy and runs its built-in demo
# (four upstreams in-process, a demo route config, curl commands to try),
# serving on 127.0.0.1:8080 with the admin listener on 127.0.0.1:9901.
#
#   scripts/demo.sh                     the proxy demo (extra args go to rauta-proxy,
#                                       e.g. --listen 127.0.0.1:8081)
#   scripts/demo.sh --tool              the `rauta` tool on examples/config/demo.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "demo: cargo not found; install Rust with rustup first" >&2; exit 1; }

if [ "${1:-}" != "--tool" ]; then
    exec cargo run -q --release -p rauta-proxy -- --demo "$@"
fi

cargo build -q --release -p rauta-cli
rauta=target/release/rauta
cfg=examples/config/demo.yaml

run() { echo "\$ rauta $*"; "$rauta" "$@"; echo; }

run validate "$cfg"
run route "$cfg" GET http://api.example.com/users/7 -H 'x-api-version: 2'
run route "$cfg" GET 'http://api.example.com:8080/repos/rust-lang/regex/events?page=2'
run route "$cfg" GET 'http://api.example.com/search?q=rust' --random 95
run route "$cfg" GET http://www.example.com/about
run route "$cfg" GET 'https://www.example.com/blog/2024/hello?x=1'
run route "$cfg" GET 'https://www.example.com/static/../blog/x'
run route "$cfg" GET 'https://www.example.com/static%2F..%2Fadmin'
run check "$cfg" examples/config/demo-tests.yaml
