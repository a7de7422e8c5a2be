#!/usr/bin/env bash
# Run a benchmark in release mode after building the guest components it loads.
# Usage: scripts/bench.sh [invocation]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --profile guest --target wasm32-wasip2 --locked -p switchboard-connector-webhook
cargo bench --locked -p switchboard --bench "${1:-invocation}"
