#!/usr/bin/env bash
# Builds autoheal-relay (release, static, like scripts/build.sh does for the module) unless an up-to-date
# binary exists, and prints its path. Used by scripts/demo.sh, tests/e2e/run.sh, bench/run.sh and the
# role_relay integration target.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
relay="rust/target/$target/release/autoheal-relay"
if [[ ! -x "$relay" ]] || [[ -n "$(find rust/crates rust/Cargo.lock -newer "$relay" -print -quit)" ]]; then
  RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --release --locked \
    --manifest-path rust/Cargo.toml --target "$target" -p autoheal-relay >&2
fi
echo "$PWD/$relay"
