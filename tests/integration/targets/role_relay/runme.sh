#!/usr/bin/env bash
# Role autoheal.haproxy.relay under a temporary prefix, with the real autoheal-relay binary:
# check, real, check, real (changed, changed, not changed, not changed); check mode creates nothing; the
# secret files are 0600 and owned by the system user the role creates; the installed relay.toml passes
# `autoheal-relay check-config`; the unit carries the hardening directives; a config change notifies the
# restart handler and an unchanged run does not; a config the relay rejects is never installed.
# Finally the playbook autoheal.haproxy.deploy installs all three pieces from one inventory (twice: changed,
# then unchanged).
# This machine has no systemd, so the unit is not started by systemd: instead the installed binary is
# started by hand, as the relay's user, on the installed config, and answers webhooks with the installed
# secrets (which proves the file permissions work for that user).
set -euo pipefail
cd "$(dirname "$0")"
: "${ANSIBLE_COLLECTIONS_PATH:?must point at a collections dir holding autoheal.haproxy}"
# shellcheck source=../setup_haproxy/files/recap.sh
source ../setup_haproxy/files/recap.sh

# The relay binary: AUTOHEAL_RELAY_BIN, else built by the repository's helper (the collection copy the
# driver runs from has no Rust sources; the repository is the one whose .venv runs ansible-playbook).
relay_bin=${AUTOHEAL_RELAY_BIN:-}
if [[ -z $relay_bin ]]; then
  repo=$(cd "$(dirname "$(command -v ansible-playbook)")/../.." && pwd)
  [[ -x $repo/scripts/ensure-relay.sh ]] || { echo "FAIL: no AUTOHEAL_RELAY_BIN and no repository at $repo"; exit 1; }
  relay_bin=$("$repo/scripts/ensure-relay.sh")
fi

# Under /tmp itself, not $TMPDIR: the relay's user must traverse every directory above its files, and a
# driver's TMPDIR is private to root.
work=$(mktemp -d /tmp/autoheal-relay-it.XXXXXX)
chmod 0755 "$work"
prefix="$work/root"
# A user of its own per run: runs of this target may overlap (several checkouts, several drivers).
user="ahrelay-it-$$"
created_user=0
id "$user" >/dev/null 2>&1 || created_user=1
server_pid=
cleanup() {
  [[ -z $server_pid ]] || kill "$server_pid" 2>/dev/null || true
  if ((created_user)); then
    userdel "$user" >/dev/null 2>&1 || true
    groupdel "$user" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
printf 'localhost ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"\n' >"$work/inventory"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fail() { echo "FAIL: $*"; exit 1; }

# play EXPECT [args...]: EXPECT is changed, unchanged or failed.
play() {
  local expect=$1 rc=0 mode=real
  shift
  [[ " $* " != *" --check "* ]] || mode=check
  last_log=$(ansible-playbook -i "$work/inventory" apply.yml -e "autoheal_test_prefix=$prefix" \
    -e "autoheal_test_relay_bin=$relay_bin" -e "autoheal_test_port=$port" -e "autoheal_test_user=$user" "$@" 2>&1) || rc=$?
  if [[ $expect == failed ]]; then
    ((rc != 0)) || { echo "$last_log"; fail "expected a failure"; }
    echo "ok: $mode failed as expected"
    return
  fi
  ((rc == 0)) || { echo "$last_log"; fail "$mode run exited $rc"; }
  check_recap "$expect" localhost "$last_log" "$mode" || exit 1
}

play changed --check
[[ ! -e $prefix ]] || fail "check mode created $prefix"
((created_user == 0)) || ! id "$user" >/dev/null 2>&1 || fail "check mode created the user"
play changed
play unchanged --check
play unchanged
! grep -q "RUNNING HANDLER" <<<"$last_log" || fail "an unchanged run notified the restart handler"

id "$user" >/dev/null || fail "the system user was not created"
[[ $(getent passwd "$user" | cut -d: -f7) == /usr/sbin/nologin ]] || fail "the relay user has a login shell"
for secret in relay.token relay.users; do
  [[ $(stat -c '%a %U' "$prefix/etc/autoheal/secrets/$secret") == "600 $user" ]] ||
    fail "$secret is $(stat -c '%a %U' "$prefix/etc/autoheal/secrets/$secret")"
done
[[ $(cat "$prefix/etc/autoheal/secrets/relay.users") == "alertmanager:basic-pass-not-secret" ]] || fail "basic auth file"
[[ $(stat -c '%a' "$prefix/etc/autoheal/relay.toml") == 640 ]] || fail "relay.toml is not 0640"
"$prefix/bin/autoheal-relay" check-config "$prefix/etc/autoheal/relay.toml" >"$work/check.out" 2>&1 ||
  { cat "$work/check.out"; fail "the installed relay.toml does not pass check-config"; }
grep -q "2 rule(s)" "$work/check.out" || { cat "$work/check.out"; fail "check-config does not see the two default rules"; }
unit="$prefix/etc/systemd/system/autoheal-relay.service"
for directive in NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes ProtectHome=yes "User=$user" \
  "ExecStart=$prefix/bin/autoheal-relay serve --config $prefix/etc/autoheal/relay.toml" \
  "ExecStartPre=$prefix/bin/autoheal-relay check-config $prefix/etc/autoheal/relay.toml" \
  "ReadWritePaths=$prefix/var/lib/autoheal-relay -$prefix/var/lib/autoheal-relay/runs -$prefix/run/autoheal" \
  LimitNOFILE=8192 TasksMax=512 MemoryMax=1G; do
  grep -qx -- "$directive" "$unit" || fail "the unit lacks $directive"
done
# systemd's own checks on the rendered unit: it parses, and its exposure stays at 2.0 or better ("OK").
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$unit" >"$work/verify.out" 2>&1 || { cat "$work/verify.out"; fail "systemd-analyze verify"; }
  ! grep -q "$(basename "$unit")" "$work/verify.out" || { cat "$work/verify.out"; fail "systemd-analyze verify warns about the unit"; }
  exposure=$(systemd-analyze security --offline=true "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
  [[ -n $exposure ]] || fail "systemd-analyze security printed no exposure level"
  awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || fail "the unit's exposure is $exposure, more than 2.0"
  echo "ok: systemd-analyze verify, exposure $exposure"
else
  fail "systemd-analyze is missing (Debian package systemd)"
fi
echo "ok: user, secrets 0600, check-config, hardened unit"

# A config change restarts the service (the handler runs; here it is skipped for lack of systemd).
play changed -e autoheal_test_window_ms=300
grep -q "RUNNING HANDLER \[autoheal.haproxy.relay : Restart autoheal-relay\]" <<<"$last_log" ||
  fail "a config change did not notify the restart handler"
grep -qx "window_ms = 300" "$prefix/etc/autoheal/relay.toml" || fail "the new window is not in relay.toml"

# A rule the relay rejects: validation fails, the installed file stays as it was.
before=$(sha256sum <"$prefix/etc/autoheal/relay.toml")
play failed -e '{"autoheal_relay_rules": [{"name": "bad", "match": {"alertname": "X"}, "action": "weight"}]}'
grep -q "weight" <<<"$last_log" || fail "the failure does not say what is wrong"
[[ $(sha256sum <"$prefix/etc/autoheal/relay.toml") == "$before" ]] || fail "a rejected config replaced relay.toml"
echo "ok: rejected config not installed"

# Start the installed relay as its user on the installed config; webhooks with the installed secrets.
runuser -u "$user" -- "$prefix/bin/autoheal-relay" serve --config "$prefix/etc/autoheal/relay.toml" \
  >"$work/relay.log" 2>&1 &
server_pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -fs "$url/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$url/readyz" >/dev/null || { cat "$work/relay.log"; fail "the installed relay did not become ready"; }
post() { curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data @files/firing.json "$@"; }
[[ $(post "$url/hooks/alertmanager") == 401 ]] || fail "a webhook without credentials was accepted"
[[ $(post -H "Authorization: Bearer wrong" "$url/hooks/alertmanager") == 401 ]] || fail "a wrong token was accepted"
[[ $(post -H "Authorization: Bearer test-token-not-secret" "$url/hooks/alertmanager") == 200 ]] ||
  { cat "$work/relay.log"; fail "the installed token was refused"; }
[[ $(post -u alertmanager:basic-pass-not-secret "$url/hooks/alertmanager") == 200 ]] || fail "basic auth refused"
[[ -s $prefix/var/lib/autoheal-relay/journal.db ]] || fail "no journal in the state directory"
echo "ok: the installed relay serves as $user with the installed secrets (service start by systemd not tested: no systemd here)"
if kill "$server_pid"; then wait "$server_pid" 2>/dev/null || true; fi
server_pid=

# The playbook autoheal.haproxy.deploy wires the three roles to their inventory groups: one host in each
# group here (all local, everything under a second prefix), then a rerun changes nothing.
deploy="$work/deploy"
mkdir -p "$deploy"
cp ../role_haproxy_runtime/files/shop.cfg "$deploy/haproxy.cfg"
cat >"$work/deploy.yml" <<YAML
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  children:
    haproxy:
      hosts: {lb1: {}}
      vars:
        autoheal_haproxy_runtime_config: $deploy/haproxy.cfg
        autoheal_haproxy_runtime_admin_socket: $deploy/run/admin.sock
        autoheal_haproxy_runtime_state_file: $deploy/state/server-state
        autoheal_haproxy_runtime_apply: none
    autoheal_relay:
      hosts: {relay1: {}}
      vars:
        autoheal_relay_binary_src: $relay_bin
        autoheal_relay_binary_path: $deploy/bin/autoheal-relay
        autoheal_relay_user: $user
        autoheal_relay_group: $user
        autoheal_relay_config_dir: $deploy/etc/autoheal
        autoheal_relay_secrets_dir: $deploy/etc/autoheal/secrets
        autoheal_relay_state_dir: $deploy/var/lib/autoheal-relay
        autoheal_relay_unit_path: $deploy/etc/systemd/system/autoheal-relay.service
        autoheal_relay_manage_service: false
        autoheal_relay_bearer_token: deploy-token-not-secret
        autoheal_relay_executor: {kind: dry-run}
    prometheus:
      hosts: {prom1: {}}
      vars:
        autoheal_alerting_rules_path: $deploy/prometheus/rules/autoheal.rules.yml
        autoheal_alerting_node_targets_path: $deploy/prometheus/file_sd/autoheal_nodes.yml
        autoheal_alerting_alertmanager_config_path: $deploy/alertmanager/alertmanager.yml
        autoheal_alerting_relay_token_file: $deploy/alertmanager/relay.token
        autoheal_alerting_relay_secret: deploy-token-not-secret
        autoheal_alerting_relay_secret_owner: root
YAML
for expect in changed unchanged; do
  rc=0
  log=$(ansible-playbook -i "$work/deploy.yml" autoheal.haproxy.deploy 2>&1) || rc=$?
  ((rc == 0)) || { echo "$log"; fail "deploy exited $rc"; }
  total=$(recap_total_changed "$log") || { echo "$log"; fail "deploy: no play recap"; }
  expect_changes "$expect" "$total" || { echo "$log"; fail "deploy: expected $expect, got changed=$total"; }
  echo "ok: deploy $expect (changed=$total)"
done
grep -q "master-worker" "$deploy/haproxy.cfg" || fail "deploy did not prepare haproxy.cfg"
"$deploy/bin/autoheal-relay" check-config "$deploy/etc/autoheal/relay.toml" >/dev/null || fail "deploy: relay.toml"
promtool check rules "$deploy/prometheus/rules/autoheal.rules.yml" >/dev/null || fail "deploy: rules"
amtool check-config "$deploy/alertmanager/alertmanager.yml" >/dev/null || fail "deploy: alertmanager.yml"
echo "ok: deploy installed haproxy_runtime, relay and alerting from one inventory"
