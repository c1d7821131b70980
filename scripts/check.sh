#!/usr/bin/env bash
# README command 2: install what is missing, build, lint, run every test
# tier (unit, integration with real PostgreSQL/NATS/kernel, end to end), then
# fuzz each fuzz target for FUZZ_SECONDS (default 60; scripts/fuzz.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
printf '\033[1m==> %s\033[0m\n' "lint"
npm run --silent lint
printf '\033[1m==> %s\033[0m\n' "tests"
node scripts/test.mjs unit int e2e
printf '\033[1m==> %s\033[0m\n' "fuzz (${FUZZ_SECONDS:-60} s per target)"
node scripts/fuzz.mjs
