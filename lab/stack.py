"""The whole autoheal loop on loopback, as a library for the demo, the end-to-end tests and the benchmark.

Every piece is the real program: three backends with a node_exporter look-alike each (``backend.py``),
HAProxy (the ``haproxy`` on PATH: Debian's 2.6, or a release of the version matrix) in master-worker mode
with an admin socket and a server-state file, one per load balancer (``StackOptions.nodes``), Prometheus with the
collection's alert rules, Alertmanager routing to ``autoheal-relay``, and the relay running
``ansible-runner`` with the collection's ``remediate`` playbook against localhost.

Ports come from one base (``port_base + offset``).  Each process runs in its own process group and is
stopped (TERM, then KILL) when the stack stops, when the interpreter exits, or on SIGINT/SIGTERM/SIGHUP.
Standard library only.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
BACKEND_SCRIPT = Path(__file__).resolve().parent / "backend.py"
HAPROXY_BACKEND = "be_app"
SERVERS = ("s1", "s2", "s3")
# The section keywords of haproxy-cfg's SECTION_KEYWORDS (rust/crates/haproxy-cfg/tests/section_keywords.rs
# checks that they are the same).
SECTION_KEYWORDS = (
    "global", "defaults", "frontend", "backend", "listen", "peers", "ring", "resolvers", "userlist", "cache",
    "program", "mailers", "http-errors", "log-forward", "log-profile", "fcgi-app", "crt-store", "traces", "acme",
    "namespace_list", "healthcheck",
)
T0 = time.time()


def now() -> float:
    """Wall-clock seconds: comparable with Prometheus's ``activeAt`` and the relay's audit times."""
    return time.time()


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> object:
    """Poll ``predicate`` until it returns something truthy; raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - readiness probes fail in many ways until ready
            last_error = error
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 5.0, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def http_post(
    url: str, body: bytes, content_type: str = "application/json", headers: dict | None = None, timeout: float = 5.0
) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def children_of(pid: int) -> list[int]:
    """Live child processes of ``pid``, read from /proc (a minimal Debian has no ``ps``)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the process ended while we looked
        # The command name in parentheses may hold spaces: fields start after the last ')'.
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return children


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------------------------------
# Processes


class Supervisor:
    """Starts processes in their own process groups and makes sure every one of them ends."""

    _live: list["Supervisor"] = []
    _hooks_installed = False

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        logdir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        Supervisor._live.append(self)
        Supervisor._install_hooks()

    @classmethod
    def _install_hooks(cls) -> None:
        if cls._hooks_installed:
            return
        cls._hooks_installed = True
        atexit.register(cls.stop_everything)
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous = signal.getsignal(signum)

            def handler(received: int, frame: object, previous: object = previous) -> None:
                cls.stop_everything()
                if callable(previous) and previous not in (signal.SIG_IGN, signal.SIG_DFL):
                    previous(received, frame)
                raise SystemExit(128 + received)

            signal.signal(signum, handler)

    @classmethod
    def stop_everything(cls) -> None:
        for supervisor in list(cls._live):
            supervisor.stop_all()

    def start(self, name: str, argv: list[str], env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
        if name in self.procs and self.procs[name].poll() is None:
            raise RuntimeError(f"{name} is already running (pid {self.procs[name].pid})")
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        log.write(f"\n=== {time.strftime('%H:%M:%S')} start: {' '.join(map(str, argv))}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            [str(a) for a in argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def running(self, name: str) -> bool:
        return name in self.procs and self.procs[name].poll() is None

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.logdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        proc = self.procs.get(name)
        if proc is None:
            return
        if proc.poll() is None:
            self._signal_group(proc, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)
        # Children left in the group (HAProxy workers, ansible-runner's ansible-playbook) go too.
        self._signal_group(proc, signal.SIGKILL)
        del self.procs[name]

    @staticmethod
    def _signal_group(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            try:
                self.stop(name, timeout=5)
            except Exception as error:  # noqa: BLE001 - keep stopping the rest
                print(f"stack: could not stop {name}: {error}", file=sys.stderr)
        if self in Supervisor._live:
            Supervisor._live.remove(self)


# --------------------------------------------------------------------------------------------------
# HAProxy


class AdminSocket:
    """HAProxy's runtime API over its UNIX socket (one command per connection)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def command(self, line: str, timeout: float = 5.0) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(self.path))
            conn.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers_state(self, backend: str = HAPROXY_BACKEND) -> dict[str, dict[str, str]]:
        """``show servers state`` as {server: {column: value}}."""
        text = self.command(f"show servers state {backend}")
        lines = [line for line in text.splitlines() if line.strip()]
        header = next((line for line in lines if line.startswith("# be_id")), None)
        if header is None:
            raise RuntimeError(f"unexpected 'show servers state' answer: {text!r}")
        columns = header[2:].split()
        rows = {}
        for line in lines:
            if line.startswith("#") or len(line.split()) < len(columns) - 4:
                continue
            values = line.split()
            row = dict(zip(columns, values))
            if "srv_name" in row:
                rows[row["srv_name"]] = row
        return rows

    def stats(self) -> dict[str, dict[str, str]]:
        """``show stat`` rows of the app backend's servers, by server name."""
        text = self.command("show stat")
        lines = text.splitlines()
        columns = lines[0].lstrip("# ").split(",")
        rows = {}
        for line in lines[1:]:
            row = dict(zip(columns, line.split(",")))
            if row.get("pxname") == HAPROXY_BACKEND and row.get("svname") in SERVERS:
                rows[row["svname"]] = row
        return rows


def all_servers_up(admin: AdminSocket) -> bool:
    rows = admin.servers_state()
    return set(rows) == set(SERVERS) and all(row["srv_op_state"] == "2" for row in rows.values())


def live_status(row: dict[str, str]) -> str:
    """Summarise one ``show servers state`` row: ``maint``, ``drain``, ``weight0`` or ``ready``."""
    admin = int(row["srv_admin_state"])
    if admin & 0x1 or admin & 0x2 or admin & 0x4 or admin & 0x20:
        return "maint"
    if admin & 0x8 or admin & 0x10:
        return "drain"
    if int(row["srv_uweight"]) == 0:
        return "weight0"
    return "ready"


_SERVER_LINE = re.compile(r"^\s*server\s+(\S+)\s+(.*)$")


def file_servers(config_text: str, backend: str = HAPROXY_BACKEND) -> dict[str, str]:
    """The active ``server`` lines of ``backend`` in a config, by name (comments excluded)."""
    servers, section = {}, None
    for raw in config_text.splitlines():
        stripped = raw.split("#", 1)[0].rstrip()
        words = stripped.split()
        if not words:
            continue
        if words[0] in SECTION_KEYWORDS:
            section = words[1] if len(words) > 1 and words[0] in ("backend", "listen") else None
            continue
        match = _SERVER_LINE.match(stripped)
        if section == backend and match:
            servers[match.group(1)] = stripped.strip()
    return servers


def file_status(server_line: str | None) -> str:
    """What a ``server`` line in the file means once HAProxy loads it: ``absent``, ``maint``,
    ``weight0`` or ``ready`` (the file has no drain keyword; ``weight 0`` is its drain)."""
    if server_line is None:
        return "absent"
    words = server_line.split()
    if "disabled" in words:
        return "maint"
    for i, word in enumerate(words[:-1]):
        if word == "weight" and words[i + 1] in ("0", "0%"):
            return "weight0"
    return "ready"


# --------------------------------------------------------------------------------------------------
# Load generator


@dataclass
class LoadSnapshot:
    served: Counter
    failed: int
    retried: int
    errors: Counter

    def minus(self, earlier: "LoadSnapshot") -> "LoadSnapshot":
        return LoadSnapshot(
            self.served - earlier.served,
            self.failed - earlier.failed,
            self.retried - earlier.retried,
            self.errors - earlier.errors,
        )

    @property
    def total(self) -> int:
        return sum(self.served.values())


class LoadGenerator:
    """Keep-alive HTTP clients hitting HAProxy, counting requests served per server and failures.

    Bounded: stops after ``max_requests`` or ``max_seconds``, whichever comes first.  Like every
    keep-alive client (RFC 9112, section 9.3.1), a GET that fails on a *reused* connection before any
    response byte arrives is retried once on a fresh connection; those retries are counted apart, and
    only a request that still fails counts as failed.
    """

    def __init__(
        self,
        port: int,
        threads: int = 4,
        per_thread_rps: float = 50.0,
        max_requests: int = 1_000_000,
        max_seconds: float = 1800.0,
    ) -> None:
        self.port = port
        self.threads = threads
        self.interval = 1.0 / per_thread_rps if per_thread_rps > 0 else 0.0
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self._lock = threading.Lock()
        self._served: Counter = Counter()
        self._errors: Counter = Counter()
        self._failed = 0
        self._retried = 0
        self._issued = 0
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self.failures: list[tuple[float, str]] = []

    def start(self) -> "LoadGenerator":
        self._deadline = time.monotonic() + self.max_seconds
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> LoadSnapshot:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=10)
        return self.snapshot()

    def snapshot(self) -> LoadSnapshot:
        with self._lock:
            return LoadSnapshot(Counter(self._served), self._failed, self._retried, Counter(self._errors))

    def _take_ticket(self) -> bool:
        with self._lock:
            if self._issued >= self.max_requests or time.monotonic() > self._deadline:
                return False
            self._issued += 1
            return True

    def _once(self, conn: http.client.HTTPConnection) -> str:
        conn.request("GET", "/", headers={"Host": "app.test"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            # Which server answered, when one did (HAProxy's own 503 names none).
            server = response.getheader("X-Served-By")
            raise RuntimeError(f"HTTP {response.status}" + (f" from {server}" if server else ""))
        return response.getheader("X-Served-By") or "unknown"

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        reused = False
        while not self._stop.is_set() and self._take_ticket():
            started = time.monotonic()
            if conn is None:
                conn, reused = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10), False
            try:
                try:
                    server = self._once(conn)
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    if not reused:
                        raise
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    with self._lock:
                        self._retried += 1
                    server = self._once(conn)
                reused = True
                with self._lock:
                    self._served[server] += 1
            except Exception as error:  # noqa: BLE001 - every failure is counted, whatever its kind
                kind = type(error).__name__ if not isinstance(error, RuntimeError) else str(error)
                with self._lock:
                    self._failed += 1
                    self._errors[kind] += 1
                    self.failures.append((now(), f"{kind}: {error}"))
                conn.close()
                conn = None
            pause = self.interval - (time.monotonic() - started)
            if pause > 0:
                self._stop.wait(pause)
        if conn is not None:
            conn.close()


# --------------------------------------------------------------------------------------------------
# The stack


@dataclass
class Ports:
    base: int

    @property
    def frontend(self) -> int:
        return self.base

    @property
    def stats(self) -> int:
        return self.base + 1

    @property
    def prometheus(self) -> int:
        return self.base + 2

    @property
    def alertmanager(self) -> int:
        return self.base + 3

    @property
    def relay(self) -> int:
        return self.base + 4

    @property
    def tap(self) -> int:
        return self.base + 5

    @property
    def eda(self) -> int:
        return self.base + 6

    @property
    def eda_frontend(self) -> int:
        return self.base + 7

    def alertmanager_n(self, index: int) -> int:
        """Alertmanager number ``index`` (0 is the main one)."""
        return self.alertmanager if index == 0 else self.base + 7 + index

    def web(self, index: int) -> int:
        return self.base + 10 + index

    def exporter(self, index: int) -> int:
        return self.base + 20 + index

    def node_frontend(self, index: int) -> int:
        """Frontend of load balancer ``index`` (0 is the main HAProxy's)."""
        return self.frontend if index == 0 else self.base + 30 + index

    def all(self) -> list[int]:
        return [self.base + offset for offset in (*range(0, 10), 10, 11, 12, 20, 21, 22, 31, 32)]


def find_port_base(start: int = 20000, stop: int = 60000, step: int = 50) -> int:
    """First base in [start, stop) whose ports are all free (for tests running in parallel)."""
    for base in range(start, stop, step):
        if all(port_is_free(port) for port in Ports(base).all()):
            return base
    raise RuntimeError(f"no free port range between {start} and {stop}")


@dataclass
class StackOptions:
    port_base: int
    workdir: Path
    min_active: int = 2
    load_threads: int = 4
    load_rps_per_thread: float = 50.0
    relay_extra: dict = field(default_factory=dict)
    # More Alertmanagers, not clustered, each notified by Prometheus: the relay then receives every
    # notification once per Alertmanager, as behind an HA pair that lost its gossip.
    extra_alertmanagers: int = 0
    # Labels the relay's rule matches (the benchmark narrows it to leave other servers to its peer).
    relay_rule_match: dict = field(default_factory=lambda: {"autoheal": "true"})
    # More webhook receivers for the same alerts: (name, url).
    extra_webhooks: list = field(default_factory=list)
    # Environment added to every Ansible run (the benchmark's timing callback).
    ansible_extra_env: dict = field(default_factory=dict)
    # Load balancers: each its own HAProxy (config, admin socket, frontend) before the same backends.
    nodes: int = 1
    # A `weight` on every server line (HAProxy's default is 1, too small to show a ramp's steps).
    server_weight: int | None = None
    # The alerting role's variables a test tunes (e.g. the error-rate alert's `for`).
    alerting_extra: dict = field(default_factory=dict)


class Stack:
    """Owns one loopback deployment of the loop.  Use as a context manager or call ``stop()``."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.ports = Ports(options.port_base)
        self.dir = options.workdir.resolve()
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self.sup = Supervisor(self.dir / "logs")
        self.admin = AdminSocket(self.dir / "haproxy" / "admin.sock")
        self.haproxy_cfg = self.dir / "haproxy" / "haproxy.cfg"

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.sup.stop_all()

    # ---- backends and exporters -----------------------------------------------------------------

    def start_backends(self) -> None:
        for index, name in enumerate(SERVERS):
            self.sup.start(
                f"backend-{name}",
                [
                    sys.executable,
                    BACKEND_SCRIPT,
                    "--name",
                    name,
                    "--web-port",
                    self.ports.web(index),
                    "--exporter-port",
                    self.ports.exporter(index),
                ],
            )
        for index, name in enumerate(SERVERS):
            wait_until(
                lambda i=index: http_get(f"http://127.0.0.1:{self.ports.web(i)}/")[0] == 200, 15, f"backend {name}"
            )
            wait_until(
                lambda i=index: http_get(f"http://127.0.0.1:{self.ports.exporter(i)}/metrics")[0] == 200,
                15,
                f"exporter {name}",
            )

    def set_fault(self, server: str, kind: str) -> None:
        """How ``server``'s web side misbehaves: ``none``, ``errors`` (500s, check passing) or ``down``."""
        index = SERVERS.index(server)
        status, body = http_post(
            f"http://127.0.0.1:{self.ports.exporter(index)}/fault", kind.encode(), content_type="text/plain"
        )
        if status != 200:
            raise RuntimeError(f"backend {server} refused fault {kind!r}: {status} {body}")

    def set_cpu(self, server: str, busy: float) -> None:
        index = SERVERS.index(server)
        status, body = http_post(
            f"http://127.0.0.1:{self.ports.exporter(index)}/cpu", str(busy).encode(), content_type="text/plain"
        )
        if status != 200:
            raise RuntimeError(f"exporter {server} refused busy={busy}: {status} {body}")

    # ---- HAProxy --------------------------------------------------------------------------------

    def render_haproxy_cfg(self, base: Path, frontend: int, stats: int | None) -> str:
        weight = "" if self.options.server_weight is None else f" weight {self.options.server_weight}"
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{self.ports.web(i)} check inter 1s fall 2 rise 2{weight}"
            for i, name in enumerate(SERVERS)
        )
        stats_section = (
            f"""
frontend fe_stats
    bind 127.0.0.1:{stats}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    stats enable
    stats uri /stats
    stats refresh 2s
"""
            if stats
            else ""
        )
        return f"""# autoheal end-to-end stack: every address is on loopback.
global
    stats socket {base}/admin.sock mode 600 level admin expose-fd listeners
    server-state-file {base}/server-state
    log stderr format short local0 notice

defaults
    mode http
    log global
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
    load-server-state-from-file global
    # A file the config depends on: removing it makes `haproxy -c` fail (the validation fault test).
    errorfile 503 {base}/errors/503.http

frontend fe_app
    bind 127.0.0.1:{frontend}
    default_backend {HAPROXY_BACKEND}
{stats_section}
backend {HAPROXY_BACKEND}
    balance roundrobin
    option httpchk GET /health
{servers}
"""

    def start_haproxy(
        self, name: str = "haproxy", frontend: int | None = None, stats: int | None = None
    ) -> AdminSocket:
        """Start an HAProxy (master-worker) in ``<workdir>/<name>``; the main one unless named otherwise."""
        base = self.dir / name
        base.mkdir(exist_ok=True)
        cfg = base / "haproxy.cfg"
        (base / "errors").mkdir(exist_ok=True)
        (base / "errors" / "503.http").write_text(
            "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nno server available\n"
        )
        if name == "haproxy":
            frontend, stats = self.ports.frontend, self.ports.stats
        if frontend is None:
            raise ValueError(f"{name} needs a frontend port")
        cfg.write_text(self.render_haproxy_cfg(base, frontend, stats))
        check = subprocess.run(["haproxy", "-c", "-q", "-f", cfg], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"generated haproxy.cfg is invalid: {check.stdout}{check.stderr}")
        self.sup.start(name, ["haproxy", "-W", "-db", "-f", cfg, "-S", base / "master.sock"])
        admin = AdminSocket(base / "admin.sock")
        wait_until(lambda: all_servers_up(admin), 20, f"{name} with every server UP")
        return admin

    def node_name(self, index: int) -> str:
        """The HAProxy of load balancer ``index``: its process name and its directory under the workdir."""
        return "haproxy" if index == 0 else f"haproxy-{index + 1}"

    def node_host(self, index: int) -> str:
        """Its inventory host name (one node: ``localhost``, as before the pair existed)."""
        return "localhost" if self.options.nodes == 1 else f"lb{index + 1}"

    def node_admin(self, index: int) -> AdminSocket:
        return AdminSocket(self.dir / self.node_name(index) / "admin.sock")

    def node_cfg(self, index: int) -> Path:
        return self.dir / self.node_name(index) / "haproxy.cfg"

    def start_nodes(self) -> None:
        for index in range(self.options.nodes):
            self.start_haproxy(self.node_name(index), frontend=self.ports.node_frontend(index))

    def stop_node(self, index: int) -> None:
        """Stop a load balancer's HAProxy (master and worker); its admin socket no longer answers."""
        self.sup.stop(self.node_name(index))

    def restart_node(self, index: int) -> None:
        """Start a stopped load balancer again on the file it has now (not a fresh one)."""
        name = self.node_name(index)
        base = self.dir / name
        self.sup.start(name, ["haproxy", "-W", "-db", "-f", base / "haproxy.cfg", "-S", base / "master.sock"])
        wait_until(lambda: all_servers_up(self.node_admin(index)), 20, f"{name} with every server UP")

    def node_live(self, index: int) -> dict[str, str]:
        return {name: live_status(row) for name, row in self.node_admin(index).servers_state().items()}

    def node_in_file(self, index: int) -> dict[str, str]:
        lines = file_servers(self.node_cfg(index).read_text())
        return {name: file_status(lines.get(name)) for name in SERVERS}

    def save_server_state(self) -> None:
        """What the reload procedure does first: dump live state so the new worker inherits it."""
        state = self.admin.command("show servers state")
        (self.dir / "haproxy" / "server-state").write_text(state)

    def reload_haproxy(self) -> None:
        """Graceful master-worker reload (USR2), after saving the server state."""
        self.save_server_state()
        before = self.worker_pids()
        os.kill(self.sup.pid("haproxy"), signal.SIGUSR2)
        wait_until(lambda: self.worker_pids() - before, 15, "a new HAProxy worker after USR2")
        wait_until(lambda: self.admin.servers_state(), 15, "the admin socket after reload")

    def worker_pids(self) -> set[int]:
        return set(children_of(self.sup.pid("haproxy")))

    def live(self) -> dict[str, str]:
        return {name: live_status(row) for name, row in self.admin.servers_state().items()}

    def in_file(self) -> dict[str, str]:
        lines = file_servers(self.haproxy_cfg.read_text())
        return {name: file_status(lines.get(name)) for name in SERVERS}

    # ---- load -----------------------------------------------------------------------------------

    def load(self, node: int = 0, **overrides: object) -> LoadGenerator:
        """Traffic through load balancer ``node``'s frontend."""
        settings = {"threads": self.options.load_threads, "per_thread_rps": self.options.load_rps_per_thread}
        settings.update(overrides)
        return LoadGenerator(self.ports.node_frontend(node), **settings).start()  # type: ignore[arg-type]

    # ---- the collection, as Ansible will load it -------------------------------------------------

    @property
    def collections_path(self) -> Path:
        return self.dir / "collections"

    def install_collection(self) -> Path:
        """Copy the working tree's collection (with the built module binaries) where Ansible finds it.

        A copy, not a symlink: Ansible, like ansible-test, wants ``ansible_collections/NS/NAME`` to
        be a real directory, and a copy keeps the test independent of edits made while it runs.
        """
        target = self.collections_path / "ansible_collections" / "autoheal" / "haproxy"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in ("galaxy.yml", "meta", "plugins", "roles", "playbooks"):
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
            elif source.exists():
                shutil.copy2(source, target / name)
        return target

    def ansible_env(self) -> dict[str, str]:
        return {
            "ANSIBLE_COLLECTIONS_PATH": str(self.collections_path),
            "ANSIBLE_LOCAL_TEMP": str(self.dir / "ansible-tmp"),
            "ANSIBLE_HOME": str(self.dir / "ansible-home"),
            "ANSIBLE_NOCOLOR": "1",
            # Discovery may pick a pyenv shim or another Python without Ansible's needs: be explicit.
            "ANSIBLE_PYTHON_INTERPRETER": str(VENV_BIN / "python"),
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            **self.options.ansible_extra_env,
        }

    def run_playbook(
        self, playbook: Path, extra_vars: dict, inventory: str = "localhost,", timeout: float = 120
    ) -> subprocess.CompletedProcess:
        vars_file = playbook.with_suffix(".vars.json")
        vars_file.write_text(json.dumps(extra_vars))
        return subprocess.run(
            [VENV_BIN / "ansible-playbook", "-i", inventory, "-c", "local", playbook, "-e", f"@{vars_file}"],
            env={**os.environ, **self.ansible_env()},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # ---- Prometheus and Alertmanager ------------------------------------------------------------

    @property
    def relay_token_file(self) -> Path:
        return self.dir / "secrets" / "relay.token"

    def alerting_vars(self) -> dict:
        """The collection's alerting role, tuned for a loopback demo: 1 s scrapes, no `for:` on CPU,
        Alertmanager flushing at once, and a second receiver (the tap) that timestamps arrivals."""
        group_by = ["alertname", "backend", "server"]
        webhooks = [("tap", f"http://127.0.0.1:{self.ports.tap}/tap"), *self.options.extra_webhooks]
        return {
            "autoheal_alerting_rules_path": str(self.dir / "prometheus" / "rules" / "autoheal.rules.yml"),
            "autoheal_alerting_node_targets_path": str(self.dir / "prometheus" / "file_sd" / "autoheal_nodes.yml"),
            "autoheal_alerting_alertmanager_config_path": str(self.dir / "alertmanager" / "alertmanager.yml"),
            "autoheal_alerting_owner": "root",
            "autoheal_alerting_group": "root",
            "autoheal_alerting_node_targets": [
                {"target": f"127.0.0.1:{self.ports.exporter(i)}", "backend": HAPROXY_BACKEND, "server": name}
                for i, name in enumerate(SERVERS)
            ],
            "autoheal_alerting_rate_window": "4s",
            "autoheal_alerting_cpu_for": "0s",
            "autoheal_alerting_cpu_busy_percent": 90,
            "autoheal_alerting_relay_url": f"http://127.0.0.1:{self.ports.relay}/hooks/alertmanager",
            "autoheal_alerting_relay_auth": "bearer",
            "autoheal_alerting_relay_token_file": str(self.relay_token_file),
            "autoheal_alerting_relay_secret_owner": "root",
            "autoheal_alerting_group_by": group_by,
            "autoheal_alerting_group_wait": "0s",
            "autoheal_alerting_group_interval": "1s",
            "autoheal_alerting_extra_receivers": [
                {"name": name, "webhook_configs": [{"url": url, "send_resolved": True}]} for name, url in webhooks
            ],
            "autoheal_alerting_extra_routes": [
                {
                    "receiver": name,
                    "matchers": ['autoheal="true"'],
                    "group_by": group_by,
                    "group_wait": "0s",
                    "group_interval": "1s",
                    "continue": True,
                }
                for name, _ in webhooks
            ],
            **self.options.alerting_extra,
        }

    def render_alerting(self) -> None:
        """Render the rules, the node targets and Alertmanager's config with the collection's role."""
        for sub in ("prometheus/rules", "prometheus/file_sd", "alertmanager", "secrets", "playbooks"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.relay_token_file.write_text("e2e-" + os.urandom(16).hex() + "\n")
        self.relay_token_file.chmod(0o600)
        role = self.collections_path / "ansible_collections" / "autoheal" / "haproxy" / "roles" / "alerting"
        if (role / "tasks" / "main.yml").exists():
            tasks = "    - ansible.builtin.include_role:\n        name: autoheal.haproxy.alerting\n"
        else:
            tasks = "".join(
                f"    - ansible.builtin.template:\n        src: {role}/templates/{template}\n"
                f'        dest: "{{{{ {var} }}}}"\n        mode: "0644"\n'
                for template, var in (
                    ("autoheal.rules.yml.j2", "autoheal_alerting_rules_path"),
                    ("autoheal_nodes.yml.j2", "autoheal_alerting_node_targets_path"),
                    ("alertmanager.yml.j2", "autoheal_alerting_alertmanager_config_path"),
                )
            )
        playbook = self.dir / "playbooks" / "render-alerting.yml"
        playbook.write_text(f"- hosts: localhost\n  gather_facts: false\n  tasks:\n{tasks}")
        result = self.run_playbook(playbook, self.alerting_vars())
        if result.returncode != 0:
            raise RuntimeError(f"rendering the alerting role failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")

    def start_prometheus(self) -> None:
        base = self.dir / "prometheus"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [str(base / "rules" / "*.yml")],
            "alerting": {
                "alertmanagers": [
                    {
                        "static_configs": [
                            {
                                "targets": [
                                    f"127.0.0.1:{self.ports.alertmanager_n(i)}"
                                    for i in range(1 + self.options.extra_alertmanagers)
                                ]
                            }
                        ]
                    }
                ]
            },
            "scrape_configs": [
                {
                    "job_name": "node",
                    "file_sd_configs": [{"files": [str(base / "file_sd" / "*.yml")], "refresh_interval": "5s"}],
                },
                {"job_name": "haproxy", "static_configs": [{"targets": [f"127.0.0.1:{self.ports.stats}"]}]},
            ],
        }
        # JSON is YAML: no YAML library needed.
        (base / "prometheus.yml").write_text(json.dumps(config, indent=2))
        check = subprocess.run(["promtool", "check", "config", base / "prometheus.yml"], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"promtool rejects the generated config: {check.stdout}{check.stderr}")
        url = f"http://127.0.0.1:{self.ports.prometheus}"
        self.sup.start(
            "prometheus",
            [
                "prometheus",
                f"--config.file={base / 'prometheus.yml'}",
                f"--storage.tsdb.path={base / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.ports.prometheus}",
                f"--web.external-url={url}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
        )
        wait_until(lambda: http_get(f"{url}/-/ready")[0] == 200, 30, "Prometheus ready")
        wait_until(lambda: self._node_targets_up() == len(SERVERS), 30, "Prometheus scraping every exporter")

    def _node_targets_up(self) -> int:
        _, body = http_get(f"http://127.0.0.1:{self.ports.prometheus}/api/v1/query?query=up%7Bjob%3D%22node%22%7D")
        return sum(1 for item in json.loads(body)["data"]["result"] if item["value"][1] == "1")

    def start_alertmanager(self) -> None:
        base = self.dir / "alertmanager"
        check = subprocess.run(["amtool", "check-config", base / "alertmanager.yml"], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"amtool rejects the rendered config: {check.stdout}{check.stderr}")
        for index in range(1 + self.options.extra_alertmanagers):
            port = self.ports.alertmanager_n(index)
            url = f"http://127.0.0.1:{port}"
            name = "alertmanager" if index == 0 else f"alertmanager-{index}"
            self.sup.start(
                name,
                [
                    "prometheus-alertmanager",
                    f"--config.file={base / 'alertmanager.yml'}",
                    f"--storage.path={base / f'data-{index}'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",
                    f"--web.external-url={url}",
                    "--log.level=warn",
                ],
            )
            wait_until(lambda url=url: http_get(f"{url}/-/ready")[0] == 200, 30, f"{name} ready")

    def prometheus_alerts(self) -> list[dict]:
        _, body = http_get(f"http://127.0.0.1:{self.ports.prometheus}/api/v1/alerts")
        return json.loads(body)["data"]["alerts"]

    def firing(self, alertname: str = "AutohealNodeCpuBusy") -> dict[str, dict]:
        """Prometheus's firing alerts of one kind, by server label."""
        return {
            a["labels"].get("server", "?"): a
            for a in self.prometheus_alerts()
            if a["labels"].get("alertname") == alertname and a["state"] == "firing"
        }

    def start_tap(self) -> "Tap":
        self.tap = Tap(self.ports.tap).start()
        return self.tap

    # ---- autoheal-relay and the collection's remediate playbook ---------------------------------

    @property
    def relay_dir(self) -> Path:
        return self.dir / "relay"

    @property
    def relay_config(self) -> Path:
        return self.relay_dir / "relay.toml"

    def write_inventory(self) -> Path:
        """One host per load balancer, all this machine, reached without SSH; each host's variables point
        the remediate role at its own haproxy.cfg and admin socket."""
        hosts = {
            self.node_host(index): {
                "ansible_connection": "local",
                "ansible_python_interpreter": str(VENV_BIN / "python"),
                **self.remediate_vars(index),
            }
            for index in range(self.options.nodes)
        }
        inventory = {"all": {"children": {"haproxy": {"hosts": hosts}}}}
        path = self.dir / "inventory.yml"
        path.write_text(json.dumps(inventory, indent=2))
        return path

    def remediate_vars(self, index: int = 0) -> dict:
        base = self.dir / self.node_name(index)
        return {
            "autoheal_remediate_config": str(base / "haproxy.cfg"),
            "autoheal_remediate_socket": str(base / "admin.sock"),
            "autoheal_remediate_min_active": self.options.min_active,
            "autoheal_remediate_backup": True,
            # Only `absent` needs a reload; make it the master CLI's, with the state saved first.
            "autoheal_remediate_reload_method": "master_cli",
            "autoheal_remediate_master_socket": str(base / "master.sock"),
            "autoheal_remediate_state_file": str(base / "server-state"),
        }

    def write_relay_config(self) -> Path:
        self.relay_dir.mkdir(exist_ok=True)
        inventory = self.write_inventory()
        env = self.ansible_env()
        max_out = self.options.relay_extra.get("max_out", len(SERVERS) - self.options.min_active)
        retry = self.options.relay_extra.get("retry")
        retry_section = "" if retry is None else f"[retry]\nattempts = {retry[0]}\ndelay_ms = {retry[1]}\n"
        q = json.dumps  # a JSON string is a valid TOML basic string
        # The relay's own coalescing window unless a test asks for another.
        window = self.options.relay_extra.get("window_ms")
        coalesce = "" if window is None else f"[coalesce]\nwindow_ms = {window}\n"
        # The backend's servers, when a test asks for them (placement by real backend, panic).
        servers = ""
        if self.options.relay_extra.get("servers"):
            servers = f"servers = {{ {HAPROXY_BACKEND} = {json.dumps(list(SERVERS))} }}\n"
        # Restores at once and in one step, and never quarantines a server the tests drain again and
        # again (the relay's hold-down, ramp and quarantine are tested in the relay's own tests),
        # unless a test passes its own [lifecycle] keys.
        lifecycle = self.options.relay_extra.get(
            "lifecycle",
            "hold_down_base_secs = 0\nhold_down_max_secs = 0\nramp_percent = [100]\nquarantine_after = 0\n",
        )
        text = f"""# autoheal-relay for the end-to-end stack (loopback only).
[server]
listen = {q(f"127.0.0.1:{self.ports.relay}")}

[auth]
bearer_token_file = {q(str(self.relay_token_file))}

[journal]
path = {q(str(self.relay_dir / "journal.db"))}

[[rules]]
name = "sick-node-drain"
match = {{ {", ".join(f"{k} = {q(v)}" for k, v in self.options.relay_rule_match.items())} }}
action = "drain"
restore = true
fleet = "e2e"

{coalesce}
{retry_section}
[lifecycle]
{lifecycle}
[panic]
{self.options.relay_extra.get("panic", "")}
[guard]
max_out_per_backend = {max_out}
breaker_max_actions = {self.options.relay_extra.get("breaker_max_actions", 10000)}
{servers}breaker_window_secs = 60

[executor]
kind = "ansible-runner"
binary = {q(str(VENV_BIN / "ansible-runner"))}
playbook = "autoheal.haproxy.remediate"
inventory = {q(str(inventory))}
work_dir = {q(str(self.relay_dir / "runs"))}
timeout_secs = 120
standby = {json.dumps(self.options.relay_extra.get("standby", True))}

[executor.env]
{chr(10).join(f"{key} = {q(value)}" for key, value in sorted(env.items()))}

[log]
level = "info"
"""
        self.relay_config.write_text(text)
        check = subprocess.run([relay_binary(), "check-config", self.relay_config], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"autoheal-relay rejects the generated config: {check.stdout}{check.stderr}")
        return self.relay_config

    def start_relay(self) -> None:
        if not self.relay_config.exists():
            self.write_relay_config()
        self.sup.start("relay", [relay_binary(), "serve", "--config", self.relay_config], cwd=self.relay_dir)
        wait_until(
            lambda: http_get(f"http://127.0.0.1:{self.ports.relay}/readyz")[0] == 200, 30, "autoheal-relay ready"
        )

    def restart_relay(self) -> None:
        """Stop the relay (SIGTERM, as systemd does) and start it again on the same journal."""
        self.sup.stop("relay")
        self.start_relay()

    def relay_release(self, target: str) -> str:
        """``autoheal-relay release BACKEND/SERVER``, as an operator runs it; its message."""
        result = subprocess.run(
            [relay_binary(), "release", "--config", self.relay_config, target],
            capture_output=True, text=True, timeout=30,
        )
        if result.returncode != 0:
            raise RuntimeError(f"autoheal-relay release failed: {result.stdout}{result.stderr}")
        return result.stdout.strip()

    def relay_life_events(self, target: str, since: float = 0.0) -> list[dict]:
        """The life-cycle audit of ``target`` (``BACKEND/SERVER``) since ``since``, oldest first, read from
        the relay's journal: ``{"at": seconds, "event": ..., "phase": ..., "detail": ...}``."""
        with contextlib.closing(sqlite3.connect(self.relay_dir / "journal.db", timeout=5)) as db:
            rows = db.execute(
                "SELECT at_ms, event, phase, detail FROM lifecycle_events WHERE key = ? AND at_ms >= ? ORDER BY id",
                (target, int(since * 1000) - 500),
            ).fetchall()
        return [{"at": at / 1000.0, "event": event, "phase": phase, "detail": detail}
                for at, event, phase, detail in rows]

    def relay_token(self) -> str:
        return self.relay_token_file.read_text().strip()

    def post_alerts(self, payload: dict) -> tuple[int, str]:
        """Post an Alertmanager webhook to the relay as Alertmanager does."""
        return http_post(
            f"http://127.0.0.1:{self.ports.relay}/hooks/alertmanager",
            json.dumps(payload).encode(),
            headers={"Authorization": f"Bearer {self.relay_token()}"},
        )

    def relay_metrics(self) -> dict[str, float]:
        """``/metrics`` as {series: value}, e.g. ``{'autoheal_runs_total{result="ok"}': 2.0}``."""
        _, body = http_get(
            f"http://127.0.0.1:{self.ports.relay}/metrics", headers={"Authorization": f"Bearer {self.relay_token()}"}
        )
        series = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    series[name] = float(value)
                except ValueError:
                    continue
        return series

    def relay_history(self, limit: int = 1000) -> list[dict]:
        """``autoheal-relay history --json``: the audit rows, oldest first."""
        result = subprocess.run(
            [relay_binary(), "history", "--config", self.relay_config, "--json", "--limit", str(limit)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise RuntimeError(f"autoheal-relay history failed: {result.stderr}")
        rows = json.loads(result.stdout)
        if isinstance(rows, dict):
            rows = next(value for value in rows.values() if isinstance(value, list))
        return sorted(rows, key=lambda row: row.get("id", 0))

    def relay_actions(self, since: float = 0.0) -> list["Action"]:
        return [action for action in map(Action.from_row, self.relay_history()) if action.time >= since - 0.5]

    def relay_decision(self, server: str, state: str, since: float) -> str | None:
        """A short description of the relay's first decision to put ``server`` in ``state`` after ``since``."""
        for action in self.relay_actions(since):
            if action.server == server and action.state == state:
                return f"rule {action.rule}, decision #{action.id}, {action.outcome}"
        return None

    def relay_run(self, server: str, state: str, since: float) -> int | None:
        """The id of the run that carries out the relay's decision for ``server``/``state``, once started."""
        for row in self.relay_history():
            action = Action.from_row(row)
            if action.time >= since - 0.5 and action.server == server and action.state == state and row.get("run_id"):
                return row["run_id"]
        return None

    def relay_run_detail(self, run_id: int) -> str:
        """What the relay's journal says about a run (the executor's detail), read from its database."""
        with contextlib.closing(sqlite3.connect(self.relay_dir / "journal.db")) as db:
            row = db.execute("SELECT detail FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row[0] if row and row[0] else ""

    def relay_saw_all(self, since: float) -> bool:
        decided = {a.server for a in self.relay_actions(since) if a.state != "enabled" and a.outcome != "pending"}
        return decided >= set(SERVERS)

    def relay_refusals(self, since: float) -> list["Action"]:
        return [a for a in self.relay_actions(since) if a.outcome == "refused"]

    def history_lines(self, limit: int = 40) -> list[str]:
        lines = []
        for row in self.relay_history(limit):
            a = Action.from_row(row)
            run = (
                f"run {row.get('run_id')} {row.get('run_status')} rc={row.get('run_rc')} "
                f"{row.get('run_duration_ms')} ms"
                if row.get("run_id")
                else "no run"
            )
            when = time.strftime("%H:%M:%S", time.localtime(a.time)) + f".{int(a.time * 1000) % 1000:03d}"
            detail = f" ({a.detail})" if a.detail else ""
            lines.append(
                f"{when}  #{a.id:<3} {row.get('alert', '')} {row.get('alert_status', '')}: "
                f"{a.state or '-'} {row.get('target') or '-'} -> {a.outcome}{detail}; {run}"
            )
        return lines

    def relay_playbooks(self) -> list[int]:
        """PIDs of the ansible-playbook processes below the relay: a run is in progress. (The relay's
        resident ansible-runner worker is a child even when idle, so its mere presence says nothing.)"""
        if not self.sup.running("relay"):
            return []
        found, todo = [], children_of(self.sup.pid("relay"))
        while todo:
            pid = todo.pop()
            todo.extend(children_of(pid))
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # ended while we looked
            if any(arg.endswith(b"ansible-playbook") for arg in argv):
                found.append(pid)
        return found

    def start_all(self) -> None:
        """Everything, in dependency order: backends before HAProxy (else its first checks fail),
        Alertmanager before Prometheus, the relay last but before any alert can fire."""
        self.start_backends()
        self.start_nodes()
        self.install_collection()
        self.render_alerting()
        self.start_tap()
        self.write_relay_config()
        self.start_relay()
        self.start_alertmanager()
        self.start_prometheus()


@dataclass
class Action:
    """One row of the relay's audit history, reduced to what the tests and the demo look at."""

    id: int
    time: float
    server: str | None
    backend: str | None
    state: str | None
    outcome: str
    rule: str | None
    detail: str | None

    @classmethod
    def from_row(cls, row: dict) -> "Action":
        backend, _, server = (row.get("target") or "").partition("/")
        outcome = {"done": "applied"}.get(row.get("outcome", ""), row.get("outcome", ""))
        return cls(
            id=row.get("id", 0),
            time=row.get("decided_ms", 0) / 1000.0,
            server=server or None,
            backend=backend or None,
            state=row.get("state"),
            outcome=outcome,
            rule=row.get("rule"),
            detail=row.get("detail"),
        )


def metric_sum(series: dict[str, float], *parts: str) -> float:
    """Sum of every series whose name and labels contain all ``parts`` (case-insensitive)."""
    return sum(value for name, value in series.items() if all(p.lower() in name.lower() for p in parts))


def relay_binary() -> Path:
    """The built relay: $AUTOHEAL_RELAY_BIN, else what scripts/build.sh or a plain cargo build made."""
    if os.environ.get("AUTOHEAL_RELAY_BIN"):
        return Path(os.environ["AUTOHEAL_RELAY_BIN"])
    for candidate in (
        REPO / "rust/target/x86_64-unknown-linux-gnu/release/autoheal-relay",
        REPO / "rust/target/release/autoheal-relay",
    ):
        if candidate.exists():
            return candidate
    raise FileNotFoundError("autoheal-relay is not built: run scripts/build.sh (or set AUTOHEAL_RELAY_BIN)")


class Tap:
    """A webhook receiver beside the relay: Alertmanager notifies it at the same moment, so it tells
    when a notification left Alertmanager, with no access to the relay's internals."""

    def __init__(self, port: int) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        tap = self
        self.received: list[tuple[float, dict]] = []
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrived = now()
                with tap._lock:
                    tap.received.append((arrived, json.loads(body or b"{}")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True

    def start(self) -> "Tap":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        atexit.register(self.server.shutdown)
        return self

    def all(self, server: str, status: str, after: float = 0.0) -> list[tuple[float, dict]]:
        """Every notification about ``server`` with ``status`` received after ``after``, with its body."""
        with self._lock:
            return [
                (arrived, payload)
                for arrived, payload in self.received
                if arrived >= after
                and any(
                    alert.get("labels", {}).get("server") == server and alert.get("status") == status
                    for alert in payload.get("alerts", [])
                )
            ]

    def first(self, server: str, status: str, after: float = 0.0) -> float | None:
        """When the first notification about ``server`` with ``status`` arrived after ``after``."""
        with self._lock:
            for arrived, payload in self.received:
                if arrived < after:
                    continue
                for alert in payload.get("alerts", []):
                    if alert.get("labels", {}).get("server") == server and alert.get("status") == status:
                        return arrived
        return None
