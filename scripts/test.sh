#!/usr/bin/env bash
# The project's test command (README): installs missing system packages, then
# runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-system-deps.sh
scripts/fetch-model.sh
exec cargo test --workspace "$@"
