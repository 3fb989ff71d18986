#!/usr/bin/env bash
# CI step of the client library (called from .ci/run, from the repository root):
# installs what its tests need on a clean machine (a C/C++ compiler with the
# sanitizer runtimes, Python 3), then checks that include/concordkv_topology.h is
# exactly what the pinned cbindgen makes of ffi/ (fails on any difference).
set -euo pipefail
cd "$(dirname "$0")/.."

CBINDGEN_VERSION=0.29.4

missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} for the C, C++ and Python binding tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if [ "$(cbindgen --version 2>/dev/null || true)" != "cbindgen $CBINDGEN_VERSION" ]; then
    echo "installing cbindgen $CBINDGEN_VERSION"
    cargo install cbindgen --version "=$CBINDGEN_VERSION" --locked --quiet
fi
mkdir -p target
cbindgen --quiet --config ffi/cbindgen.toml --crate concord-client \
    --output target/concordkv_topology.h ffi
if ! diff -u include/concordkv_topology.h target/concordkv_topology.h; then
    echo "include/concordkv_topology.h is out of date: regenerate it with" >&2
    echo "  cbindgen --config ffi/cbindgen.toml --crate concord-client --output include/concordkv_topology.h ffi" >&2
    exit 1
fi
echo "include/concordkv_topology.h is up to date (cbindgen $CBINDGEN_VERSION)"
