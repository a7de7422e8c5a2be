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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary, the
# last of them usually a doc-test binary with nothing in it).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
