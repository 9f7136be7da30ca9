#!/usr/bin/env bash
# Runs every test: Rust lint and tests, then the Ansible integration targets against a real HAProxy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== rust: fmt, clippy, tests"
cargo fmt --manifest-path rust/Cargo.toml --all --check
# The corpus targets are `test = false` (run only when named), so they are named for clippy too.
cargo clippy --quiet --manifest-path rust/Cargo.toml --workspace --all-targets --test corpus --locked -- -D warnings
cargo test --manifest-path rust/Cargo.toml --workspace --locked

# Extensions of the suite: run when the shared directory has them, else one line says what did not run.
# (Not exported: cargo gets the same directory from .cargo/config.toml, and a changed environment would
# rebuild the workspace.)
shared="$(scripts/shared-dir.sh)"
if [[ -d "$shared/corpus" ]]; then
  echo "== rust: the shared corpus ($shared/corpus)"
  cargo test --manifest-path rust/Cargo.toml --locked -p haproxy-cfg -p autoheal-relay --test corpus
else
  echo "NOT RUN: shared corpus tests (haproxy-cfg, autoheal-relay --test corpus): no $shared/corpus"
fi
scripts/licenses.sh  # cargo deny: every linked crate's licence fits GPL-3.0-or-later
tests/relay/run.sh  # autoheal-relay: real Alertmanager -> relay -> real ansible-runner, crash recovery

echo "== build static binaries"
scripts/build.sh
scripts/sanity.sh  # ansible-test sanity on the collection as built (offline pip bootstrap)
scripts/units.sh  # pytest on tests/unit: the filter and the action plugins' platform choice
scripts/ee.sh  # meta/execution-environment.yml through ansible-builder create

echo "== ansible integration targets"
scripts/lint.sh  # ansible-lint --profile production on roles/ and playbooks/
tests/run-integration.sh

echo "== older ansible-core releases: sanity (code tests), units, role_remediate and server targets"
scripts/ansible-versions.sh

echo "== end-to-end: the whole loop on loopback (tests/e2e)"
tests/e2e/run.sh

echo "== benchmarks, briefly: each still runs (scripts/bench-smoke.sh)"
scripts/bench-smoke.sh

echo "== HAProxy version matrix: 2.8, 3.0, 3.2, 3.4 from ../shared/haproxy-src (when there)"
scripts/test-matrix.sh
