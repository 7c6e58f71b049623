#!/bin/sh
# Install the Debian packages clustermgr needs to build, run and test, when any is missing.
# Safe to run repeatedly: it only calls apt-get when something is absent.
# `scripts/deps.sh --bench` also installs what the benchmarks drive and compare with;
# `scripts/deps.sh --deb` only what builds and tests the Debian package (make deb, make test-deb):
# its tools, then the Build-Depends of debian/control.
set -eu

PKGS="build-essential pkg-config libraft-dev libuv1-dev libhttp-parser-dev libmicrohttpd-dev libcurl4-openssl-dev \
libjson-c-dev zlib1g-dev libbsd-dev libssl-dev libgnutls28-dev libcmocka-dev python3 \
python3-pytest python3-requests curl openssl clang-format prometheus chromium python3-websocket \
fonts-dejavu-core clang libclang-rt-14-dev"
# openssl: test certificates; prometheus: promtool checks /metrics; chromium, python3-websocket,
# fonts: the dashboard test; clang, libclang-rt-14-dev: the libFuzzer targets (make fuzz-ci).
if [ "${1:-}" = "--bench" ]; then
    PKGS="$PKGS wrk etcd-server etcd-client"  # the load generator; etcd for bench/bench_etcd.py
fi
if [ "${1:-}" = "--deb" ]; then
    # the package's tools and its test; the libraries come from debian/control (below)
    PKGS="debhelper dpkg-dev lintian binutils python3-pytest python3-requests"
fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    if [ "$(id -u)" != "0" ]; then SUDO=sudo; else SUDO=; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ "${1:-}" = "--deb" ] && ! (cd "$(dirname "$0")/.." && dpkg-checkbuilddeps >/dev/null 2>&1); then
    echo "installing the Build-Depends of debian/control"
    if [ "$(id -u)" != "0" ]; then SUDO=sudo; else SUDO=; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    (cd "$(dirname "$0")/.." && $SUDO apt-get build-dep -y -qq ./ >/dev/null)
fi
