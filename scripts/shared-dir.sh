#!/usr/bin/env bash
# Prints the directory holding the suite's shared extensions (corpus/, haproxy-src/): $AUTOHEAL_SHARED_DIR if
# set, else the default that .cargo/config.toml gives cargo (relative to the checkout).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -n "${AUTOHEAL_SHARED_DIR:-}" ]]; then
  echo "$AUTOHEAL_SHARED_DIR"
  exit 0
fi
default="$(sed -nE 's/^AUTOHEAL_SHARED_DIR = \{ value = "([^"]+)", relative = true \}$/\1/p' "$repo/.cargo/config.toml")"
if [[ -z "$default" ]]; then
  echo "shared-dir: no AUTOHEAL_SHARED_DIR default in .cargo/config.toml" >&2
  exit 1
fi
echo "$repo/$default"
