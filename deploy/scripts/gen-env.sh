#!/bin/sh
# Write deploy/.env from deploy/.env.example when it does not exist yet: every variable left empty in
# the example is a secret and gets a fresh random value (hex, so it is safe inside URLs). An existing
# .env is never touched, so secrets stay stable across `make up` runs.
#   usage: deploy/scripts/gen-env.sh [EXAMPLE] [TARGET]
set -eu
here="$(cd "$(dirname "$0")/.." && pwd)"
example="${1:-$here/.env.example}"
target="${2:-$here/.env}"

if [ -e "$target" ]; then
    echo "gen-env: $target exists, keeping it" >&2
    exit 0
fi

random_hex() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

umask 077
tmp="$target.tmp.$$"
trap 'rm -f "$tmp"' EXIT
# Keep the optional alert webhooks empty: they are URLs, not secrets to invent.
while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
        MLOPS_ALERT_WEBHOOK_URL=|ALERTMANAGER_WEBHOOK_URL=) printf '%s\n' "$line" ;;
        [A-Z]*=) printf '%s%s\n' "$line" "$(random_hex)" ;;
        *) printf '%s\n' "$line" ;;
    esac
done <"$example" >"$tmp"
mv "$tmp" "$target"
trap - EXIT
echo "gen-env: wrote $target with generated secrets (mode 600)" >&2
