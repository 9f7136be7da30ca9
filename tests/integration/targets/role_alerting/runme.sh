#!/usr/bin/env bash
# Role autoheal.haproxy.alerting: check, real, check, real (changed, changed, not changed, not
# changed) for two sets of variables, then the real promtool/amtool on what was rendered:
# `promtool check rules`, `promtool test rules` (files/*.test.yml), `amtool check-config`.
# Then live.sh runs them for real (HAProxy exporter, Prometheus, Alertmanager, a webhook sink).
set -euo pipefail
cd "$(dirname "$0")"
: "${ANSIBLE_COLLECTIONS_PATH:?must point at a collections dir holding autoheal.haproxy}"
# shellcheck source=../setup_haproxy/files/recap.sh
source ../setup_haproxy/files/recap.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'localhost ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"\n' >"$work/inventory"

# play VARIANT OUT EXPECT [ansible-playbook args...]: EXPECT is "changed" or "unchanged".
play() {
  local variant=$1 out=$2 expect=$3 log
  shift 3
  log=$(ansible-playbook -i "$work/inventory" apply.yml -e "@vars/$variant.yml" -e "autoheal_test_out=$out" "$@") || {
    echo "$log"; echo "FAIL: $variant ${*:-real run} failed"; return 1; }
  check_recap "$expect" localhost "$log" "$variant ${*:-real run}"
}

for variant in default custom; do
  out="$work/$variant"
  play "$variant" "$out" changed --check
  if [[ -e $out ]]; then echo "FAIL: check mode wrote $out"; exit 1; fi
  play "$variant" "$out" changed
  play "$variant" "$out" unchanged --check
  play "$variant" "$out" unchanged
  receivers='["autoheal-relay", "default"]'
  [[ $variant == custom ]] && receivers='["autoheal-relay", "pager"]'
  ansible-playbook -i "$work/inventory" verify.yml -e "@vars/$variant.yml" -e "autoheal_test_out=$out" \
    -e "autoheal_test_variant=$variant" -e "{\"expected_receivers\": $receivers}" >"$work/verify.log" || {
    cat "$work/verify.log"; echo "FAIL: verify $variant"; exit 1; }
  echo "ok: $variant: promtool check/test rules, amtool check-config, content assertions"
done

# Bad input: a clear error and nothing written.
out="$work/bad"
if log=$(ansible-playbook -i "$work/inventory" apply.yml -e @vars/default.yml -e "autoheal_test_out=$out" \
    -e '{"autoheal_alerting_node_targets": [{"target": "10.0.0.1:9100", "backend": "web"}]}' 2>&1); then
  echo "FAIL: a node target without a server was accepted"; exit 1
fi
grep -q "server" <<<"$log" || { echo "$log"; echo "FAIL: error does not name the missing option"; exit 1; }
[[ ! -e $out ]] || { echo "FAIL: a rejected run wrote $out"; exit 1; }
if ansible-playbook -i "$work/inventory" apply.yml -e @vars/default.yml -e "autoheal_test_out=$out" \
    -e autoheal_alerting_relay_auth=digest >/dev/null 2>&1; then
  echo "FAIL: relay_auth=digest was accepted"; exit 1
fi
[[ ! -e $out ]] || { echo "FAIL: a rejected run wrote $out"; exit 1; }
echo "ok: bad input rejected before anything was written"

# The same files with the real stack: HAProxy exporter -> Prometheus -> Alertmanager -> webhook.
./live.sh
