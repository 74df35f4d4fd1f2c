#!/usr/bin/env bash
# Runs every test: the native core's unit tests (cargo), then the end-to-end suite that launches
# real JVMs (11, 17, 21, 25) with the built agent jar (pytest). The last line is pytest's count.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/install-deps.sh
cargo test --release --locked -p offheap-doctor
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --release --locked --all-targets -- -D warnings
fi
scripts/build.sh
python3 -m pytest tests -q -p no:cacheprovider --durations=20 "$@"
