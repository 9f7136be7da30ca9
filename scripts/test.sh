#!/usr/bin/env bash
# Runs every test: Rust lint and tests, then the Ansible integration targets against a real HAProxy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== rust: fmt, clippy, tests"
cargo fmt --manifest-path rust/Cargo.toml --all --check
cargo clippy --quiet --manifest-path rust/Cargo.toml --workspace --all-targets --locked -- -D warnings
cargo test --manifest-path rust/Cargo.toml --workspace --locked
tests/relay/run.sh  # autoheal-relay: real Alertmanager -> relay -> real ansible-runner, crash recovery

echo "== build static binaries"
scripts/build.sh
scripts/sanity.sh  # ansible-test sanity on the collection as built (offline pip bootstrap)
scripts/units.sh  # pytest on tests/unit: the filter and the action plugins' platform choice

echo "== ansible integration targets"
scripts/lint.sh  # ansible-lint --profile production on roles/ and playbooks/
tests/run-integration.sh

echo "== end-to-end: the whole loop on loopback (tests/e2e)"
tests/e2e/run.sh

echo "== HAProxy version matrix: 2.8, 3.0, 3.2, 3.4 from ../shared/haproxy-src (when there)"
scripts/test-matrix.sh
