#!/usr/bin/env bash
# The HAProxy version matrix: the module's tests against a real HAProxy, the remediate role's integration target
# and one end-to-end drain/restore loop, against every release scripts/haproxy-matrix.sh builds
# (2.8, 3.0, 3.2, 3.4). Debian's 2.6 (/usr/sbin/haproxy) runs the rest of the suite.
# Each version is put first on PATH as `haproxy`: the tests, the module's default `validate`, the
# integration labs and the end-to-end stack all start or check HAProxy by that name.
# Expects scripts/deps.sh and scripts/build.sh to have run. With no sources it prints one line saying the
# matrix did not run, and exits 0. Ends with one line per version and the time taken.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

# Without sources haproxy-matrix.sh says so in one line (the only output) and lists nothing.
listing=$(scripts/haproxy-matrix.sh)
[[ -n $listing ]] || exit 0
mapfile -t releases <<<"$listing"

# Built once for every version: the tests find haproxy at run time.
cargo test --quiet --manifest-path rust/Cargo.toml -p autoheal-module --locked \
  --test server_live --test server_file --test server_versions --no-run

integration_targets=(role_remediate)
# step NAME COMMAND...: runs COMMAND with this version's haproxy first on PATH, notes the result.
step() {
  local name=$1
  shift
  if PATH="$bin_dir:$PATH" "$@"; then
    results+=("$name ok")
  else
    results+=("$name FAILED")
    failed=1
  fi
}

started=$SECONDS
summary=()
failed=0
for release in "${releases[@]}"; do
  read -r version binary <<<"$release"
  bin_dir=$(mktemp -d)
  ln -s "$binary" "$bin_dir/haproxy"
  reported=$(PATH="$bin_dir:$PATH" haproxy -v | sed -n 's/^HAProxy version \([^ ]*\).*/\1/p')
  if [[ $reported != "$version"* ]]; then
    echo "matrix: $binary reports version '$reported', expected $version" >&2
    exit 1
  fi
  echo "== matrix: HAProxy $version ($binary)"
  version_start=$SECONDS
  results=()
  step module cargo test --quiet --manifest-path rust/Cargo.toml -p autoheal-module --locked \
    --test server_live --test server_file --test server_versions
  step integration tests/run-integration.sh "${integration_targets[@]}"
  step e2e tests/e2e/run.sh test_loop.py
  rm -rf "$bin_dir"
  summary+=("$version: $(IFS=,; echo "${results[*]}") ($((SECONDS - version_start)) s)")
done
echo "== matrix summary ($((SECONDS - started)) s for ${#releases[@]} versions)"
printf '   %s\n' "${summary[@]}"
exit "$failed"
