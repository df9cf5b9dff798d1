#!/usr/bin/env bash
# The admin web page's browser test (api-gateway/tests/browser/): headless
# Chromium driven by Playwright for Python against a real kyro-server and a
# real kyro-gateway. Sets up what it needs on a fresh Debian machine:
# - Debian's `chromium` package, installed with apt-get only when missing
#   (Playwright's own browser download is never used: it needs its CDN);
# - a virtualenv with Playwright (`KYRO_BROWSER_VENV`, default
#   ~/.cache/kyrodb/venv-browser), made once;
# then runs the test, which writes screenshots to docs/admin/.
#
# Binaries: KYRO_SERVER_BIN and KYRO_GATEWAY_BIN, else
# ${CARGO_TARGET_DIR:-target}/debug/{kyro-server,kyro-gateway}; built here
# with cargo when missing (kyro-server compiles RocksDB the first time).
# `--setup-only` installs and exits.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"

chromium_bin="${KYRO_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium_bin" ]; then
    echo "installing chromium (Debian package)" >&2
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi

venv="${KYRO_BROWSER_VENV:-$HOME/.cache/kyrodb/venv-browser}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import playwright" 2>/dev/null; then
    echo "making the virtualenv $venv (playwright)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    # Only the Python package: the browser is Debian's chromium.
    "$venv/bin/pip" install -q "playwright>=1.40,<2"
fi

if [ "${1:-}" = "--setup-only" ]; then
    exit 0
fi

target="${CARGO_TARGET_DIR:-target}"
export KYRO_SERVER_BIN="${KYRO_SERVER_BIN:-$target/debug/kyro-server}"
export KYRO_GATEWAY_BIN="${KYRO_GATEWAY_BIN:-$target/debug/kyro-gateway}"
if [ ! -x "$KYRO_SERVER_BIN" ]; then
    scripts/ensure-system-deps.sh
    cargo build --workspace --bins
fi
if [ ! -x "$KYRO_GATEWAY_BIN" ]; then
    cargo build --workspace --bins
fi
scripts/fetch-model.sh
export KYRO_CHROMIUM="$chromium_bin"
exec "$venv/bin/python" api-gateway/tests/browser/admin_page.py "$@"
