#!/usr/bin/env bash
# Role autoheal.haproxy.remediate through the playbooks autoheal.haproxy.remediate and
# autoheal.haproxy.restore_all, against a real HAProxy 2.6 (master-worker, admin socket) whose servers are
# python http.servers on 127.0.0.1 (the setup_haproxy lab). The live state is read with the lab's own socket
# client, the file with its own reader and by bytes; never with the module under test.
#   drain, enabled: check/real/check/real each (changed, changed, not changed, not changed), live verified,
#     traffic verified, and after `enabled` the file is byte-identical to the original;
#   absent then enabled: the module reloads (USR2, then master CLI) only on the real runs that need it;
#   a weight action (enabled + 50%) and actions by address;
#   health-gated restore: a drained server whose check fails is deferred (unchanged, the play does not fail),
#     then restored once the check passes; a server an operator drained by hand is skipped;
#   min_active guard on the whole list: a refused list fails loudly and changes nothing; an unknown server
#     in a list is reported not found and the rest applied; a list within the guard is applied in one run;
#   restore_all: every server autoheal took out comes back, file byte-identical again;
#   every state, reloads included, on an inventory host whose Python interpreter does not exist;
#   a malformed action, a list that is not one, a bad role variable: refused before anything changes.
set -euo pipefail
cd "$(dirname "$0")"
: "${ANSIBLE_COLLECTIONS_PATH:?must point at a collections dir holding autoheal.haproxy}"
# shellcheck source=../setup_haproxy/files/recap.sh
source ../setup_haproxy/files/recap.sh
lab_py="$PWD/../setup_haproxy/files/haproxy_lab.py"
work=$(mktemp -d)
lab="$work/lab"
trap 'python3 "$lab_py" stop "$lab" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

python3 "$lab_py" start "$lab" ../setup_haproxy/files/haproxy.cfg.in >"$work/lab.json"
cfg="$lab/haproxy.cfg"
cp "$cfg" "$work/original.cfg"
frontend=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["frontend"])' <"$work/lab.json")

# shellcheck source=../setup_haproxy/files/lab.sh
source ../setup_haproxy/files/lab.sh
lab_inventory "$work/inventory"

fail() { echo "FAIL: $*"; exit 1; }
# Small JSON readers over the lab's output (python3 only: no jq on a fresh machine).
pyjson() { python3 -c "import json, sys; d = json.load(sys.stdin); a = sys.argv[1:]; $1" "${@:2}"; }
live_all() { python3 "$lab_py" state "$lab" | pyjson 'print(json.dumps(d["summary"], sort_keys=True))'; }
worker() { python3 "$lab_py" state "$lab" | pyjson 'print(d["worker_pid"])'; }
file_line() {
  python3 "$lab_py" config "$cfg" |
    pyjson 'print(d["backends"].get(a[0], {}).get("servers", {}).get(a[1], {}).get("line", "missing"))' "$1" "$2"
}
same_file() { cmp -s "$cfg" "$1"; }
# admin COMMAND: one runtime API command on the lab's admin socket (an operator's hand, not the module).
admin() { python3 "$lab_py" admin "$lab" "$1" | pyjson 'print(d["answer"])'; }
# wait_op BACKEND/SERVER OP_STATE: until HAProxy's health checks put the server in that operational state.
wait_op() { python3 "$lab_py" wait "$lab" "$1" "$2" >/dev/null || fail "$1 never reached op_state $2"; }

# run PLAYBOOK EXPECT ACTIONS_JSON [args...]: EXPECT is changed, unchanged or failed; ACTIONS_JSON may be empty.
run() {
  local playbook=$1 expect=$2 actions=$3 log rc=0 mode=real
  shift 3
  [[ " $* " != *" --check "* ]] || mode=check
  # restore_all computes its own actions: an extra var would override them.
  [[ -z $actions ]] || set -- -e "{\"autoheal_actions\": $actions}" "$@"
  log=$(ansible-playbook -i "${inventory:-$work/inventory}" "autoheal.haproxy.$playbook" "$@" 2>&1) || rc=$?
  last_log=$log
  if [[ $expect == failed ]]; then
    ((rc != 0)) || { echo "$log"; fail "$playbook $actions: expected a failure"; }
    echo "ok: $playbook $mode failed as expected"
    return
  fi
  ((rc == 0)) || { echo "$log"; fail "$playbook $actions $mode: exit $rc"; }
  check_recap "$expect" lb1 "$log" "$playbook $mode" || exit 1
}

# four PLAYBOOK ACTIONS: check, real, check, real.
four() {
  local before
  before=$(sha256sum <"$cfg")
  live_before=$(live_all)
  run "$1" changed "$2" --check
  [[ $(sha256sum <"$cfg") == "$before" ]] || fail "check mode changed the file"
  [[ $(live_all) == "$live_before" ]] || fail "check mode changed the live state"
  run "$1" changed "$2"
  run "$1" unchanged "$2" --check
  run "$1" unchanged "$2"
}

reason='"reason": {"alert": "AutohealNodeCpuBusy", "fingerprint": "0f3c", "status": "firing"}'

# --- drain web2 -----------------------------------------------------------------------------------
four remediate "[{\"backend\": \"app\", \"server\": \"web2\", \"state\": \"drain\", $reason}]"
[[ $(live app/web2) == drain* ]] || fail "web2 is not drained live: $(live app/web2)"
[[ $(live app/web1) == "ready w10" && $(live app/web3) == "ready w1" ]] || fail "other servers changed"
[[ $(file_line app web2) == *"weight 0"* ]] || fail "file line of web2 has no weight 0: $(file_line app web2)"
grep -q "AutohealNodeCpuBusy" <<<"$last_log" || fail "the summary does not name the alert"
for _ in $(seq 30); do curl -fsS "$frontend"; done >"$work/answers"
! grep -qx web2 "$work/answers" || fail "a drained server still got new requests"
grep -qx web1 "$work/answers" || fail "no traffic reached web1"

# --- and back --------------------------------------------------------------------------------------
four remediate '[{"backend": "app", "server": "web2", "state": "enabled"}]'
[[ $(live app/web2) == "ready w20" ]] || fail "web2 not back live: $(live app/web2)"
same_file "$work/original.cfg" || fail "after enabled the file differs from the original"

# --- health-gated restore: not while the check fails (deferred, nothing changed, the play succeeds) ------
run remediate changed '[{"backend": "app", "server": "web2", "state": "drain"}]'
web2_port=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["ports"]["web2"])' <"$work/lab.json")
closed_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
[[ -z $(admin "set server app/web2 check-port $closed_port") ]] || fail "could not point web2's check elsewhere"
wait_op app/web2 0
drained_file=$(sha256sum <"$cfg")
run remediate unchanged '[{"backend": "app", "server": "web2", "state": "enabled"}]' --check
run remediate unchanged '[{"backend": "app", "server": "web2", "state": "enabled"}]'
grep -q "deferred: app/web2 deferred: HAProxy's health check of app/web2 is failing" <<<"$last_log" ||
  { echo "$last_log"; fail "the summary does not say the restore was deferred"; }
[[ $(live app/web2) == drain* && $(sha256sum <"$cfg") == "$drained_file" ]] || fail "a deferred restore changed web2"
[[ -z $(admin "set server app/web2 check-port $web2_port") ]] || fail "could not give web2 its check back"
wait_op app/web2 2
run remediate changed '[{"backend": "app", "server": "web2", "state": "enabled"}]'
[[ $(live app/web2) == "ready w20" ]] || fail "web2 not restored once its check passed: $(live app/web2)"
same_file "$work/original.cfg" || fail "after the gated restore the file differs from the original"
# A server an operator drained by hand stays drained: the role acts as autoheal.
[[ -z $(admin "set server app/web1 state drain") ]] || fail "could not drain web1 by hand"
run remediate unchanged '[{"backend": "app", "server": "web1", "state": "enabled"}]'
grep -q "skipped: app/web1 skipped: an operator set its current state" <<<"$last_log" ||
  { echo "$last_log"; fail "the summary does not say web1 was left to its operator"; }
[[ $(live app/web1) == "drain w10" ]] || fail "autoheal restored a server an operator drained: $(live app/web1)"
[[ -z $(admin "set server app/web1 state ready") ]] || fail "could not give web1 back"
echo "ok: restores wait for the health check, and an operator's drain is left alone"

# --- absent needs a reload: the handler runs on the real run only (USR2 to the master) ---------------
pid0=$(worker)
run remediate changed '[{"backend": "app", "server": "web3", "state": "absent"}]' --check
[[ $(worker) == "$pid0" ]] || fail "check mode reloaded HAProxy"
run remediate changed '[{"backend": "app", "server": "web3", "state": "absent"}]'
pid1=$(worker)
[[ $pid1 != "$pid0" ]] || fail "absent did not reload HAProxy"
[[ $(live app/web3) == missing ]] || fail "after the reload web3 is still in the running HAProxy: $(live app/web3)"
[[ $(file_line app web3) == missing ]] || fail "web3 is still a server line in the file"
head -1 "$lab/server-state" | grep -qx 1 || fail "the server state was not saved before the reload"
run remediate unchanged '[{"backend": "app", "server": "web3", "state": "absent"}]' --check
run remediate unchanged '[{"backend": "app", "server": "web3", "state": "absent"}]'
[[ $(worker) == "$pid1" ]] || fail "a run that changed nothing reloaded HAProxy"

# --- enabled brings it back, with a reload through the master CLI -----------------------------------
four remediate '[{"backend": "app", "server": "web3", "state": "enabled"}]' -e autoheal_remediate_reload_method=master_cli
[[ $(worker) != "$pid1" ]] || fail "enabling an absent server did not reload HAProxy"
[[ $(live app/web3) == "ready w1" ]] || fail "web3 not back live: $(live app/web3)"
same_file "$work/original.cfg" || fail "after absent+enabled the file differs from the original"

# --- what the relay sends for a weight rule (enabled + weight), and an action by address -------------
run remediate changed '[{"backend": "app", "server": "web1", "state": "enabled", "weight": "50%"}]'
[[ $(live app/web1) == "ready w5" ]] || fail "50% of weight 10 is not 5 live: $(live app/web1)"
[[ $(file_line app web1) == *"weight 5"* ]] || fail "file line of web1: $(file_line app web1)"
run remediate unchanged '[{"backend": "app", "server": "web1", "state": "enabled", "weight": "50%"}]'
web3_address="127.0.0.1:$(python3 -c 'import json, sys; print(json.load(sys.stdin)["ports"]["web3"])' <"$work/lab.json")"
run remediate changed "[{\"backend\": \"app\", \"address\": \"$web3_address\", \"state\": \"disabled\"}]"
[[ $(live app/web3) == maint* ]] || fail "web3 (by address) is not in maintenance: $(live app/web3)"
run remediate changed "[{\"backend\": \"app\", \"address\": \"$web3_address\", \"state\": \"enabled\"}]"
[[ $(live app/web3) == "ready w1" ]] || fail "web3 (by address) not back: $(live app/web3)"

# --- min_active guard, on the whole list: three drains in app would leave none; refused, nothing changed -
before=$(sha256sum <"$cfg")
live_before=$(live_all)
run remediate failed '[{"backend": "app", "server": "web1", "state": "drain"},
                       {"backend": "app", "server": "web2", "state": "drain"},
                       {"backend": "app", "server": "web3", "state": "drain"}]'
grep -q "Applying the 3 actions failed on lb1" <<<"$last_log" || fail "the failure does not count the actions"
grep -q "guard blocked" <<<"$last_log" || fail "the failure does not say the guard blocked"
grep -q "min_active=1" <<<"$last_log" || fail "the failure does not say why"
[[ $(sha256sum <"$cfg") == "$before" && $(live_all) == "$live_before" ]] || fail "a refused list changed something"
# An unknown server in the list (a typo, a renamed server) does not hold back the others: reported, not failed.
run remediate changed '[{"backend": "app", "server": "web1", "state": "drain"},
                        {"backend": "app", "server": "web9", "state": "drain"}]'
grep -q "not found: changes\[1\]: no server matches" <<<"$last_log" || fail "the summary does not name the unknown server"
[[ $(live app/web1) == drain* ]] || fail "the known server's drain was held back by the unknown one"
# Two of the three: allowed, both applied in one run.
run remediate changed '[{"backend": "app", "server": "web1", "state": "drain"},
                        {"backend": "app", "server": "web2", "state": "drain"}]'
[[ $(live app/web1) == drain* && $(live app/web2) == drain* ]] || fail "the allowed drains were not applied"
# web1 now carries two autoheal changes (weight 50%, then drain); restore_all must undo both.
[[ $(live app/web3) == "ready w1" ]] || fail "web3 changed: $(live app/web3)"

# --- restore_all puts back everything autoheal took out ------------------------------------------------
run remediate changed '[{"backend": "api", "server": "api2", "state": "disabled"}]'
four restore_all ''
for server in app/web1 app/web2 app/web3 api/api2; do
  [[ $(live "$server") == ready* ]] || fail "restore_all left $server $(live "$server")"
done
[[ $(live app/web1) == "ready w10" && $(live api/api2) == "ready w5" ]] || fail "weights not restored"
same_file "$work/original.cfg" || fail "after restore_all the file differs from the original"

# --- no Python on the load balancer: every state, reloads included, with an interpreter that does not exist -
inventory="$work/inventory-nopython"
sed 's#ansible_python_interpreter="[^"]*"#ansible_python_interpreter=/nonexistent#' "$work/inventory" >"$inventory"
grep -q "ansible_python_interpreter=/nonexistent" "$inventory" || fail "the inventory still names a Python"
four remediate '[{"backend": "app", "server": "web2", "state": "drain"},
                 {"backend": "api", "server": "api2", "state": "disabled"},
                 {"backend": "app", "server": "web1", "state": "enabled", "weight": 5}]'
[[ $(live app/web2) == drain* && $(live api/api2) == maint* && $(live app/web1) == "ready w5" ]] ||
  fail "without Python: $(live_all)"
pid0=$(worker)
four remediate '[{"backend": "app", "server": "web3", "state": "absent"}]' -e autoheal_remediate_reload_method=master_cli
pid1=$(worker)
[[ $pid1 != "$pid0" && $(live app/web3) == missing ]] || fail "without Python, absent did not reload: $(live_all)"
four remediate '[{"backend": "app", "server": "web1", "state": "enabled"}, {"backend": "app", "server": "web2", "state": "enabled"},
                 {"backend": "app", "server": "web3", "state": "enabled"}, {"backend": "api", "server": "api2", "state": "enabled"}]'
[[ $(worker) != "$pid1" && $(live app/web3) == "ready w1" ]] || fail "without Python, web3 did not come back: $(live_all)"
same_file "$work/original.cfg" || fail "without Python, the file did not come back to the original"
unset inventory
echo "ok: every state, with reloads, on a host without Python"

# --- malformed actions: refused before anything changes ---------------------------------------------
before=$(sha256sum <"$cfg")
run remediate failed '[{"backend": "app", "server": "web1", "state": "drain"},
                       {"backend": "app", "server": "web2", "address": "127.0.0.1", "state": "drain"}]'
grep -q "Refusing to change anything" <<<"$last_log" || fail "no clear refusal for a malformed action"
grep -q "needs exactly one of server and address" <<<"$last_log" || fail "the refusal does not say what is wrong"
run remediate failed '[{"backend": "app", "server": "web1", "state": "drain", "weight": 5}]'
grep -q "weight is only allowed with state enabled" <<<"$last_log" || fail "weight with drain not explained"
run remediate failed '[{"backend": "app", "server": "web1", "state": "sleep"}]'
# The playbook leaves out the role's argument validation task: the same inputs are refused by the filter and
# by the module's own options, before anything is touched.
run remediate failed '5'
grep -q "Refusing to change anything: autoheal_actions must be a list" <<<"$last_log" ||
  fail "actions that are not a list were not refused by name"
run remediate failed '{"backend": "app", "server": "web1", "state": "drain"}'
grep -q "autoheal_actions must be a list" <<<"$last_log" || fail "a single action object was not refused by name"
run remediate failed '[{"backend": "app", "server": "web1", "state": "drain"}]' -e autoheal_remediate_min_active=lots
grep -q 'option .min_active.: expected a non-negative integer, found' <<<"$last_log" ||
  fail "a bad autoheal_remediate_min_active was not refused by name"
run remediate failed '[{"backend": "app", "server": "web1", "state": "drain"}]' -e autoheal_remediate_set_by=nobody
grep -q 'option .set_by.: expected one of autoheal, operator' <<<"$last_log" ||
  fail "a bad autoheal_remediate_set_by was not refused by name"
[[ $(sha256sum <"$cfg") == "$before" && $(live app/web1) == "ready w10" ]] || fail "a refused run changed something"
echo "ok: malformed actions and options refused, nothing changed"

# --- a node whose HAProxy does not answer: left untouched; the role fails it (at once by default; at the
# end of the playbook, which goes on to the other nodes first) ------------------------------------------
before=$(sha256sum <"$cfg")
gone="$work/stopped-haproxy.sock"
run remediate failed '[{"backend": "app", "server": "web1", "state": "drain"}]' -e "autoheal_remediate_socket=$gone"
grep -q "Fail the load balancers whose HAProxy did not answer" <<<"$last_log" ||
  fail "the playbook did not reach its last play"
grep -q "HAProxy does not answer on $gone on lb1" <<<"$last_log" || fail "the failure does not name the node"
[[ $(sha256sum <"$cfg") == "$before" ]] || fail "the file of a node whose HAProxy does not answer was changed"
cat >"$work/role-alone.yml" <<YAML
- hosts: haproxy
  gather_facts: false
  roles: [autoheal.haproxy.remediate]
YAML
log=$(ansible-playbook -i "$work/inventory" "$work/role-alone.yml" -e "autoheal_remediate_socket=$gone" \
  -e '{"autoheal_actions": [{"backend": "app", "server": "web1", "state": "drain"}]}' 2>&1) &&
  fail "the role alone did not fail a node whose HAProxy does not answer"
grep -q "Fail the node now" <<<"$log" || { echo "$log"; fail "the role alone did not fail at once"; }
[[ $(sha256sum <"$cfg") == "$before" && $(live app/web1) == "ready w10" ]] || fail "an unanswered node was changed"
echo "ok: a node whose HAProxy does not answer is left untouched and failed"
