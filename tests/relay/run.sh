#!/usr/bin/env bash
# Real-stack test of autoheal-relay: a real Alertmanager posts to the relay, which runs the real
# ansible-runner with tests/relay/record-actions.yml. Asserts the drain arrives when the alert
# fires and `enabled` when it resolves; then kills the relay (kill -9, with its run in progress),
# restarts it and asserts the interrupted action completes and the audit history shows it.
# Everything listens on 127.0.0.1, on free ports.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
here="$repo/tests/relay"
venv="$repo/.venv/bin"

relay_bin="${AUTOHEAL_RELAY_BIN:-}"
if [[ -z "$relay_bin" ]]; then
  cargo build --quiet --locked --manifest-path "$repo/rust/Cargo.toml" -p autoheal-relay
  relay_bin="$repo/rust/target/debug/autoheal-relay"
fi
for tool in prometheus-alertmanager curl python3 "$venv/ansible-runner" "$venv/ansible-playbook"; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (run scripts/deps.sh)" >&2; exit 1; }
done

work="$(mktemp -d /tmp/relay-realstack.XXXXXX)"
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true; done
  if ((rc != 0)); then
    echo "--- relay log"; tail -n 60 "$work/relay.log" 2>/dev/null || true
    echo "--- alertmanager log"; tail -n 20 "$work/am.log" 2>/dev/null || true
    echo "--- history"; "$relay_bin" history --config "$work/relay.toml" 2>/dev/null | tail -n 20 || true
    echo "work dir kept: $work"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
fail() { echo "FAIL: $*" >&2; exit 1; }
wait_until() { # seconds description command...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@"; do
    ((SECONDS < deadline)) || fail "timed out waiting for $what"
    sleep 0.2
  done
}

relay_port=$(free_port)
am_port=$(free_port)
token="relay-test-$RANDOM$RANDOM"
printf '%s\n' "$token" > "$work/token"
chmod 600 "$work/token"
mkdir -p "$work/records" "$work/collections" "$work/am"

cat > "$work/inventory.ini" <<INV
[haproxy]
localhost ansible_connection=local ansible_python_interpreter=$venv/python record_dir=$work/records hold_server=s2
INV

cat > "$work/relay.toml" <<TOML
[server]
listen = "127.0.0.1:$relay_port"

[auth]
bearer_token_file = "token"

[journal]
path = "journal.db"

[[rules]]
name = "drain-on-cpu"
match = { alertname = "BackendCpuHigh" }
action = "drain"
fleet = "lab"

[coalesce]
window_ms = 100

# Restores at once and in one step: this test is about the journal and crash recovery.
[lifecycle]
hold_down_base_secs = 0
hold_down_max_secs = 0
ramp_percent = [100]

[guard]
max_out_per_backend = 2

[executor]
kind = "ansible-runner"
binary = "$venv/ansible-runner"
playbook = "$here/record-actions.yml"
inventory = "inventory.ini"
limit = "haproxy"
work_dir = "runs"
timeout_secs = 120

[executor.env]
PATH = "$venv:/usr/local/bin:/usr/bin:/bin"
ANSIBLE_COLLECTIONS_PATH = "$work/collections"

[log]
format = "json"
TOML
"$relay_bin" check-config "$work/relay.toml" >/dev/null || fail "check-config rejects the test config"

cat > "$work/am.yml" <<YML
route:
  receiver: relay
  group_by: [alertname, server]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: relay
    webhook_configs:
      - url: http://127.0.0.1:$relay_port/hooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: $work/token
YML

start_relay() {
  # A process group of its own, so that kill -9 takes ansible-runner down with it (a crash).
  setsid "$relay_bin" serve --config "$work/relay.toml" >>"$work/relay.log" 2>&1 &
  relay_pid=$!
  pids+=("$relay_pid")
  wait_until 30 "relay /readyz" curl -fs -o /dev/null "http://127.0.0.1:$relay_port/readyz"
}

setsid prometheus-alertmanager --config.file="$work/am.yml" --storage.path="$work/am" \
  --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= >"$work/am.log" 2>&1 &
pids+=("$!")
disown "$!"  # killed in cleanup; no job-status noise
start_relay
wait_until 30 "alertmanager /-/ready" curl -fs -o /dev/null "http://127.0.0.1:$am_port/-/ready"

now() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }
post_alert() { # server startsAt [endsAt]
  local ends=""
  [[ $# -ge 3 ]] && ends=", \"endsAt\": \"$3\""
  curl -fsS -o /dev/null -XPOST -H 'Content-Type: application/json' "http://127.0.0.1:$am_port/api/v2/alerts" \
    -d "[{\"labels\": {\"alertname\": \"BackendCpuHigh\", \"server\": \"$1\", \"backend\": \"be\", \"severity\": \"critical\"},
          \"annotations\": {\"summary\": \"relay real-stack test\"}, \"startsAt\": \"$2\"$ends}]"
}
# Succeeds once some recorded run holds an action for server $1 in state $2.
recorded() {
  python3 - "$work/records" "$1" "$2" <<'PY'
import json, pathlib, sys
records, server, state = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
actions = [a for f in sorted(records.glob("run-*.json")) for a in json.loads(f.read_text())]
sys.exit(0 if any(a.get("server") == server and a.get("state") == state for a in actions) else 1)
PY
}

echo "== fire: Alertmanager -> relay -> ansible-runner, expect drain"
started=$(now)
post_alert s1 "$started"
wait_until 60 "a recorded drain of s1" recorded s1 drain
python3 - "$work/records" <<'PY' || fail "the drain action does not match the contract"
import json, pathlib, sys
runs = [json.loads(f.read_text()) for f in sorted(pathlib.Path(sys.argv[1]).glob("run-*.json"))]
a = runs[0][0]
assert len(runs) == 1 and len(runs[0]) == 1, runs
assert a["server"] == "s1" and a["backend"] == "be" and a["state"] == "drain", a
assert a["reason"]["alert"] == "BackendCpuHigh" and a["reason"]["status"] == "firing", a
assert len(a["reason"]["fingerprint"]) == 16, a
PY
recorded s1 enabled && fail "s1 restored before its alert resolved"

echo "== resolve: expect enabled"
post_alert s1 "$started" "$(now)"
wait_until 60 "a recorded restore of s1" recorded s1 enabled

# The playbook writes its record before ansible-runner exits: wait for the journal to catch up.
both_done() {
  "$relay_bin" history --config "$work/relay.toml" --json > "$work/history.json"
  python3 - "$work/history.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
done = sorted((r["alert_status"], r["state"], r["run_status"]) for r in rows if r["outcome"] == "done")
sys.exit(0 if done == [("firing", "drain", "successful"), ("resolved", "enabled", "successful")] else 1)
PY
}
wait_until 30 "the audit history to show both runs done" both_done
curl -fsS "http://127.0.0.1:$relay_port/metrics" > "$work/metrics.txt"
grep -q '^autoheal_relay_runs_finished_total{result="successful"} 2$' "$work/metrics.txt" \
  || fail "metrics do not count 2 successful runs: $(grep runs_finished "$work/metrics.txt")"

echo "== crash: kill -9 the relay while its run is in progress, restart, expect the action to complete"
post_alert s2 "$(now)"
wait_until 60 "the held run of s2 to start" test -e "$work/records/held"
recorded s2 drain && fail "the held run finished early"
kill -9 -- "-$relay_pid"
wait "$relay_pid" 2>/dev/null || true
touch "$work/records/release"
start_relay
wait_until 90 "the re-run drain of s2" recorded s2 drain
s2_done() {
  "$relay_bin" history --config "$work/relay.toml" --json > "$work/history.json"
  python3 - "$work/history.json" "$work/journal.db" <<'PY'
import json, sqlite3, sys
rows = json.load(open(sys.argv[1]))
s2 = [r for r in rows if r["target"] == "be/s2"]
runs = [r[0] for r in sqlite3.connect(sys.argv[2]).execute("SELECT status FROM runs ORDER BY id")]
ok = (len(s2) == 1 and s2[0]["outcome"] == "done" and s2[0]["run_status"] == "successful"
      and runs == ["successful", "successful", "interrupted", "successful"])
sys.exit(0 if ok else 1)
PY
}
wait_until 30 "the audit history to show the interrupted run and its successful re-run" s2_done
echo "== graceful stop: SIGTERM, expect a clean exit"
kill -TERM "$relay_pid"
for _ in $(seq 50); do kill -0 "$relay_pid" 2>/dev/null || break; sleep 0.2; done
kill -0 "$relay_pid" 2>/dev/null && fail "the relay did not stop within 10 s of SIGTERM"
wait "$relay_pid" || fail "the relay exited with status $? on SIGTERM"
grep -q '"stopped"' "$work/relay.log" || fail "the relay did not log its stop"

echo "== TLS: a dry-run relay on HTTPS with a throwaway certificate"
tls_port=$(free_port)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
sed -e "s/^listen = .*/listen = \"127.0.0.1:$tls_port\"\ntls_cert = \"tls.crt\"\ntls_key = \"tls.key\"/" \
    -e 's/^path = "journal.db"/path = "journal-tls.db"/' -e 's/^kind = "ansible-runner"/kind = "dry-run"/' \
    -e '/^\[executor\]/,$d' "$work/relay.toml" > "$work/relay-tls.toml"
printf '[executor]\nkind = "dry-run"\n' >> "$work/relay-tls.toml"
setsid "$relay_bin" serve --config "$work/relay-tls.toml" >"$work/relay-tls.log" 2>&1 &
pids+=("$!")
disown "$!"
wait_until 30 "the HTTPS relay" curl -fs -o /dev/null --cacert "$work/tls.crt" "https://127.0.0.1:$tls_port/readyz"
answer=$(curl -fsS --cacert "$work/tls.crt" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  --data '{"version":"4","status":"firing","alerts":[{"status":"firing","startsAt":"2026-01-01T00:00:00Z","fingerprint":"00000000000000aa","labels":{"alertname":"BackendCpuHigh","server":"s9","backend":"be"}}]}' \
  "https://127.0.0.1:$tls_port/hooks/alertmanager")
[[ "$answer" == *'"actions":1'* ]] || fail "HTTPS webhook answer: $answer"
curl -s -o /dev/null "http://127.0.0.1:$tls_port/healthz" && fail "the TLS listener answered plain HTTP"

echo "PASS: relay real-stack test (Alertmanager 0.25 -> relay -> ansible-runner; drain, enabled, crash recovery)"
