#!/usr/bin/env bash
# Puts the cgfence CLI of this checkout on PATH as $CGFENCE_BIN_DIR/cgfence
# (default /usr/local/bin), saying what it does. A link to another checkout
# (or a file that is not a link) is left alone unless --relink-cli is given
# (or CGFENCE_RELINK_CLI=1): several checkouts on one machine do not silently
# take the command from each other.
set -euo pipefail
cd "$(dirname "$0")/.."

relink=${CGFENCE_RELINK_CLI:-0}
for arg in "$@"; do
  case "$arg" in
    --relink-cli) relink=1 ;;
    *) echo "link-cli: unknown option $arg (known: --relink-cli)" >&2; exit 2 ;;
  esac
done

dir=${CGFENCE_BIN_DIR:-/usr/local/bin}
target="$PWD/apps/cli/bin/cgfence"
link="$dir/cgfence"
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [ ! -d "$dir" ] || [ ! -w "$dir" ]; then
  say "cgfence CLI: $dir is not writable; not linking (run $target directly)"
  exit 0
fi
if [ -L "$link" ]; then
  current=$(readlink "$link")
  if [ "$current" = "$target" ]; then
    say "cgfence CLI: $link -> $target (already)"
  elif [ "$relink" = 1 ]; then
    ln -sfn "$target" "$link"
    say "cgfence CLI: $link -> $target (was -> $current)"
  else
    say "cgfence CLI: $link stays -> $current (another checkout); to point it at this one: npm run setup -- --relink-cli"
  fi
elif [ -e "$link" ]; then
  say "cgfence CLI: $link exists and is not a link; left alone (remove it, then run setup again)"
else
  ln -s "$target" "$link"
  say "cgfence CLI: $link -> $target"
fi
