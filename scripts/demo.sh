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
AUTOHEAL_RELAY_BIN="$(scripts/ensure-relay.sh)"
export AUTOHEAL_RELAY_BIN

echo "== the demo"
exec .venv/bin/python -m lab.demo "$@"
