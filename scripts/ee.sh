#!/usr/bin/env bash
# Checks meta/execution-environment.yml with `ansible-builder create`: the definition is valid ansible-builder
# v3, the build context it writes holds the collection tarball that galaxy.yml's version names, and the
# Containerfile installs it. Building the image itself needs a container engine (podman or docker), which
# the test machines do not have.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${AUTOHEAL_VENV:-$repo/.venv}"
export PATH="$venv/bin:$PATH"
fail() { echo "ee: FAIL: $*" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/autoheal-ee.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# The definition names the tarball beside the checkout's meta/: lay out the same in $work.
mkdir "$work/meta"
cp "$repo/meta/execution-environment.yml" "$work/meta/"
ansible-galaxy collection build --output-path "$work" "$repo" >/dev/null
version="$(sed -nE 's/^version: *([0-9.]+) *$/\1/p' "$repo/galaxy.yml")"
tarball="autoheal-haproxy-$version.tar.gz"
[[ -f "$work/$tarball" ]] || fail "ansible-galaxy built no $tarball"

ansible-builder create -f "$work/meta/execution-environment.yml" -c "$work/context" --output-filename Containerfile >"$work/create.log" 2>&1 ||
  fail "ansible-builder create: $(cat "$work/create.log")"
containerfile="$work/context/Containerfile"
[[ -f "$containerfile" ]] || fail "no Containerfile in the build context"
cmp -s "$work/$tarball" "$work/context/_build/autoheal/$tarball" ||
  fail "the build context does not hold $tarball (meta/execution-environment.yml names another version?)"
grep -q "/build/autoheal/$tarball" "$work/context/_build/requirements.yml" ||
  fail "the galaxy requirements do not install /build/autoheal/$tarball"
grep -q 'COPY _build/autoheal/ /build/autoheal/' "$containerfile" || fail "the Containerfile does not copy the tarball"
grep -q 'ansible-galaxy collection install .*-r requirements.yml' "$containerfile" ||
  fail "the Containerfile installs no collection"
echo "ee: ansible-builder create wrote a build context that installs $tarball (image not built: no container engine)"
