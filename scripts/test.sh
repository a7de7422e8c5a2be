#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints (host and guests,
# native and wasm32-wasip2), then every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

guests=()
for g in $(scripts/guests.sh); do guests+=(-p "$g"); done

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (host and guests, native)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo clippy (guests, wasm32-wasip2)"
cargo clippy --target wasm32-wasip2 --locked "${guests[@]}" -- -D warnings

echo "==> build guest components"
cargo build --profile guest --target wasm32-wasip2 --locked "${guests[@]}"

echo "==> cargo test"
cargo test --workspace --locked
