#!/usr/bin/env bash
# README command 1: install what is missing, build, and start the local fleet
# (PostgreSQL, NATS with JetStream, the policy server) with its data in .cgfence/.
set -euo pipefail
cd "$(dirname "$0")/.."
# CGFENCE_FLEET_SETUP=0 skips setup (already installed and built).
[ "${CGFENCE_FLEET_SETUP:-1}" = 0 ] || bash scripts/setup.sh
# exec all the way (package.json runs this with `exec bash`): the process
# `npm run fleet` starts is the fleet itself, so SIGINT or SIGTERM sent to
# npm's pid (npm forwards both) stops every process of the fleet.
exec node apps/cli/bin/cgfence local up "$@"
