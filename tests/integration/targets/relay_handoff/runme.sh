#!/usr/bin/env bash
# autoheal.haproxy.relay_handoff through the playbook autoheal.haproxy.standby, the way autoheal-relay's worker
# uses them, against a real HAProxy 2.6 (the setup_haproxy lab):
#   a hand-off: the waiting standby runs autoheal.haproxy.remediate with the handed-over actions (live and file);
#   the same in check mode: nothing written, nothing changed live;
#   a cancel: the standby fails before the imported playbook, nothing changes;
#   the owner gone: the standby ends by itself within seconds.
set -euo pipefail
cd "$(dirname "$0")"
: "${ANSIBLE_COLLECTIONS_PATH:?must point at a collections dir holding autoheal.haproxy}"
lab_py="$PWD/../setup_haproxy/files/haproxy_lab.py"
work=$(mktemp -d)
lab="$work/lab"
trap 'python3 "$lab_py" stop "$lab" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

python3 "$lab_py" start "$lab" ../setup_haproxy/files/haproxy.cfg.in >/dev/null
cfg="$lab/haproxy.cfg"
# shellcheck source=../setup_haproxy/files/lab.sh
source ../setup_haproxy/files/lab.sh
lab_inventory "$work/inventory"

fail() { echo "FAIL: $*"; exit 1; }
channel="$work/handoff"

# standby OWNER [ansible-playbook args...]: starts the standby in the background; its log is $work/standby.log.
standby() {
  local owner=$1
  shift
  rm -f "$channel"
  mkfifo -m 600 "$channel"
  ansible-playbook -i "$work/inventory" autoheal.haproxy.standby \
    -e "autoheal_standby_channel=$channel" -e autoheal_standby_playbook=autoheal.haproxy.remediate \
    -e "autoheal_standby_owner=$owner" "$@" >"$work/standby.log" 2>&1 &
  standby_pid=$!
}

# hand_over JSON: writes JSON into the channel once the standby reads it (as the relay's worker does).
hand_over() {
  python3 - "$channel" "$1" <<'PY'
import errno, os, sys, time
deadline = time.monotonic() + 60
while True:
    try:
        fd = os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)
        break
    except OSError as err:
        if err.errno != errno.ENXIO or time.monotonic() > deadline:
            raise
        time.sleep(0.01)
os.set_blocking(fd, True)
os.write(fd, sys.argv[2].encode())
os.close(fd)
PY
}

drain='{"vars": {"autoheal_actions": [{"backend": "app", "server": "web1", "state": "drain"}]}}'
before=$(sha256sum <"$cfg")

# --- check mode: the imported playbook runs in check mode, nothing changes -------------------------------
standby $$ --check
hand_over "$drain"
wait "$standby_pid" || { cat "$work/standby.log"; fail "the check-mode standby failed"; }
grep -q "changed=1" "$work/standby.log" || { cat "$work/standby.log"; fail "check mode did not predict the drain"; }
[[ $(sha256sum <"$cfg") == "$before" && $(live app/web1) == "ready w10" ]] || fail "check mode changed something"
echo "ok: hand-off in check mode predicts the drain and changes nothing"

# --- a real hand-off: the handed-over action is applied, live and in the file ----------------------------
standby $$
hand_over "$drain"
wait "$standby_pid" || { cat "$work/standby.log"; fail "the standby run failed"; }
[[ $(live app/web1) == "drain w10" ]] || fail "web1 not drained live: $(live app/web1)"
grep -q "^ *#autoheal drain by autoheal was: server web1 " "$cfg" || fail "web1 not drained in the file"
ansible-playbook -i "$work/inventory" autoheal.haproxy.restore_all >/dev/null || fail "restore_all failed"
[[ $(sha256sum <"$cfg") == "$before" ]] || fail "the file did not come back"
echo "ok: hand-off applied live and in the file"

# --- a cancel: the first play fails, the imported playbook never runs ------------------------------------
standby $$
hand_over '{"cancel": "the inventory changed"}'
if wait "$standby_pid"; then cat "$work/standby.log"; fail "a cancelled standby succeeded"; fi
grep -q "the standby was retired: the inventory changed" "$work/standby.log" || fail "no reason for the cancel"
if grep -q "Apply each action" "$work/standby.log"; then fail "the imported playbook ran after a cancel"; fi
[[ $(sha256sum <"$cfg") == "$before" && $(live app/web1) == "ready w10" ]] || fail "a cancel changed something"
echo "ok: a cancelled standby stops before the imported playbook"

# --- the owner gone: the standby does not wait for a hand-off that cannot come ---------------------------
sleep 2 &
owner=$!
standby "$owner"
started=$SECONDS
if wait "$standby_pid"; then fail "a standby without its owner succeeded"; fi
((SECONDS - started < 30)) || fail "the standby outlived its owner by $((SECONDS - started)) s"
grep -q "(pid $owner) is gone" "$work/standby.log" || { cat "$work/standby.log"; fail "no reason for the end"; }
echo "ok: a standby whose owner is gone ends by itself"
