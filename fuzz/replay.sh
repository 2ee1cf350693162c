#!/usr/bin/env bash
# Replays every committed corpus input once through its fuzz target, as `.ci/run` does on
# every run. A plain stable `cargo build` of the targets (no coverage instrumentation, no
# sanitizer): libFuzzer executes each input of the corpus once (`-runs=0`) and exits
# non-zero on the first panic, failed assertion or crash, leaving the input in
# target/fuzz-artifacts/. It builds into the main target folder (fuzz/Cargo.toml repeats the
# main workspace's dev-profile overrides) so most dependencies are shared with `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --manifest-path fuzz/Cargo.toml --bins --target-dir target
mkdir -p target/fuzz-artifacts
for target in webhook sepay_transfer money config interaction; do
  inputs=$(find "fuzz/corpus/$target" -type f | wc -l)
  if ! ./target/debug/"$target" "fuzz/corpus/$target" -runs=0 \
      -artifact_prefix="target/fuzz-artifacts/$target-" > "target/fuzz-artifacts/$target.log" 2>&1; then
    tail -n 40 "target/fuzz-artifacts/$target.log"
    echo "fuzz replay: $target failed on an input of its corpus (see target/fuzz-artifacts/)" >&2
    exit 1
  fi
  echo "fuzz replay: $target: $inputs inputs, no crash"
done
