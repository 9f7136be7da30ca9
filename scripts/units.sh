#!/usr/bin/env bash
# Runs the collection's Python unit tests (tests/unit) with pytest from .venv, importing the collection as
# ansible_collections.autoheal.haproxy from a temporary collections path that links to this checkout.
#   scripts/units.sh [pytest options]
#   AUTOHEAL_VENV=DIR scripts/units.sh   # with another ansible-core (default: the checkout's .venv)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${AUTOHEAL_VENV:-$repo/.venv}"
work="$(mktemp -d "${TMPDIR:-/tmp}/autoheal-units.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ansible_collections/autoheal"
ln -s "$repo" "$work/ansible_collections/autoheal/haproxy"
cd "$work/ansible_collections/autoheal/haproxy"
PYTHONPATH="$work" PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit "$@"
