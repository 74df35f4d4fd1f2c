#!/bin/sh
# Runs the cargo-fuzz targets (libFuzzer, coverage-guided; needs a nightly toolchain and
# `cargo install cargo-fuzz`), each seeded with the real fixtures, for SECONDS each (default 60).
# Without nightly, `native/tests/fuzz_parsers.rs` is the same idea without coverage feedback.
set -eu
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
FIX=tests/fixtures
seed() { # target, files...
    t=$1; shift
    mkdir -p fuzz/corpus/$t
    for f in "$@"; do cp "$f" "fuzz/corpus/$t/$(echo "$f" | tr / _)"; done
}
seed smaps $FIX/smaps/*/smaps
seed rollup $FIX/smaps/*/smaps_rollup /proc/self/status
seed nmt $FIX/nmt/*.txt $FIX/smaps/*/nmt_detail.txt
seed malloc_info $FIX/malloc_info/*.xml
for t in smaps rollup nmt malloc_info; do
    cargo +nightly fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- -max_total_time="$SECONDS_EACH" -max_len=1048576 2>&1 \
        | grep -E "^#[0-9]+ +DONE|Done [0-9]+ runs|ERROR|panicked|SUMMARY" || true
done
