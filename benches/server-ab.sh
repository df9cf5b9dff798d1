#!/usr/bin/env bash
# A/B of two server settings on the load of benches/load-compare.sh: the
# same 100k x 384 data directory searched over gRPC with the server started
# with flags A, then flags B, then in-process, in rounds (the order of A and
# B alternating between rounds), and the median of each side's ratio to the
# in-process run of its round.
#
#   benches/server-ab.sh OUT_DIR "FLAGS A" "FLAGS B" [CONCURRENCY...]
#   e.g. benches/server-ab.sh bench-out/ab "--set limits.worker_nice=0" \
#            "--set limits.worker_nice=10" 4 8
#
# The server also listens on a Unix socket; KYRO_AB_TRANSPORT_A and
# KYRO_AB_TRANSPORT_B (`tcp`, the default, or `unix`) choose what each side's
# load generator connects to. Environment as in load-compare.sh: KYRO_ROUNDS
# (6), KYRO_DURATION (10), KYRO_POINTS (100000), KYRO_DATASET,
# CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: benches/server-ab.sh OUT_DIR "FLAGS A" "FLAGS B" [CONCURRENCY...]}
flags_a=${2?}
flags_b=${3?}
shift 3
concurrencies=("${@:-8}")
bin=${CARGO_TARGET_DIR:-target}/release
data_set=${KYRO_DATASET:-../shared/datasets/minilm-npm-50k}
points=${KYRO_POINTS:-100000}
duration=${KYRO_DURATION:-10}
rounds=${KYRO_ROUNDS:-6}
mkdir -p "$out"
data=$(mktemp -d /tmp/kyro-ab-XXXXXX)
socket=$data/text.sock
address_of() { # TRANSPORT
    case $1 in
        tcp) echo http://127.0.0.1:50051 ;;
        unix) echo "unix:$socket" ;;
        *) echo "unknown transport $1 (tcp or unix)" >&2; exit 1 ;;
    esac
}
addr_a=$(address_of "${KYRO_AB_TRANSPORT_A:-tcp}")
addr_b=$(address_of "${KYRO_AB_TRANSPORT_B:-tcp}")
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null && wait $server; rm -rf "$data"' EXIT

common=(--base "$data_set/base.fvecs" --queries "$data_set/query.fvecs"
        --points "$points" --no-recall)

# shellcheck source=benches/server-lib.sh
. benches/server-lib.sh

# start_server_with FLAGS: FLAGS split into words, and the Unix socket.
start_server_with() {
    # shellcheck disable=SC2086 # the flags are words on purpose
    start_server --set "instances.text.listen_unix=$socket" $1
}

start_server_with ""
key=$(sed -n 's/^admin key (shown once, stored hashed): //p' "$out/server.out")
grpc() { # ADDRESS ARGS...
    local address=$1
    shift
    "$bin/kyro-bench" load --addr "$address" --key "$key" "${common[@]}" "$@"
}
echo "== preload ($points points) over gRPC"
grpc http://127.0.0.1:50051 --preload --concurrency 1 --duration 1 --json "$out/preload.json"
stop_server

grpc_run() { # NAME FLAGS ADDRESS ROUND C
    start_server_with "$2"
    echo "== round $4: $1 ($2, $3), concurrency $5"
    grpc "$3" --concurrency "$5" --duration "$duration" --json "$out/r$4-$1-c$5.json"
    stop_server
}

for round in $(seq 1 "$rounds"); do
    for c in "${concurrencies[@]}"; do
        if [ $((round % 2)) = 1 ]; then
            grpc_run a "$flags_a" "$addr_a" "$round" "$c"
            grpc_run b "$flags_b" "$addr_b" "$round" "$c"
        else
            grpc_run b "$flags_b" "$addr_b" "$round" "$c"
            grpc_run a "$flags_a" "$addr_a" "$round" "$c"
        fi
        echo "== round $round: in-process, concurrency $c"
        "$bin/kyro-bench" load --in-process "$data/text" "${common[@]}" \
            --concurrency "$c" --duration "$duration" --json "$out/r$round-inproc-c$c.json"
    done
done

python3 - "$out" "$rounds" "$flags_a $addr_a" "$flags_b $addr_b" "${concurrencies[@]}" > "$out/summary.txt" <<'PY'
import json, statistics, sys
out, rounds, flags_a, flags_b, concs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
def ops(name):
    return json.load(open(f"{out}/{name}.json"))["total_ops_per_sec"]
print(f"A: {flags_a or '(defaults)'}\nB: {flags_b or '(defaults)'}")
for c in concs:
    ratios = {"a": [], "b": []}
    for r in range(1, rounds + 1):
        base = ops(f"r{r}-inproc-c{c}")
        a, b = ops(f"r{r}-a-c{c}"), ops(f"r{r}-b-c{c}")
        ratios["a"].append(a / base)
        ratios["b"].append(b / base)
        print(f"  c={c} round {r}: in-process {base:,.0f}, A {a:,.0f} ({100 * a / base:.0f} %), "
              f"B {b:,.0f} ({100 * b / base:.0f} %)")
    for side in ("a", "b"):
        q = ratios[side]
        print(f"c={c} {side.upper()}: median ratio {100 * statistics.median(q):.0f} % "
              f"(range {100 * min(q):.0f}-{100 * max(q):.0f} %)")
PY
cat "$out/summary.txt"
