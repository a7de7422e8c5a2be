#!/usr/bin/env bash
# Soak: tests/soak.rs for SECONDS (default 1800) instead of the suite's 180.
# One node under 16 emitting clients and 4 readers, kill -9'd every 20-40 s,
# delivering to a fast, a slow and a flaky destination; see the test's doc.
#
#   scripts/soak.sh [SECONDS]
#
# Uses the same debug build of `switchboard` as the test suite (the test
# builds it and the guest components itself, via tests/support/build.rs), so
# the numbers compare with CI's run. SOAK_RATE (events/s) and SOAK_SEED (kill
# schedule) pass through. The output, with the summary line, is kept in
# target/soak-<time>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-1800}"
log="target/soak-$(date -u +%Y%m%dT%H%M%SZ).log"
mkdir -p target
echo "==> soak for ${seconds} s; output in ${log}"
SOAK_SECONDS="$seconds" cargo test -p switchboard-tests --test integration -- \
  --exact soak::soak_with_kill_nine_keeps_every_promise --nocapture 2>&1 | tee "$log"
