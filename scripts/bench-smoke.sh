#!/usr/bin/env bash
# Runs each benchmark briefly, on small inputs, so that a change that breaks one fails the suite (their
# figures come from full runs by hand, in bench/README.md; these runs' tables mean nothing). Each script
# exits non-zero when what it measures went wrong (a failed module call, restores that do not give the
# original file back, a relay that does not start). Left out: bench/run.sh, which needs Java and
# ansible-rulebook.
# Needs scripts/deps.sh and scripts/build.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

echo "== bench smoke: module_bench.py"
.venv/bin/python bench/module_bench.py --module "plugins/modules/__bin__/server_linux_$(uname -m)" \
  --rounds 1 --backends 20 --servers 5
echo "== bench smoke: batch_bench.py"
.venv/bin/python bench/batch_bench.py --rounds 1 --actions 5
relay="$(scripts/ensure-relay.sh)"
echo "== bench smoke: intake.sh"
bench/intake.sh --baseline "$relay" --candidate "$relay" --seconds 2 --rounds 1
echo "== bench smoke: flap.py"
AUTOHEAL_RELAY_BIN="$relay" .venv/bin/python bench/flap.py --minutes 0.5
