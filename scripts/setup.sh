#!/usr/bin/env bash
# Installs what cgfence needs on a Debian 12 machine (as root) and builds it.
# Safe to run again: it only installs what is missing and rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (the host agent needs root for cgroups and eBPF; apt-get installs packages)" >&2
  exit 1
fi

# Debian packages: servers the tests and the local fleet run, the eBPF
# toolchain, and the network tools the kernel tests use.
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have nats-server || need+=(nats-server)
have clang || need+=(clang)
have llvm-strip || ls /usr/bin/llvm-strip-* >/dev/null 2>&1 || need+=(llvm)
[ -e /usr/include/bpf/libbpf.h ] && [ -e /usr/lib/x86_64-linux-gnu/libbpf.so.1 -o -e /usr/lib/aarch64-linux-gnu/libbpf.so.1 ] || need+=(libbpf-dev libbpf1)
have bpftool || need+=(bpftool)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
have ip || need+=(iproute2)
have dig || need+=(dnsutils)
have python3 || need+=(python3)
have setpriv || need+=(util-linux)
have curl || need+=(curl)
# The unix-guard e2e test runs Debian's nscd (in a private mount namespace).
have nscd || need+=(nscd)
# Test certificate authorities (NATS and HTTPS TLS in the tests and the local fleet).
have openssl || need+=(openssl)
# systemd-analyze verify checks the shipped systemd units in the tests.
have systemd-analyze || need+=(systemd)
# The dashboard's browser tests drive Debian's Chromium (never a downloaded browser).
have chromium || need+=(chromium)
# The benchmarks' peers (npm run bench sets CGFENCE_SETUP_BENCH=1).
if [ "${CGFENCE_SETUP_BENCH:-0}" = 1 ]; then
  have dnsperf || need+=(dnsperf)
  have dnsdist || need+=(dnsdist)
fi
if [ ${#need[@]} -gt 0 ]; then
  say "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # nscd is only for the tests, which start their own: a host-wide nscd would
  # cache every lookup of this machine (and of the other tests).
  if [[ " ${need[*]} " == *" nscd "* ]]; then
    if [ -d /run/systemd/system ]; then systemctl disable --now nscd.service >/dev/null 2>&1 || true
    else systemctl disable nscd.service >/dev/null 2>&1 || true; invoke-rc.d nscd stop >/dev/null 2>&1 || true; fi
  fi
fi

# npm dependencies, pinned by package-lock.json: reinstall only when it changed.
stamp=node_modules/.cgfence-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

say "building (eBPF programs, TypeScript and the dashboard)"
node scripts/build.mjs

# The CLI on PATH: says what it links, never takes the link from another
# checkout unless asked (npm run setup -- --relink-cli).
bash scripts/link-cli.sh "$@"
