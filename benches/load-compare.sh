#!/usr/bin/env bash
# The server-overhead benchmark of docs/benchmarks.md: the same 100k x 384
# data directory searched over gRPC (kyro-server + kyro-bench load on this
# machine; one Search per call, and BatchSearch of 8) and in-process
# (kyro-bench load --in-process), at equal concurrency, then over gRPC at
# 50 % and 90 % of the gRPC peak for latency.
#
#   benches/load-compare.sh OUT_DIR [CONCURRENCY...]
#
# Uses release binaries from ${CARGO_TARGET_DIR:-target}/release (build them
# with `cargo build --release --workspace --bins`) and the shared MiniLM set
# (KYRO_DATASET, default ../shared/datasets/minilm-npm-50k), grown to 100k
# points by jittered copies. The query cache is off on both sides: the load
# cycles through 1,000 queries and would otherwise measure cache hits.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: benches/load-compare.sh OUT_DIR [CONCURRENCY...]}
shift
concurrencies=("${@:-4}")
bin=${CARGO_TARGET_DIR:-target}/release
data_set=${KYRO_DATASET:-../shared/datasets/minilm-npm-50k}
points=${KYRO_POINTS:-100000}
duration=${KYRO_DURATION:-20}
mkdir -p "$out"
data=$(mktemp -d /tmp/kyro-load-XXXXXX)
trap 'kill $server 2>/dev/null && wait $server; rm -rf "$data"' EXIT

common=(--base "$data_set/base.fvecs" --queries "$data_set/query.fvecs"
        --points "$points")

start_server() {
    "$bin/kyro-server" --data-dir "$data" --http-listen 127.0.0.1:0 \
        --set instances.text.query_cache_bytes=0 > "$out/server.out" 2> "$out/server.err" &
    server=$!
    for _ in $(seq 1 600); do
        grep -q '^ready$' "$out/server.out" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "kyro-server did not start" >&2
    exit 1
}

stop_server() {
    kill -TERM "$server"
    wait "$server"
}

start_server
key=$(sed -n 's/^admin key (shown once, stored hashed): //p' "$out/server.out")
addr=http://127.0.0.1:50051
echo "== preload ($points points) over gRPC"
"$bin/kyro-bench" load --addr "$addr" --key "$key" "${common[@]}" --preload \
    --concurrency 1 --duration 1 --no-recall --json "$out/preload.json"
for c in "${concurrencies[@]}"; do
    echo "== gRPC, concurrency $c, flat out"
    "$bin/kyro-bench" load --addr "$addr" --key "$key" "${common[@]}" \
        --concurrency "$c" --duration "$duration" --json "$out/grpc-c$c.json"
    echo "== gRPC BatchSearch of 8, concurrency $c, flat out"
    "$bin/kyro-bench" load --addr "$addr" --key "$key" "${common[@]}" --no-recall \
        --batch 8 --concurrency "$c" --duration "$duration" --json "$out/grpc-batch8-c$c.json"
done
stop_server

for c in "${concurrencies[@]}"; do
    echo "== in-process, concurrency $c, flat out"
    "$bin/kyro-bench" load --in-process "$data/text" "${common[@]}" \
        --concurrency "$c" --duration "$duration" --json "$out/inproc-c$c.json"
done

start_server
for c in "${concurrencies[@]}"; do
    peak=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['total_ops_per_sec'])" "$out/grpc-c$c.json")
    for share in 50 90; do
        rate=$(python3 -c "print(round($peak * $share / 100))")
        echo "== gRPC, concurrency $c, $share % of peak ($rate ops/s)"
        "$bin/kyro-bench" load --addr "$addr" --key "$key" "${common[@]}" --no-recall \
            --concurrency "$c" --duration "$duration" --rate "$rate" --json "$out/grpc-c$c-rate$share.json"
    done
done
stop_server
