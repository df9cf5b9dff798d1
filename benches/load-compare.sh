#!/usr/bin/env bash
# The server-overhead benchmark of docs/benchmarks.md: the same 100k x 384
# data directory searched over gRPC (kyro-server + kyro-bench load on this
# machine) and in-process (kyro-bench load --in-process), at equal
# concurrency, in alternating rounds, then over gRPC at 50 % and 90 % of the
# gRPC peak for latency.
#
#   benches/load-compare.sh OUT_DIR [CONCURRENCY...]
#
# Each round runs, per concurrency: one Search per call with the lean h2
# client, the same with tonic's client, BatchSearch of 8 (h2 client), and
# next to them (server stopped) the in-process baseline. This machine's speed
# drifts by 10-20 % between minutes, so the gRPC/in-process ratio is taken
# per pair of neighbouring runs and the median over rounds is reported, with
# every round's figures in summary.txt.
#
# Environment: KYRO_ROUNDS (5), KYRO_DURATION seconds per run (10),
# KYRO_POINTS (100000), KYRO_DATASET (../shared/datasets/minilm-npm-50k).
# Uses release binaries from ${CARGO_TARGET_DIR:-target}/release (build them
# with `cargo build --release --workspace --bins`). The query cache is off on
# both sides: the load cycles through 1,000 queries and would otherwise
# measure cache hits.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: benches/load-compare.sh OUT_DIR [CONCURRENCY...]}
shift
concurrencies=("${@:-4}")
bin=${CARGO_TARGET_DIR:-target}/release
data_set=${KYRO_DATASET:-../shared/datasets/minilm-npm-50k}
points=${KYRO_POINTS:-100000}
duration=${KYRO_DURATION:-10}
rounds=${KYRO_ROUNDS:-5}
mkdir -p "$out"
data=$(mktemp -d /tmp/kyro-load-XXXXXX)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null && wait $server; rm -rf "$data"' EXIT

common=(--base "$data_set/base.fvecs" --queries "$data_set/query.fvecs"
        --points "$points")

# shellcheck source=benches/server-lib.sh
. benches/server-lib.sh

start_server
key=$(sed -n 's/^admin key (shown once, stored hashed): //p' "$out/server.out")
addr=http://127.0.0.1:50051
grpc() {
    "$bin/kyro-bench" load --addr "$addr" --key "$key" "${common[@]}" "$@"
}
echo "== preload ($points points) over gRPC"
grpc --preload --concurrency 1 --duration 1 --no-recall --json "$out/preload.json"
stop_server

grpc_runs() { # ROUND C RECALL...
    local round=$1 c=$2
    shift 2
    start_server
    echo "== round $round: gRPC Search, concurrency $c, flat out"
    grpc "$@" --concurrency "$c" --duration "$duration" --json "$out/r$round-grpc-c$c.json"
    echo "== round $round: gRPC Search with tonic's client, concurrency $c"
    grpc --no-recall --client tonic --concurrency "$c" --duration "$duration" \
        --json "$out/r$round-grpc-tonic-c$c.json"
    echo "== round $round: gRPC BatchSearch of 8, concurrency $c"
    grpc --no-recall --batch 8 --concurrency "$c" --duration "$duration" \
        --json "$out/r$round-grpc-batch8-c$c.json"
    stop_server
}

in_process_run() { # ROUND C RECALL...
    local round=$1 c=$2
    shift 2
    echo "== round $round: in-process, concurrency $c, flat out"
    "$bin/kyro-bench" load --in-process "$data/text" "${common[@]}" "$@" \
        --concurrency "$c" --duration "$duration" --json "$out/r$round-inproc-c$c.json"
}

# Each concurrency's gRPC and in-process runs sit next to each other, in
# turns: gRPC first in odd rounds, in-process first in even ones.
for round in $(seq 1 "$rounds"); do
    # The recall pass (every query against exact ground truth) in round 1.
    recall=(--no-recall)
    [ "$round" = 1 ] && recall=()
    for c in "${concurrencies[@]}"; do
        if [ $((round % 2)) = 1 ]; then
            grpc_runs "$round" "$c" "${recall[@]}"
            in_process_run "$round" "$c" "${recall[@]}"
        else
            in_process_run "$round" "$c" "${recall[@]}"
            grpc_runs "$round" "$c" "${recall[@]}"
        fi
    done
done

python3 - "$out" "$rounds" "${concurrencies[@]}" > "$out/summary.txt" <<'PY'
import json, statistics, sys
out, rounds, concs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def ops(name):
    return json.load(open(f"{out}/{name}.json"))["total_ops_per_sec"]
peaks = {}
print("per round, searches/s (ratio to in-process of the same round)")
for c in concs:
    rows = {k: [] for k in ("inproc", "grpc", "grpc-tonic", "grpc-batch8")}
    for r in range(1, rounds + 1):
        base = ops(f"r{r}-inproc-c{c}")
        line = [f"c={c} round {r}: in-process {base:,.0f}"]
        rows["inproc"].append(base)
        for kind in ("grpc", "grpc-tonic", "grpc-batch8"):
            v = ops(f"r{r}-{kind}-c{c}")
            rows[kind].append((v, v / base))
            line.append(f"{kind} {v:,.0f} ({100 * v / base:.0f} %)")
        print("  " + ", ".join(line))
    peaks[c] = statistics.median(v for v, _ in rows["grpc"])
    print(f"c={c} medians: in-process {statistics.median(rows['inproc']):,.0f}; " + "; ".join(
        f"{kind} {statistics.median(v for v, _ in rows[kind]):,.0f} "
        f"(ratio {100 * statistics.median(q for _, q in rows[kind]):.0f} %, "
        f"range {100 * min(q for _, q in rows[kind]):.0f}-{100 * max(q for _, q in rows[kind]):.0f} %)"
        for kind in ("grpc", "grpc-tonic", "grpc-batch8")))
json.dump(peaks, open(f"{out}/peaks.json", "w"))
PY
cat "$out/summary.txt"

start_server
for c in "${concurrencies[@]}"; do
    peak=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$out/peaks.json" "$c")
    for share in 50 90; do
        rate=$(python3 -c "print(round($peak * $share / 100))")
        echo "== gRPC, concurrency $c, $share % of the median peak ($rate ops/s)"
        grpc --no-recall --concurrency "$c" --duration "$duration" --rate "$rate" \
            --json "$out/grpc-c$c-rate$share.json"
    done
done
stop_server
