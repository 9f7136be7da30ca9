#!/usr/bin/env bash
# Role autoheal.haproxy.haproxy_runtime on copies of realistic configurations: check, real, check, real
# (changed, changed, not changed, not changed; never changed for a file that already has everything),
# check mode leaves the file byte-identical, `haproxy -c` accepts the result, and the bytes outside the
# added lines are the original ones.
set -euo pipefail
cd "$(dirname "$0")"
: "${ANSIBLE_COLLECTIONS_PATH:?must point at a collections dir holding autoheal.haproxy}"
# shellcheck source=../setup_haproxy/files/recap.sh
source ../setup_haproxy/files/recap.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'localhost ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"\n' >"$work/inventory"

# play DIR EXPECT [args...]: EXPECT is "changed" or "unchanged".
play() {
  local dir=$1 expect=$2 log
  shift 2
  log=$(ansible-playbook -i "$work/inventory" apply.yml -e "autoheal_test_dir=$dir" "$@") || {
    echo "$log"; echo "FAIL: $(basename "$dir") ${*:-real run} failed"; return 1; }
  check_recap "$expect" localhost "$log" "$(basename "$dir") ${*:-real run}"
}

# case NAME SOURCE EXPECT_FIRST EXTRA_VERIFY_JSON
case_() {
  local name=$1 source=$2 first=$3 verify=$4 dir="$work/$1"
  mkdir -p "$dir"
  cp "$source" "$dir/haproxy.cfg"
  cp "$source" "$dir/original.cfg"
  play "$dir" "$first" --check
  cmp -s "$dir/haproxy.cfg" "$dir/original.cfg" || { echo "FAIL: $name: check mode changed the file"; exit 1; }
  [[ ! -e $dir/run && ! -e $dir/state ]] || { echo "FAIL: $name: check mode created directories"; exit 1; }
  play "$dir" "$first"
  play "$dir" unchanged --check
  play "$dir" unchanged
  ansible-playbook -i "$work/inventory" verify.yml -e "autoheal_test_dir=$dir" -e "$verify" >"$work/verify.log" || {
    cat "$work/verify.log"; echo "FAIL: verify $name"; exit 1; }
  echo "ok: $name: haproxy -c passes, added lines where expected, all other bytes unchanged"
}

case_ shop files/shop.cfg changed "$(cat <<JSON
{"expected_block": ["    stats socket $work/shop/run/admin.sock mode 660 level admin", "    master-worker",
                    "    server-state-file $work/shop/state/server-state"],
 "expect_load_line": true, "expected_socket": "$work/shop/run/admin.sock",
 "expected_state_file": "$work/shop/state/server-state"}
JSON
)"
[[ -d $work/shop/run && "$(cat "$work/shop/state/server-state")" == 1 ]] || { echo "FAIL: shop: dirs/state file"; exit 1; }
ls "$work"/shop/haproxy.cfg.*~ >/dev/null || { echo "FAIL: shop: no backup kept"; exit 1; }

# Already has everything (and two defaults sections): nothing to add, never changed.
case_ prepared files/prepared.cfg unchanged '{"expected_block": [], "expect_load_line": false,
  "expected_socket": "/tmp/prepared-by-hand.sock", "expected_state_file": "/tmp/prepared-by-hand.state"}'

# Debian's packaged configuration: keeps its admin socket, gets master-worker and the state file.
case_ debian /etc/haproxy/haproxy.cfg changed "$(cat <<JSON
{"expected_block": ["    master-worker", "    server-state-file $work/debian/state/server-state"],
 "expect_load_line": true, "expected_socket": "/run/haproxy/admin.sock",
 "expected_state_file": "$work/debian/state/server-state"}
JSON
)"

# A file without a global section: a clear error and the file untouched.
mkdir -p "$work/bad"
printf 'defaults\n    mode http\n' >"$work/bad/haproxy.cfg"
cp "$work/bad/haproxy.cfg" "$work/bad/original.cfg"
if log=$(ansible-playbook -i "$work/inventory" apply.yml -e "autoheal_test_dir=$work/bad" 2>&1); then
  echo "FAIL: a file without global was accepted"; exit 1
fi
grep -q 'needs a `global` section' <<<"$log" || { echo "$log"; echo "FAIL: unclear error"; exit 1; }
cmp -s "$work/bad/haproxy.cfg" "$work/bad/original.cfg" || { echo "FAIL: rejected file was modified"; exit 1; }

# A change HAProxy rejects: validation refuses it and the file stays as it was.
mkdir -p "$work/invalid"
printf 'global\n    bogus-keyword-for-test 1\ndefaults\n    mode http\n' >"$work/invalid/haproxy.cfg"
cp "$work/invalid/haproxy.cfg" "$work/invalid/original.cfg"
if ansible-playbook -i "$work/inventory" apply.yml -e "autoheal_test_dir=$work/invalid" >/dev/null 2>&1; then
  echo "FAIL: an invalid result was written"; exit 1
fi
cmp -s "$work/invalid/haproxy.cfg" "$work/invalid/original.cfg" || { echo "FAIL: invalid file was modified"; exit 1; }
echo "ok: bad input rejected, files untouched"
