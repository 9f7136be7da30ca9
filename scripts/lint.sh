#!/usr/bin/env bash
# ansible-lint (production profile) on the collection's roles and playbooks; pyflakes on the Python
# that ansible-test sanity does not see (the relay's runner worker, the lab, the benchmarks).
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
pyflakes rust/crates/autoheal-relay/src/executor/ansible_runner/runner_worker.py lab bench
