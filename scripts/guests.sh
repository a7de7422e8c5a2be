#!/usr/bin/env bash
# The crates built as WebAssembly components (bundled connectors and test
# fixtures), one per line. tests/support/build.rs lists the same crates.
printf '%s\n' \
  switchboard-connector-webhook \
  switchboard-connector-hubspot \
  switchboard-connector-activecampaign \
  switchboard-connector-intercom \
  switchboard-connector-slack \
  switchboard-fixture-hostile \
  switchboard-fixture-echo-v1 \
  switchboard-fixture-echo-v2 \
  switchboard-fixture-bad-describe \
  switchboard-fixture-other-world
