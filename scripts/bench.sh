#!/usr/bin/env bash
# Run a benchmark in release mode after building the guest components it loads.
# Usage: scripts/bench.sh [NAME]   (default: invocation)
# NAME is a bench of the host (host/benches/NAME.rs) or of the integration
# suite (tests/benches/NAME.rs: onboarding, fuzz, cluster); the package is picked by
# where it lives. `scripts/bench.sh fuzz` honours FUZZ_CASES and FUZZ_SEED.
set -euo pipefail
cd "$(dirname "$0")/.."
bench="${1:-invocation}"
if [[ -f "tests/benches/$bench.rs" ]]; then
  package=switchboard-tests
else
  package=switchboard
fi
scripts/setup.sh
cargo build --profile guest --target wasm32-wasip2 --locked -p switchboard-connector-webhook
cargo bench --locked -p "$package" --bench "$bench"
