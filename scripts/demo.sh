#!/usr/bin/env bash
# The README's first command: installs what is missing, builds the binaries, then plays the whole loop on
# loopback (backends, HAProxy, Prometheus, Alertmanager, autoheal-relay, ansible-runner) as a narrated
# timeline. Options (passed through): --keep-running, --port-base N, --workdir DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== building the module and the relay (release, static)"
scripts/build.sh
relay=rust/target/x86_64-unknown-linux-gnu/release/autoheal-relay
if [[ ! -x "$relay" ]] || [[ -n "$(find rust/crates -newer "$relay" -name '*.rs' -print -quit)" ]]; then
  RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --release --locked \
    --manifest-path rust/Cargo.toml --target x86_64-unknown-linux-gnu -p autoheal-relay
fi
export AUTOHEAL_RELAY_BIN="$PWD/$relay"

echo "== the demo"
exec .venv/bin/python tests/e2e/demo.py "$@"
