#!/usr/bin/env bash
# Runs `ansible-test sanity` on the collection as it ships, offline apart from the package index, with
# Python 3.11 only.
#
# The collection is built with `ansible-galaxy collection build` (so galaxy.yml's build_ignore decides what is
# tested: plugins with the built binaries, roles, playbooks, meta, docs, tests/integration, tests/sanity) and
# installed into a temporary ansible_collections/autoheal/haproxy, a real directory as ansible-test requires,
# made a git repository so that ansible-test lists its files with git. ansible-test's pip bootstrap would
# download get-pip.py: an offline stand-in (tests/sanity/get_pip_standin.py) goes into its cache first.
#
#   scripts/sanity.sh [ansible-test sanity options, e.g. --test pylint]
#   AUTOHEAL_VENV=DIR scripts/sanity.sh   # with another ansible-core (default: the checkout's .venv)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${AUTOHEAL_VENV:-$repo/.venv}"
export PATH="$venv/bin:$PATH"

for bin in server server_info; do
  if [[ ! -x "$repo/plugins/modules/__bin__/${bin}_linux_x86_64" ]]; then
    echo "sanity: plugins/modules/__bin__/${bin}_linux_x86_64 is missing; run scripts/build.sh first" >&2
    exit 1
  fi
done

pip_version="$(python - <<'PY'
from ansible_test._internal.host_configs import NativePythonConfig
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(NativePythonConfig(version="3.11", path="python"))["pip"])
PY
)"
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if ! cmp -s "$repo/tests/sanity/get_pip_standin.py" "$cache"; then
  mkdir -p "$(dirname "$cache")"
  cp "$repo/tests/sanity/get_pip_standin.py" "$cache"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/autoheal-sanity.XXXXXX")"
trap 'rm -rf "$work"' EXIT
ansible-galaxy collection build --output-path "$work" "$repo" >/dev/null
ANSIBLE_COLLECTIONS_PATH="$work" ansible-galaxy collection install --offline --no-deps -p "$work" \
  "$work"/autoheal-haproxy-*.tar.gz >/dev/null
collection="$work/ansible_collections/autoheal/haproxy"
# The installation turns galaxy.yml into MANIFEST.json and FILES.json; ansible-test reads galaxy.yml.
rm -f "$collection/MANIFEST.json" "$collection/FILES.json"
cp "$repo/galaxy.yml" "$collection/galaxy.yml"
git -C "$collection" init -q
git -C "$collection" add -f .
git -C "$collection" -c user.name=sanity -c user.email=sanity@localhost commit -qm sanity

cd "$collection"
ansible-test sanity --python 3.11 --color no "$@"
