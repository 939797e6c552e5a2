#!/usr/bin/env bash
# rauta-proxy against nginx as a reverse proxy, with wrk, on loopback.
#
# Both proxies run one worker (nginx `worker_processes 1`, rauta-proxy
# `--threads 1`) pinned to the same CPU, in front of the same upstream (a
# separate nginx answering a fixed 200), with access logs off. wrk and the
# upstream are pinned to the other CPU(s). Each round runs both proxies, in
# alternating order, with the same connections and duration; the report
# gives the median over rounds of requests/s, p50/p99 latency and the
# proxy's CPU time per request (user and system), and the ratios
# rauta-proxy / nginx.
#
# Each round then measures both again with paced clients: every connection
# waits PACE_MS milliseconds (default 1) after each response before it
# sends the next request (wrk's `delay()`, benches/proxy/pace.lua), which
# holds the load well below saturation (about 40% here). With wrk driving
# as fast as it can, the proxy that answers faster also pushes more load
# onto the CPU that wrk and the upstream share, so the saturated p99 mixes
# the proxy's latency with that CPU's time-slicing; the paced p99 compares
# the two at the same offered schedule. PACE_MS=0 skips this part.
#
#   benches/proxy/run.sh [ROUNDS] [DURATION] [CONNECTIONS]
#   benches/proxy/run.sh 5 10s 64          (defaults)
#
# Needs: wrk, nginx (scripts/setup.d/proxy.apt), taskset, 2+ CPUs.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
duration=${2:-10s}
conns=${3:-64}
pace_ms=${PACE_MS:-1}
proxy_cpu=${PROXY_CPU:-1}
load_cpus=${LOAD_CPUS:-0}

for tool in wrk nginx taskset; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (scripts/setup.d/proxy.apt)" >&2; exit 1; }
done
# The `dist` profile: how the binary ships (fat LTO, one codegen unit).
cargo build -q --profile dist -p rauta-proxy
bin=target/dist/rauta-proxy

work=$(mktemp -d /tmp/rauta-bench-proxy.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up_port=$(free_port); nginx_port=$(free_port); rauta_port=$(free_port)
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"

nginx_conf() { # name port body
    mkdir -p "$work/$1"
    cat >"$work/$1/nginx.conf" <<CONF
$user_line
worker_processes 1;
daemon off;
pid $work/$1/nginx.pid;
error_log $work/$1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/$1/body;
    proxy_temp_path $work/$1/proxy;
    fastcgi_temp_path $work/$1/fastcgi;
    uwsgi_temp_path $work/$1/uwsgi;
    scgi_temp_path $work/$1/scgi;
    keepalive_requests 1000000;
    $3
}
CONF
}

# The shared upstream: a fixed 200 with a short body.
nginx_conf upstream "$up_port" "server { listen 127.0.0.1:$up_port; location / { return 200 'hello from upstream\n'; } }"
# nginx as the reverse proxy under test.
nginx_conf proxy "$nginx_port" "
    upstream backend { server 127.0.0.1:$up_port; keepalive 128; }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }"
cat >"$work/rauta.yaml" <<CONF
clusters: [{name: backend, endpoints: ["127.0.0.1:$up_port"]}]
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes: [{name: all, match: {prefix: /}, action: {cluster: backend}}]
CONF

taskset -c "$load_cpus" nginx -p "$work/upstream" -c "$work/upstream/nginx.conf" & pids+=($!)
taskset -c "$proxy_cpu" nginx -p "$work/proxy" -c "$work/proxy/nginx.conf" & pids+=($!)
nginx_master=$!
RUST_LOG=warn taskset -c "$proxy_cpu" "$bin" --config "$work/rauta.yaml" --threads 1 \
    --listen "127.0.0.1:$rauta_port" --admin none >/dev/null & pids+=($!)
rauta_pid=$!

wait_up() { for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; echo "run.sh: port $1 not up" >&2; exit 1; }
wait_up "$up_port"; wait_up "$nginx_port"; wait_up "$rauta_port"
# The processes whose CPU time is counted: nginx's one worker, rauta-proxy.
nginx_pid=$(pgrep -P "$nginx_master" | head -n 1)
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; } # user system

# wrk's latency figures in microseconds.
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; u = v; gsub(/[0-9.]/, "", u);
    if (u == "us") print n; else if (u == "ms") print n * 1000; else if (u == "s") print n * 1e6; else print n }'; }
run_wrk() { # port pid [wrk args] -> "rps p50_us p99_us user_us_per_req sys_us_per_req"
    local out u0 s0 u1 s1 port=$1 pid=$2
    shift 2
    read -r u0 s0 < <(cpu_ticks "$pid")
    out=$(taskset -c "$load_cpus" wrk -t1 -c"$conns" -d"$duration" --latency "$@" "http://127.0.0.1:$port/")
    read -r u1 s1 < <(cpu_ticks "$pid")
    local rps p50 p99 n
    rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
    n=$(awk '/requests in/ { print $1 }' <<<"$out")
    p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    local errs
    errs=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
    [ -n "$errs" ] && echo "  $port: $errs" >&2
    echo "$rps $(to_us "$p50") $(to_us "$p99") $(awk -v n="$n" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v t="$tck" \
        'BEGIN { printf "%.2f %.2f", u / t * 1e6 / n, s / t * 1e6 / n }')"
}

# Warm both up once.
run_wrk "$nginx_port" "$nginx_pid" >/dev/null; run_wrk "$rauta_port" "$rauta_pid" >/dev/null

: >"$work/nginx.txt"; : >"$work/rauta.txt"; : >"$work/nginx-paced.txt"; : >"$work/rauta-paced.txt"
export PACE_MS=$pace_ms
for r in $(seq "$rounds"); do
    if [ $((r % 2)) = 1 ]; then order="nginx rauta"; else order="rauta nginx"; fi
    for who in $order; do
        port=$nginx_port; pid=$nginx_pid
        [ "$who" = rauta ] && { port=$rauta_port; pid=$rauta_pid; }
        res=$(run_wrk "$port" "$pid")
        echo "$res" >>"$work/$who.txt"
        echo "round $r $who: req/s p50_us p99_us user_us/req sys_us/req = $res" >&2
    done
    [ "$pace_ms" = 0 ] && continue
    for who in $order; do
        port=$nginx_port; pid=$nginx_pid
        [ "$who" = rauta ] && { port=$rauta_port; pid=$rauta_pid; }
        res=$(run_wrk "$port" "$pid" -s benches/proxy/pace.lua)
        echo "$res" >>"$work/$who-paced.txt"
        echo "round $r $who paced: req/s p50_us p99_us user_us/req sys_us/req = $res" >&2
    done
done

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -v c="$2" '{ print $c }' "$work/$1.txt" | median; }
n_rps=$(col nginx 1); n_p50=$(col nginx 2); n_p99=$(col nginx 3)
r_rps=$(col rauta 1); r_p50=$(col rauta 2); r_p99=$(col rauta 3)
n_usr=$(col nginx 4); n_sys=$(col nginx 5); r_usr=$(col rauta 4); r_sys=$(col rauta 5)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

cat <<REPORT
rounds: $rounds x $duration, $conns connections, wrk -t1 on CPU $load_cpus, proxies on CPU $proxy_cpu, 1 worker each

| proxy | req/s (median) | p50 latency (us) | p99 latency (us) |
|---|---|---|---|
| nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') | $n_rps | $n_p50 | $n_p99 |
| rauta-proxy | $r_rps | $r_p50 | $r_p99 |
| ratio rauta / nginx | $(ratio "$r_rps" "$n_rps") | $(ratio "$r_p50" "$n_p50") | $(ratio "$r_p99" "$n_p99") |

CPU time per request of the proxy process (median, us; from /proc/PID/stat,
counted in clock ticks of 1/$tck s):

| proxy | user | system |
|---|---|---|
| nginx | $n_usr | $n_sys |
| rauta-proxy | $r_usr | $r_sys |
| ratio rauta / nginx | $(ratio "$r_usr" "$n_usr") | $(ratio "$r_sys" "$n_sys") |

| round | nginx req/s, p50 us, p99 us, user us, sys us | rauta-proxy req/s, p50 us, p99 us, user us, sys us |
|---|---|---|
REPORT
paste -d'|' "$work/nginx.txt" "$work/rauta.txt" | awk -F'|' '{ printf "| %d | %s | %s |\n", NR, $1, $2 }'
[ "$pace_ms" = 0 ] && exit 0
p_n_rps=$(col nginx-paced 1); p_n_p50=$(col nginx-paced 2); p_n_p99=$(col nginx-paced 3)
p_r_rps=$(col rauta-paced 1); p_r_p50=$(col rauta-paced 2); p_r_p99=$(col rauta-paced 3)
cat <<REPORT

Paced: every connection waits $pace_ms ms after each response before its next
request (same rounds, same connections and duration):

| proxy | req/s (median) | p50 latency (us) | p99 latency (us) |
|---|---|---|---|
| nginx | $p_n_rps | $p_n_p50 | $p_n_p99 |
| rauta-proxy | $p_r_rps | $p_r_p50 | $p_r_p99 |
| ratio rauta / nginx | $(ratio "$p_r_rps" "$p_n_rps") | $(ratio "$p_r_p50" "$p_n_p50") | $(ratio "$p_r_p99" "$p_n_p99") |

| round | nginx req/s, p50 us, p99 us, user us, sys us | rauta-proxy req/s, p50 us, p99 us, user us, sys us |
|---|---|---|
REPORT
paste -d'|' "$work/nginx-paced.txt" "$work/rauta-paced.txt" | awk -F'|' '{ printf "| %d | %s | %s |\n", NR, $1, $2 }'
