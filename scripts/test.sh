#!/usr/bin/env bash
# The project's test command (README): installs missing system packages and
# the embedding model, runs every test of the workspace, then the Python
# client's tests and the admin page's browser test against the binaries that
# build made (screenshots to a temporary folder; scripts/test-browser.sh run
# alone writes them to docs/admin/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-system-deps.sh
scripts/fetch-model.sh
cargo test --workspace "$@"
scripts/test-python.sh
shots="$(mktemp -d)"
trap 'rm -rf "$shots"' EXIT
KYRO_SCREENSHOTS="$shots" scripts/test-browser.sh
