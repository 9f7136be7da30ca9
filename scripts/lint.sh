#!/usr/bin/env bash
# ansible-lint (production profile) on the collection's roles and playbooks.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
# Let ansible-lint resolve autoheal.haproxy.* to this checkout (the loader follows a symlinked collection).
collections=$(mktemp -d)
trap 'rm -rf "$collections"' EXIT
mkdir -p "$collections/ansible_collections/autoheal"
ln -s "$PWD" "$collections/ansible_collections/autoheal/haproxy"
export ANSIBLE_COLLECTIONS_PATH="$collections"
ansible-lint --profile production roles playbooks
