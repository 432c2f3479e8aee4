#!/usr/bin/env bash
# Installs everything desfs needs on a fresh Debian machine: the FUSE packages and a venv
# with desfs and its test tools. Safe to run again; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v fusermount3 >/dev/null || need_apt+=(fuse3)
pkg-config --exists fuse3 2>/dev/null || need_apt+=(libfuse3-dev pkg-config)
command -v getfattr >/dev/null || need_apt+=(attr)
command -v gcc >/dev/null || need_apt+=(gcc)
# The shared index cache tests run a real Redis.
command -v redis-server >/dev/null || need_apt+=(redis-server)
# Ceph RGW, the S3 store the tests and the benchmark run against (tests/support/rgw.py).
need_ceph=()
for tool in radosgw ceph-mon ceph-osd ceph; do
    command -v "$tool" >/dev/null || { need_ceph=(radosgw ceph-mon ceph-osd ceph-common); break; }
done
# systemd-analyze, for the test that verifies the shipped units (skipped when absent).
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ] || [ ${#need_ceph[@]} -gt 0 ]; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    if [ ${#need_apt[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" \
            python3-dev >/dev/null
    fi
    if [ ${#need_ceph[@]} -gt 0 ]; then
        # One monitor, one OSD and the gateway: no mgr, no recommends (about 270 MB).
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq \
            --no-install-recommends "${need_ceph[@]}" >/dev/null
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.desfs-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]'
    touch "$stamp"
fi
