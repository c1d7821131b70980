#!/usr/bin/env bash
# README command 1: install what is missing, build, and start the local fleet
# (PostgreSQL, NATS with JetStream, the policy server) with its data in .cgfence/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node apps/cli/bin/cgfence local up "$@"
