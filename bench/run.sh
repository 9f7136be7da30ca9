#!/usr/bin/env bash
# Runs the benchmark (bench/loop.py) after making sure of its extra needs: the project's deps and binaries,
# Java 17, and ansible-rulebook 1.3.2 in its own venv (build/bench-venv). Arguments go to loop.py.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
AUTOHEAL_RELAY_BIN="$(scripts/ensure-relay.sh)"
export AUTOHEAL_RELAY_BIN
if ! command -v java >/dev/null; then
  apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi
if [[ ! -x build/bench-venv/bin/ansible-rulebook ]]; then
  /usr/bin/python3 -m venv build/bench-venv
  build/bench-venv/bin/pip install -q --disable-pip-version-check ansible-rulebook==1.3.2 ansible-core==2.19.14
fi
# loop.py imports the lab, a package at the repository root.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec .venv/bin/python bench/loop.py "$@"
