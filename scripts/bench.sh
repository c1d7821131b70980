#!/usr/bin/env bash
# npm run bench: installs what the benchmarks need (the product's own setup
# plus dnsperf and dnsdist), builds, and runs every benchmark.
# Arguments go to scripts/bench.mjs (e.g. --only dns-proxy).
set -euo pipefail
cd "$(dirname "$0")/.."
CGFENCE_SETUP_BENCH=1 bash scripts/setup.sh
exec node scripts/bench.mjs "$@"
