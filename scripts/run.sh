#!/usr/bin/env bash
# The README's run command: builds in release mode and starts the whole
# stack with all data under one folder, $KYRO_DATA_DIR (default ./kyro-data):
#   - kyro-server: the text instance (384-dim) on 127.0.0.1:50051, the image
#     instance (512-dim) on 127.0.0.1:50052, /metrics and health on
#     127.0.0.1:9090; its data and keys.toml in $KYRO_DATA_DIR;
#   - kyro-gateway: the REST API on 127.0.0.1:8080 (KYRO_GATEWAY_LISTEN),
#     its database in $KYRO_DATA_DIR/gateway.
# The first start fetches the embedding model when it is absent, provisions
# the gateway's kyro-server key (scopes read, write, service; kept in
# $KYRO_DATA_DIR/gateway/service.key, mode 600) and prints the gateway's
# bootstrap admin key once. Ctrl-C stops both.
# Extra arguments go to kyro-gateway (see `kyro-gateway --help`).
# KYRO_BIN_DIR=<dir> skips the build and runs the binaries in <dir> (e.g.
# the test build's target/debug).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-system-deps.sh
scripts/fetch-model.sh
if [ -n "${KYRO_BIN_DIR:-}" ]; then
    bin="$KYRO_BIN_DIR"
else
    # --workspace --bins: one release build serves the server, the gateway
    # and kyro-bench (RocksDB's C++ is compiled once per feature set).
    cargo build --release --workspace --bins
    bin="${CARGO_TARGET_DIR:-target}/release"
fi
data="${KYRO_DATA_DIR:-kyro-data}"
mkdir -p "$data/gateway"

server_pid=""
gateway_pid=""
# The server's stdout, shown as it comes and kept until it says `ready`.
server_out="$(mktemp)"
stop() {
    trap - INT TERM EXIT
    [ -n "$gateway_pid" ] && kill -TERM "$gateway_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -f "$server_out"
}
trap stop INT TERM EXIT

"$bin/kyro-server" --data-dir "$data" > >(tee "$server_out") &
server_pid=$!

# The gateway waits for a serving engine: the `ready` line comes once both
# instances are open and the server handles SIGHUP.
for _ in $(seq 3000); do
    grep -qx ready "$server_out" && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "run.sh: kyro-server exited before it was ready" >&2
        exit 1
    fi
    sleep 0.1
done
grep -qx ready "$server_out" || { echo "run.sh: kyro-server is not ready after 5 minutes" >&2; exit 1; }
: > "$server_out" # it held the server's admin key, if one was printed

# The gateway's kyro-server key: created once, after the server's own first
# start (which writes keys.toml and prints the server's admin key), then
# loaded by the running server on SIGHUP.
key_file="$data/gateway/service.key"
if [ ! -s "$key_file" ]; then
    (umask 077 && "$bin/kyro-server" --data-dir "$data" keys create \
        --tenant gateway --scopes read,write,service --name gateway > "$key_file.tmp")
    mv "$key_file.tmp" "$key_file"
    kill -HUP "$server_pid"
fi

KYRO_GATEWAY_SERVICE_KEY="$(cat "$key_file")" "$bin/kyro-gateway" \
    --data-dir "$data/gateway" --listen "${KYRO_GATEWAY_LISTEN:-127.0.0.1:8080}" "$@" &
gateway_pid=$!

# Whichever stops first (or Ctrl-C) stops the other.
wait -n "$server_pid" "$gateway_pid" || true
stop
