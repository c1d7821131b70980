#!/usr/bin/env bash
# README command 2: install what is missing, build, lint, and run every test
# tier (unit, integration with real PostgreSQL/NATS/kernel, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
printf '\033[1m==> %s\033[0m\n' "lint"
npm run --silent lint
printf '\033[1m==> %s\033[0m\n' "tests"
node scripts/test.mjs unit int e2e
