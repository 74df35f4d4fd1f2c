#!/usr/bin/env bash
# Runs every test: the native core's unit tests and clippy (cargo), then the end-to-end suite that
# launches real JVMs (11, 17, 21, 25) with the built agent jar (pytest, from the project's .venv).
# Arguments go to pytest (`scripts/test.sh -k census`). The last line is pytest's count.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/install-deps.sh
# clippy is part of the test: a toolchain without it is fixed, not skipped.
if ! cargo clippy --version >/dev/null 2>&1; then
  if command -v rustup >/dev/null; then
    echo "test.sh: rustup component add clippy"
    rustup component add clippy
  else
    echo "test.sh: cargo clippy is missing and there is no rustup to add it; install clippy for $(cargo --version)" >&2
    exit 1
  fi
fi
cargo test --release --locked -p offheap-doctor
cargo clippy --release --locked --all-targets -- -D warnings
scripts/build.sh
.venv/bin/python -m pytest tests -q -p no:cacheprovider --durations=20 "$@"
