#!/usr/bin/env bash
# Installs the system packages the build needs when they are missing, so that
# a fresh Debian machine needs nothing but this repository and a Rust toolchain:
# - a C/C++ compiler (numkong's kernels are C, RocksDB is C++);
# - libclang, which the rocksdb crate's bindings generator (bindgen) loads.
# Idempotent and quiet when everything is present.
set -euo pipefail

missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
# bindgen finds libclang through `llvm-config` or the usual library paths;
# Debian's libclang-dev provides both the library and the headers it needs.
if ! dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q "install ok installed"; then
    missing+=(libclang-dev)
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "installing missing system packages: ${missing[*]}" >&2
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
