"""A throw-away HAProxy 2.6 lab on loopback for the integration targets.

    python3 haproxy_lab.py start  DIR TEMPLATE   start HTTP servers + HAProxy (master-worker); print JSON facts
    python3 haproxy_lab.py state  DIR            print the live state (show servers state + show stat) as JSON
    python3 haproxy_lab.py reload DIR            reload HAProxy (USR2 to the master), wait for the new worker
    python3 haproxy_lab.py admin  DIR COMMAND    send one runtime API command (an operator's hand); print the answer
    python3 haproxy_lab.py wait   DIR BE/SRV OP  wait (15 s at most) until the server's srv_op_state is OP
    python3 haproxy_lab.py stop   DIR            stop every process this lab started (by the pids it recorded)
    python3 haproxy_lab.py watch  DIR PID        (started by `start`) stop the lab once process PID is gone
    python3 haproxy_lab.py config FILE           print the server lines of FILE per backend/listen section as JSON
    python3 haproxy_lab.py snapshot DIR [FILE..] all at once: the config's sha256, `haproxy -c` verdict, server lines,
                                         live state, and the sha256 of each FILE (null if missing)

TEMPLATE is an haproxy.cfg with placeholders: @DIR@ (the lab directory), @FRONTEND_PORT@ (the port of the
`frontend` URL in the facts), @LISTEN_PORT_<name>@ (more free ports) and @PORT_<name>@: each distinct <name>
gets its own `python3 -m http.server` on 127.0.0.1, started before HAProxy.
Everything listens on 127.0.0.1 only, on ports the kernel hands out.

The processes run in their own sessions, so a killed test run would leave them behind; when the environment
names an owner (AUTOHEAL_LAB_OWNER_PID, set by tests/run-integration.sh), a watchdog stops the lab once the
owner is gone.
"""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

DEADLINE_S = 15


def fail(msg):
    print(json.dumps({"failed": True, "msg": msg}))
    sys.exit(1)


def wait_until(what, probe, timeout=DEADLINE_S):
    end = time.monotonic() + timeout
    while True:
        try:
            value = probe()
            if value:
                return value
        except OSError:
            pass
        if time.monotonic() > end:
            fail("timed out waiting for %s" % what)
        time.sleep(0.05)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(lab, name, argv):
    log = open(os.path.join(lab, name + ".log"), "ab")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=lab)
    with open(os.path.join(lab, "pids", name + ".pid"), "w") as handle:
        handle.write("%d\n" % proc.pid)
    return proc


def start_http_server(lab, name):
    root = os.path.join(lab, "www", name)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "index.html"), "w") as handle:
        handle.write("%s\n" % name)
    argv = [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", root]
    proc = spawn(lab, "http-" + name, argv)
    log_path = os.path.join(lab, "http-" + name + ".log")

    def port():
        if proc.poll() is not None:
            fail("http server %s exited: see %s" % (name, log_path))
        with open(log_path) as handle:
            found = re.search(r"port (\d+)", handle.read())
        return int(found.group(1)) if found else None

    return wait_until("http server %s" % name, port)


def admin(lab, command):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(os.path.join(lab, "admin.sock"))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode()


def worker_pid(lab):
    found = re.search(r"^Pid: (\d+)$", admin(lab, "show info"), re.M)
    return int(found.group(1)) if found else None


def live_state(lab):
    """Per backend and server: addresses, operational/admin state, weights, sessions served."""
    lines = [line for line in admin(lab, "show servers state").splitlines() if line.strip()]
    header = lines[1].lstrip("# ").split()
    backends = {}
    for line in lines[2:]:
        row = dict(zip(header, line.split()))
        admin_state = int(row["srv_admin_state"])
        backends.setdefault(row["be_name"], {})[row["srv_name"]] = {
            "address": "%s:%s" % (row["srv_addr"], row["srv_port"]),
            "op_state": int(row["srv_op_state"]),
            "admin_state": admin_state,
            # SRV_ADMF_MAINT (0x63): forced 0x01, inherited 0x02, resolution 0x20, hostname 0x40. The config's
            # `disabled` (0x04, CMAINT) comes with 0x01 at startup and stays set after `state ready` as a record.
            "maint": bool(admin_state & 0x63),
            # 0x08 forced drain, 0x10 inherited drain.
            "drain": bool(admin_state & 0x18),
            "weight": int(row["srv_uweight"]),
            "initial_weight": int(row["srv_iweight"]),
        }
    stat = admin(lab, "show stat").splitlines()
    columns = stat[0].lstrip("# ").split(",")
    for line in stat[1:]:
        row = dict(zip(columns, line.split(",")))
        server = backends.get(row.get("pxname"), {}).get(row.get("svname"))
        if server is not None:
            server["sessions"] = int(row["stot"] or 0)
            server["status"] = row["status"]
    # One word per server for comparing whole states: "maint", "drain" or "ready", then the weight.
    summary = {}
    for backend, servers in backends.items():
        for name, srv in servers.items():
            mode = "maint" if srv["maint"] else "drain" if srv["drain"] else "ready"
            summary["%s/%s" % (backend, name)] = "%s w%d" % (mode, srv["weight"])
    return {"worker_pid": worker_pid(lab), "backends": backends, "summary": summary}


def start(lab, template_path):
    lab = os.path.abspath(lab)
    os.makedirs(os.path.join(lab, "pids"), exist_ok=True)
    with open(template_path) as handle:
        template = handle.read()
    ports = {name: start_http_server(lab, name) for name in sorted(set(re.findall(r"@PORT_(\w+)@", template)))}
    frontend = free_port()
    config = template.replace("@DIR@", lab).replace("@FRONTEND_PORT@", str(frontend))
    config = re.sub(r"@LISTEN_PORT_\w+@", lambda m: str(free_port()), config)
    config = re.sub(r"@PORT_(\w+)@", lambda m: str(ports[m.group(1)]), config)
    cfg = os.path.join(lab, "haproxy.cfg")
    with open(cfg, "w") as handle:
        handle.write(config)
    master = spawn(lab, "haproxy", ["haproxy", "-W", "-db", "-f", cfg, "-S", os.path.join(lab, "master.sock")])

    def ready():
        if master.poll() is not None:
            fail("haproxy exited with %s: see %s" % (master.returncode, os.path.join(lab, "haproxy.log")))
        state = live_state(lab)
        checked = [srv for servers in state["backends"].values() for srv in servers.values()]
        return state if checked and all(srv["op_state"] == 2 for srv in checked) else None

    owner = os.environ.get("AUTOHEAL_LAB_OWNER_PID")
    if owner:
        spawn(lab, "watchdog", [sys.executable, os.path.abspath(__file__), "watch", lab, owner])
    wait_until("haproxy to serve with every server up", ready)
    return {
        "script": os.path.abspath(__file__),
        "dir": lab,
        "config": cfg,
        "admin_socket": os.path.join(lab, "admin.sock"),
        "master_socket": os.path.join(lab, "master.sock"),
        "master_pid": master.pid,
        "frontend": "http://127.0.0.1:%d/" % frontend,
        "ports": ports,
    }


def reload(lab):
    with open(os.path.join(lab, "pids", "haproxy.pid")) as handle:
        master = int(handle.read())
    before = worker_pid(lab)
    os.kill(master, signal.SIGUSR2)

    def new_worker():
        pid = worker_pid(lab)
        return pid if pid and pid != before else None

    after = wait_until("a new haproxy worker after reload", new_worker)
    return {"old_worker_pid": before, "worker_pid": after}


def stop(lab):
    pid_dir = os.path.join(lab, "pids")
    stopped = []
    for name in sorted(os.listdir(pid_dir)) if os.path.isdir(pid_dir) else []:
        with open(os.path.join(pid_dir, name)) as handle:
            pid = int(handle.read())
        try:
            os.killpg(pid, signal.SIGTERM)
            stopped.append(pid)
        except ProcessLookupError:
            pass
        os.unlink(os.path.join(pid_dir, name))
    for pid in stopped:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.killpg(pid, signal.SIGKILL)
    return {"stopped": stopped}


def read_config(path):
    """A deliberately naive reading of haproxy.cfg, independent of the module's engine: per backend or
    listen section, its server lines (tokens, weight, disabled) and its comment lines."""
    sections = {}
    current = None
    # The section keywords of haproxy-cfg's SECTION_KEYWORDS (rust/crates/haproxy-cfg/tests/section_keywords.rs
    # checks that they are the same).
    headers = ("global", "defaults", "frontend", "backend", "listen", "peers", "ring", "resolvers", "userlist",
               "cache", "program", "mailers", "http-errors", "log-forward", "log-profile", "fcgi-app", "crt-store",
               "traces", "acme", "namespace_list", "healthcheck")
    with open(path) as handle:
        for number, line in enumerate(handle.read().splitlines(), start=1):
            tokens = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].split()
            if line.lstrip().startswith("#"):
                tokens = ["#"]
            if not tokens:
                continue
            if tokens[0] in headers:
                current = None
                if tokens[0] in ("backend", "listen") and len(tokens) > 1:
                    current = sections.setdefault(tokens[1], {"servers": {}, "comments": []})
            elif current is not None and tokens[0].startswith("#"):
                current["comments"].append(line.strip())
            elif current is not None and tokens[0] == "server" and len(tokens) > 2:
                weight = tokens[tokens.index("weight") + 1] if "weight" in tokens[:-1] else None
                current["servers"][tokens[1]] = {
                    "line": line.strip(),
                    "number": number,
                    "address": tokens[2],
                    "weight": int(weight) if weight is not None else None,
                    "disabled": "disabled" in tokens,
                }
    return {"backends": sections}


def sha256(path):
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except FileNotFoundError:
        return None


def snapshot(lab, files):
    config = os.path.join(lab, "haproxy.cfg")
    check = subprocess.run(["haproxy", "-c", "-q", "-f", config], capture_output=True, text=True, check=False)
    return {
        "checksum": sha256(config),
        "valid": check.returncode == 0,
        "check_output": check.stdout + check.stderr,
        "cfg": read_config(config)["backends"],
        "live": live_state(lab),
        "files": {path: sha256(path) for path in files},
    }


def watch(lab, owner):
    """Stops the lab when the owner process exits or the lab is stopped some other way."""
    own_pid_file = os.path.join(lab, "pids", "watchdog.pid")
    while os.path.exists(own_pid_file):
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os.unlink(own_pid_file)
            stop(lab)
            break
        time.sleep(1)
    return {}


def wait_op_state(lab, server, op_state):
    """Health checks move a server's operational state: wait for the one asked for."""
    backend, name = server.split("/", 1)

    def reached():
        return live_state(lab)["backends"].get(backend, {}).get(name, {}).get("op_state") == op_state or None

    wait_until("%s op_state %d" % (server, op_state), reached)
    return {"server": server, "op_state": op_state}


def main(argv):
    if len(argv) >= 2 and argv[0] == "start" and len(argv) == 3:
        result = start(argv[1], argv[2])
    elif len(argv) == 2 and argv[0] == "state":
        result = live_state(argv[1])
    elif len(argv) == 3 and argv[0] == "admin":
        result = {"answer": admin(argv[1], argv[2]).strip()}
    elif len(argv) == 4 and argv[0] == "wait":
        result = wait_op_state(argv[1], argv[2], int(argv[3]))
    elif len(argv) == 2 and argv[0] == "reload":
        result = reload(argv[1])
    elif len(argv) >= 2 and argv[0] == "snapshot":
        result = snapshot(argv[1], argv[2:])
    elif len(argv) == 2 and argv[0] == "config":
        result = read_config(argv[1])
    elif len(argv) == 3 and argv[0] == "watch":
        result = watch(argv[1], int(argv[2]))
    elif len(argv) == 2 and argv[0] == "stop":
        result = stop(argv[1])
    else:
        fail(__doc__)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
