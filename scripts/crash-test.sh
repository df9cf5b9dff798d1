#!/usr/bin/env bash
# The long form of the crash test (issue 15): kyro-server with concurrent
# gRPC writers, 100 stops (SIGKILL, every fifth a timed SIGTERM), every
# acknowledged write checked by Get and by self-search after each restart.
# Prints one line of figures (recorded in docs/benchmarks.md).
#   KYRO_CRASH_KILLS=N       number of stops (default 100; the test command
#                            runs the same test with 10)
#   KYRO_CRASH_PROFILE=release  build the server with the release profile
#                            (default: the test profile, which reuses the
#                            test command's build)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-system-deps.sh
profile=()
[ "${KYRO_CRASH_PROFILE:-}" = release ] && profile=(--release)
# --workspace (not -p kyro-server): the same feature set as the test
# command, so its build (RocksDB above all) is reused rather than redone.
KYRO_CRASH_KILLS="${KYRO_CRASH_KILLS:-100}" exec cargo test "${profile[@]}" --workspace \
    --test crash -- acknowledged_writes_stay_findable_across_repeated_kills --nocapture
