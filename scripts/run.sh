#!/usr/bin/env bash
# The README's run command: builds and starts kyro-server with both instances
# (text: 384-dim on 127.0.0.1:50051, image: 512-dim on 127.0.0.1:50052),
# /metrics and health on 127.0.0.1:9090, data in ./kyro-data (or
# $KYRO_DATA_DIR). The first start prints an admin key once.
# Extra arguments go to kyro-server (see `kyro-server --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-system-deps.sh
scripts/fetch-model.sh
# --workspace --bins: one release build serves the server and kyro-bench
# (RocksDB's C++ is compiled once per feature set).
cargo build --release --workspace --bins
exec "${CARGO_TARGET_DIR:-target}/release/kyro-server" \
    --data-dir "${KYRO_DATA_DIR:-kyro-data}" "$@"
