#!/usr/bin/env bash
# Tests of the Python client (clients/python) against the real kyro-server
# and kyro-gateway of the debug build: KYRO_SERVER_BIN / KYRO_GATEWAY_BIN, else
# ${CARGO_TARGET_DIR:-target}/debug/ (`cargo test --workspace` builds both).
# The gateway loads the embedding model from ~/.cache/kyrodb/models
# (scripts/fetch-model.sh).
#
# Uses the virtualenv $KYRO_PYTHON_VENV (default ~/.cache/kyrodb/venv-python),
# created with python3 from PATH when absent; installs the package from
# ./clients/python (its gRPC stubs are generated from proto/ while it is
# built) with pytest, then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

venv="${KYRO_PYTHON_VENV:-$HOME/.cache/kyrodb/venv-python}"
if [ ! -x "$venv/bin/python" ]; then
    # Debian splits venv (and the ensurepip it needs) into python3-venv.
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        echo "installing python3-venv" >&2
        sudo_cmd=""
        [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
        $sudo_cmd apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3-venv >/dev/null
    fi
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
fi
python="$venv/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# The build requirements (pyproject.toml) go into the venv once, and the
# package builds without an isolated environment: much quicker on reruns,
# and the stubs match the venv's grpcio/protobuf.
"$python" -m pip install --quiet "setuptools>=77" "grpcio-tools>=1.62" pytest pytest-asyncio
"$python" -m pip install --quiet --no-build-isolation ./clients/python

if [ -n "${CARGO_TARGET_DIR:-}" ] && [ "${CARGO_TARGET_DIR#/}" = "$CARGO_TARGET_DIR" ]; then
    export CARGO_TARGET_DIR="$repo/$CARGO_TARGET_DIR"
fi
cd clients/python
exec "$python" -m pytest "$@"
