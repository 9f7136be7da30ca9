# shellcheck shell=bash
# Shell helpers for targets that drive the setup_haproxy lab. Source it after setting lab_py (haproxy_lab.py)
# and lab (the lab directory).

# lab_inventory FILE: an inventory with one local host, lb1, in group haproxy, whose autoheal_remediate_*
# settings point at the lab (file, admin socket, master pid/socket, server-state file).
lab_inventory() {
  cat >"$1" <<INI
[haproxy]
lb1 ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"
[haproxy:vars]
autoheal_remediate_config=${lab:?set lab before sourcing lab.sh}/haproxy.cfg
autoheal_remediate_socket=$lab/admin.sock
autoheal_remediate_reload_method=signal
autoheal_remediate_pidfile=$lab/pids/haproxy.pid
autoheal_remediate_master_socket=$lab/master.sock
autoheal_remediate_state_file=$lab/server-state
INI
}

# live BACKEND/SERVER: the lab's live state of that server ("ready w10", "drain w10", ...) or "missing".
live() {
  python3 "${lab_py:?set lab_py before sourcing lab.sh}" state "$lab" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["summary"].get(sys.argv[1], "missing"))' "$1"
}
