#!/usr/bin/env bash
# The rendered rules and Alertmanager file, live: a real HAProxy 2.6 exports its metrics, a real Prometheus
# scrapes it every second with the rendered rules, a real Alertmanager with the rendered configuration sends
# to a webhook sink. web2's backend stops: AutohealServerCheckDown must arrive at the sink with
# backend=app, server=web2, the bearer token from the token file; web2 comes back: the resolved
# notification must arrive too (send_resolved). Loopback only; every process is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")"
lab_py="$PWD/../setup_haproxy/files/haproxy_lab.py"
work=$(mktemp -d)
lab="$work/lab"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  python3 "$lab_py" stop "$lab" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for log in "$work"/*.log; do echo "--- $log"; tail -20 "$log"; done; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

python3 "$lab_py" start "$lab" files/haproxy.cfg.in >"$work/lab.json"
metrics=$(json 'd["frontend"].split("/")[2]' <"$work/lab.json")
web2_port=$(json 'd["ports"]["web2"]' <"$work/lab.json")

python3 -u files/webhook_sink.py "$work/received.jsonl" >"$work/sink.port" 2>"$work/sink.log" &
pids+=($!)
for _ in $(seq 50); do [[ -s $work/sink.port ]] && break; sleep 0.1; done
sink_port=$(cat "$work/sink.port")

printf 'localhost ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"\n' >"$work/inventory"
ansible-playbook -i "$work/inventory" apply.yml -e @vars/live.yml -e "autoheal_test_out=$work/out" \
  -e "autoheal_test_sink_port=$sink_port" >"$work/apply.log" || fail "the role did not apply"

am_port=$(free_port)
prom_port=$(free_port)
cat >"$work/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["$work/out/rules/autoheal.rules.yml"]
alerting:
  alertmanagers: [{static_configs: [{targets: ["127.0.0.1:$am_port"]}]}]
scrape_configs:
  - job_name: haproxy
    static_configs: [{targets: ["$metrics"]}]
YAML
prometheus-alertmanager --config.file="$work/out/alertmanager.yml" --storage.path="$work/am" \
  --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= >"$work/alertmanager.log" 2>&1 &
pids+=($!)
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)
for url in "http://127.0.0.1:$am_port/-/ready" "http://127.0.0.1:$prom_port/-/ready"; do
  for _ in $(seq 150); do curl -fs "$url" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fs "$url" >/dev/null || fail "$url not ready"
done

# received STATUS: prints the matching notification (status, backend/server of its alerts, authorization).
received() {
  [[ -s $work/received.jsonl ]] || return 1
  python3 - "$work/received.jsonl" "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    note = json.loads(line)
    for alert in note["body"]["alerts"]:
        labels = alert["labels"]
        if labels.get("alertname") == "AutohealServerCheckDown" and alert["status"] == sys.argv[2]:
            print(json.dumps({"status": alert["status"], "backend": labels.get("backend"),
                              "server": labels.get("server"), "autoheal": labels.get("autoheal"),
                              "authorization": note["authorization"], "path": note["path"]}, sort_keys=True))
            sys.exit(0)
sys.exit(1)
PY
}
wait_for() {
  for _ in $(seq 120); do received "$1" && return 0; sleep 0.5; done
  return 1
}

sleep 3
! received firing >/dev/null || fail "an alert fired while every server was up"

kill "$(cat "$lab/pids/http-web2.pid")"
got=$(wait_for firing) || fail "no AutohealServerCheckDown notification after web2 went down"
expected='{"authorization": "Bearer live-token-not-secret", "autoheal": "true", "backend": "app", "path": "/hooks/alertmanager", "server": "web2", "status": "firing"}'
[[ $got == "$expected" ]] || fail "firing notification: $got"
echo "ok: web2 down -> Prometheus -> Alertmanager -> webhook: $got"

mkdir -p "$work/www"
(cd "$work/www" && exec python3 -m http.server --bind 127.0.0.1 "$web2_port") >"$work/web2.log" 2>&1 &
pids+=($!)
got=$(wait_for resolved) || fail "no resolved notification after web2 came back"
[[ $got == "${expected/firing/resolved}" ]] || fail "resolved notification: $got"
echo "ok: web2 back -> resolved notification: $got"
