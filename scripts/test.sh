#!/usr/bin/env bash
# The project's test command (README): installs missing system packages and
# the embedding model, runs every test of the workspace, then the Python
# client's tests against the binaries that build made.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-system-deps.sh
scripts/fetch-model.sh
cargo test --workspace "$@"
scripts/test-python.sh
