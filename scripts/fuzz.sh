#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a given time and prints how many
# inputs each one executed.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]   (default: 30 s, every target)
#
# Needs nightly and cargo-fuzz (scripts/setup.d/fuzz.sh installs both). Seed
# corpora are generated from the conformance vector inputs
# (../shared/conformance/paths, routes) into fuzz/corpus/<target>/, which is
# not committed. A crash leaves its input in fuzz/artifacts/<target>/ and makes
# this script fail; turn it into a regression test (crates/router/tests/).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-30}"
shift || true
shared="../shared/conformance"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi

# Decodes one YAML scalar as written in the vector files: plain, 'single'
# (with '' for a quote) or "double" (with backslash escapes).
yaml_scalar() {
    local v="$1"
    case "$v" in
        \"*\") v="${v#\"}"; v="${v%\"}"; printf '%b' "$v" ;;
        \'*\') v="${v#\'}"; v="${v%\'}"; printf '%s' "${v//\'\'/\'}" ;;
        *) printf '%s' "$v" ;;
    esac
}

seed() {
    local target="$1" dir="fuzz/corpus/$1" n=0
    mkdir -p "$dir"
    if [ -d "$shared/paths" ]; then
        while IFS= read -r line; do
            n=$((n + 1))
            local value="${line#*input: }"
            case "$target" in
                path_normalize)
                    # Four policy bytes, then the request-target.
                    { printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((n % 256)) \
                        $((n * 7 % 256)) $((n * 13 % 256)) $((n % 8)))"
                      yaml_scalar "$value"; } > "$dir/vector-$n" ;;
                request_validation)
                    { printf 'GET '; yaml_scalar "$value"; printf '\nhost: example.com\nx-a: 1\n'; } \
                        > "$dir/vector-$n" ;;
                *)
                    yaml_scalar "$value" > "$dir/vector-$n" ;;
            esac
        done < <(grep -h '^  input: ' "$shared"/paths/*.yaml)
    fi
    if [ "$target" = config_load ]; then
        # Whole configurations, in RAUTA's shape and in Envoy's.
        for f in examples/config/demo.yaml examples/config/demo-envoy.yaml \
            examples/config/rate-limits.yaml; do
            cp "$f" "$dir/example-$(basename "$f")"
        done
    fi
    if [ "$target" = request_validation ] && [ -d "$shared/routes" ]; then
        while IFS= read -r host; do
            n=$((n + 1))
            printf 'GET /\nhost: %s\n' "$(yaml_scalar "$host")" > "$dir/host-$n"
            printf 'GET http://%s/x HTTP/1.1\nhost: other\n' "$(yaml_scalar "$host")" > "$dir/abs-$n"
        done < <(grep -ho 'authority: [^,}]*' "$shared"/routes/*.yaml | sed 's/^authority: //' | sort -u)
    fi
}

status=0
summary=()
for t in "${targets[@]}"; do
    seed "$t"
    log="fuzz/$t.log"
    echo "== fuzzing $t for ${secs}s"
    if ! cargo +nightly fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 > "$log" 2>&1; then
        status=1
        tail -n 40 "$log"
        echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/" >&2
    fi
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    summary+=("$(printf '%-22s %12s execs in %ss' "$t" "${execs:-?}" "$secs")")
done
printf '\n== fuzz summary\n'
printf '%s\n' "${summary[@]}"
exit "$status"
