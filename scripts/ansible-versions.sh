#!/usr/bin/env bash
# Runs a smaller set of the Ansible tests against each older ansible-core release that meta/runtime.yml's
# requires_ansible admits (the full suite runs on the pinned one, in .venv): ansible-test sanity, the pytest
# units, and the `role_remediate` and `server` integration targets. Each release gets its own venv outside the
# checkout, kept between runs ($AUTOHEAL_VENVS, default ~/.cache/autoheal-haproxy/venvs).
#
#   scripts/ansible-versions.sh [VERSION...]    # default: every release below
# Needs the binaries (scripts/build.sh) and HAProxy, like the targets themselves.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

# The latest patch release of each supported minor version before the pinned 2.19.
RELEASES=(2.16.19 2.17.14 2.18.19)
PYTEST=pytest==8.4.2
venvs="${AUTOHEAL_VENVS:-$HOME/.cache/autoheal-haproxy/venvs}"

# Sanity tests of the collection's own code. The rest of `ansible-test sanity` (pylint on every file,
# yamllint, shellcheck, ...) checks files, not the ansible-core release, and runs on the pinned one.
SANITY_TESTS=(validate-modules compile import runtime-metadata ansible-doc action-plugin-docs ignores)

ensure_venv() {  # VENV VERSION
  local venv="$1" version="$2" frozen
  # Read the whole list first: with pipefail, `grep -q` closing the pipe early would fail pip freeze.
  frozen="$("$venv/bin/pip" freeze 2>/dev/null || true)"
  if ! grep -qix "ansible-core==$version" <<<"$frozen"; then
    echo "ansible-versions: installing ansible-core==$version into $venv"
    [[ -x "$venv/bin/pip" ]] || /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "ansible-core==$version" "$PYTEST"
  fi
}

(($#)) && RELEASES=("$@")
failed=()
for version in "${RELEASES[@]}"; do
  venv="$venvs/ansible-${version%.*}"
  ensure_venv "$venv" "$version"
  echo "== ansible-core $version ($venv): sanity (${SANITY_TESTS[*]}), units, integration role_remediate and server"
  sanity_args=()
  for test in "${SANITY_TESTS[@]}"; do sanity_args+=(--test "$test"); done
  AUTOHEAL_VENV="$venv" scripts/sanity.sh "${sanity_args[@]}" || failed+=("$version sanity")
  AUTOHEAL_VENV="$venv" scripts/units.sh || failed+=("$version units")
  AUTOHEAL_VENV="$venv" tests/run-integration.sh role_remediate server || failed+=("$version integration")
done
if ((${#failed[@]})); then
  echo "ansible-versions: failed: ${failed[*]}"
  exit 1
fi
echo "ansible-versions: ${RELEASES[*]} passed"
