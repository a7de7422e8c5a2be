#!/usr/bin/env bash
# Install what building and testing Switchboard needs beyond the Rust
# toolchain itself: the wasm32-wasip2 target (connectors), rustfmt, clippy,
# the PostgreSQL server binaries (the PostgreSQL store's tests), and Chromium
# with chromedriver (the dashboard's browser tests). Idempotent.
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

# PostgreSQL server binaries, for the PostgreSQL store's tests: each test
# process starts a scratch cluster of its own (store/postgres/scratch.rs),
# nothing assumes a server running. Debian puts them in
# /usr/lib/postgresql/<version>/bin, off PATH.
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  echo "==> apt-get install postgresql"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql
fi

# Chromium and its WebDriver, for the dashboard's browser tests
# (tests/dashboard.rs drives /usr/bin/chromium through /usr/bin/chromedriver).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "==> apt-get install chromium chromium-driver"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi
