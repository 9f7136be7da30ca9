#!/usr/bin/env bash
# The end-to-end tests: the whole loop on loopback (real HAProxy, Prometheus, Alertmanager, autoheal-relay,
# ansible-runner). Expects scripts/deps.sh and scripts/build.sh to have run. Last line: `N passed, M failed`.
set -euo pipefail
cd "$(dirname "$0")/../.."
AUTOHEAL_RELAY_BIN="$(scripts/ensure-relay.sh)"
export AUTOHEAL_RELAY_BIN
exec .venv/bin/python tests/e2e/run.py "$@"
