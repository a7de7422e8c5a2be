#!/usr/bin/env bash
# Install what building Switchboard needs beyond the Rust toolchain itself:
# the wasm32-wasip2 target (connectors), rustfmt and clippy. Idempotent.
set -euo pipefail

installed=$(rustup target list --installed)
if ! grep -qx wasm32-wasip2 <<<"$installed"; then
  echo "==> rustup target add wasm32-wasip2"
  rustup target add wasm32-wasip2
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^${component}"; then
    echo "==> rustup component add ${component}"
    rustup component add "${component}"
  fi
done
