"""Benchmark: how fast a sick server leaves the pool, and whether traffic notices.

One run, two paths, same Prometheus and Alertmanager:
  autoheal  Alertmanager -> autoheal-relay -> ansible-runner -> remediate playbook -> module (s2, HAProxy A)
  peer      Alertmanager -> ansible-rulebook eda.builtin.webhook -> playbook with lineinfile + reload
            (s3, HAProxy B)
Each path owns one server, and the two are measured one after the other so that they do not compete for
the two CPUs.  Stages come from Prometheus's alert ``activeAt``, a tap receiver beside the webhooks, the
relay's audit history, an Ansible callback that timestamps tasks (the same on both paths) and polling of
each HAProxy's runtime socket every 5 ms.

Then N drain/restore cycles under load on each path (webhook posted directly, same body shape as
Alertmanager's), counting failed requests.

Usage: see bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

from lab import stack
from lab.stack import AdminSocket, Stack, StackOptions, live_status, now, wait_until  # noqa: E402

EDA_VENV = stack.REPO / "build" / "bench-venv"
RELAY_SERVER, EDA_SERVER = "s2", "s3"
DRAINED = ("drain", "weight0")
APPLY_ACTIONS = {"autoheal": ("autoheal.haproxy.server",), "eda": ("ansible.builtin.lineinfile",)}


def parse_rfc3339(text: str) -> float:
    """Prometheus's ``activeAt`` (nanoseconds, Z) as a Unix time."""
    head, _, frac = text.rstrip("Z").partition(".")
    base = dt.datetime.fromisoformat(head).replace(tzinfo=dt.timezone.utc).timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def read_events(path: Path, after: float) -> list[dict]:
    if not path.exists():
        return []
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["time"] >= after]


def first(events: list[dict], event: str, actions: tuple[str, ...] = ()) -> float | None:
    for e in events:
        if e["event"] == event and (not actions or e.get("action") in actions):
            return e["time"]
    return None


ANSI = re.compile(r"\x1b\[[0-9;]*m")
RUNNER_START = re.compile(r"^(\S+Z)\s+INFO.*starting ansible-runner\s+run=(\d+)\b")


def runner_started(log: Path, run_id: int | None) -> float | None:
    """When the relay spawned ansible-runner for ``run_id``, from its log line."""
    for line in log.read_text(errors="replace").splitlines():
        match = RUNNER_START.match(ANSI.sub("", line))
        if match and int(match.group(2)) == run_id:
            return parse_rfc3339(match.group(1))
    return None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(args.workdir)
        self.relay_events = self.workdir / "events-relay.jsonl"
        self.eda_events = self.workdir / "events-eda.jsonl"
        base = args.port_base or stack.find_port_base(start=30000)
        callback_env = {
            "ANSIBLE_CALLBACK_PLUGINS": str(HERE / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "autoheal_bench_timer",
            "AUTOHEAL_BENCH_EVENTS": str(self.relay_events),
        }
        self.stack = Stack(
            StackOptions(
                port_base=base,
                workdir=self.workdir,
                min_active=1,
                relay_rule_match={"autoheal": "true", "server": RELAY_SERVER},
                extra_webhooks=[("eda", f"http://127.0.0.1:{stack.Ports(base).eda}/endpoint")],
                ansible_extra_env=callback_env,
            )
        )

    # ---- set-up ---------------------------------------------------------------------------------

    def start(self) -> None:
        s = self.stack
        s.start_all()
        self.eda_admin = s.start_haproxy("haproxy-eda", s.ports.eda_frontend, None)
        self.eda_cfg = s.dir / "haproxy-eda" / "haproxy.cfg"
        self.start_eda()

    def start_eda(self) -> None:
        s = self.stack
        if not (EDA_VENV / "bin" / "ansible-rulebook").exists():
            raise FileNotFoundError(f"ansible-rulebook is not installed in {EDA_VENV}: see bench/README.md")
        d = s.dir / "eda"
        d.mkdir(exist_ok=True)
        hostvars = {
            "ansible_connection": "local",
            "ansible_python_interpreter": str(EDA_VENV / "bin" / "python"),
            "eda_haproxy_cfg": str(self.eda_cfg),
            "eda_haproxy_master_pid": s.sup.pid("haproxy-eda"),
        }
        (d / "inventory.yml").write_text(json.dumps({"all": {"hosts": {"localhost": hostvars}}}))
        (d / "vars.yml").write_text(
            json.dumps(
                {
                    "eda_port": s.ports.eda,
                    "eda_server": EDA_SERVER,
                    "eda_playbook": str(HERE / "eda" / "lineinfile.yml"),
                }
            )
        )
        env = {
            "PATH": f"{EDA_VENV / 'bin'}:{os.environ['PATH']}",
            "ANSIBLE_LOCAL_TEMP": str(d / "tmp"),
            "ANSIBLE_CALLBACK_PLUGINS": str(HERE / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "autoheal_bench_timer",
            "AUTOHEAL_BENCH_EVENTS": str(self.eda_events),
        }
        s.sup.start(
            "eda",
            [
                EDA_VENV / "bin" / "ansible-rulebook",
                "--rulebook",
                HERE / "eda" / "rulebook.yml",
                "-i",
                d / "inventory.yml",
                "--vars",
                d / "vars.yml",
            ],
            env=env,
            cwd=d,
        )
        wait_until(lambda: not stack.port_is_free(s.ports.eda), 120, "ansible-rulebook listening")

    # ---- one metric-driven drain and restore per path ----------------------------------------------

    def path_admin(self, path: str) -> AdminSocket:
        return self.stack.admin if path == "autoheal" else self.eda_admin

    def poll_until(self, admin: AdminSocket, server: str, wanted: tuple[str, ...], timeout: float = 90) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if live_status(admin.servers_state()[server]) in wanted:
                    return now()
            except (OSError, RuntimeError, KeyError):
                pass  # the socket moves to the new worker during a reload
            time.sleep(0.005)
        raise TimeoutError(f"{server} never became {wanted}")

    def round(self, path: str) -> dict[str, float]:
        s = self.stack
        server = RELAY_SERVER if path == "autoheal" else EDA_SERVER
        admin = self.path_admin(path)
        events_file = self.relay_events if path == "autoheal" else self.eda_events
        change = now()
        s.set_cpu(server, 1.0)
        drained = self.poll_until(admin, server, DRAINED)
        alert = wait_until(lambda: s.firing().get(server), 10, f"{server} alert in Prometheus")
        crossed = parse_rfc3339(alert["activeAt"])
        notified = s.tap.first(server, "firing", after=change)
        events = read_events(events_file, notified - 0.5)
        apply = first(events, "task_start", APPLY_ACTIONS[path])
        # On the relay's warm standby, ansible-playbook started before the alert: its run begins when the
        # hand-off arrives. (A playbook start after the apply task is the next standby's.)
        handoff = first(events, "task_ok", ("autoheal.haproxy.relay_handoff",))
        started = first(events, "playbook_start")
        marks = {
            "change": change,
            "crossed": crossed,
            "notified": notified,
            "drained": drained,
            "playbook": handoff if handoff is not None else started if started and apply and started < apply else None,
            "apply": apply,
        }
        if path == "autoheal":
            decision = next(a for a in s.relay_actions(change) if a.server == server and a.state == "drain")
            marks["decided"] = decision.time
            run_id = s.relay_run(server, "drain", change)
            marks["runner"] = runner_started(s.dir / "logs" / "relay.log", run_id)
        s.set_cpu(server, 0.1)
        resolved_change = now()
        restored = self.poll_until(admin, server, ("ready",))
        marks["restore"] = restored - resolved_change
        wait_until(lambda: server not in s.firing(), 30, f"{server} alert resolved")
        time.sleep(1)
        return marks

    # ---- cycles under load ----------------------------------------------------------------------

    def payload(self, server: str, status: str, starts_at: str) -> dict:
        labels = {
            "alertname": "AutohealNodeCpuBusy",
            "autoheal": "true",
            "backend": stack.HAPROXY_BACKEND,
            "server": server,
            "instance": "127.0.0.1:9100",
            "job": "node",
            "severity": "warning",
        }
        alert = {
            "status": status,
            "labels": labels,
            "annotations": {"summary": "bench"},
            "startsAt": starts_at,
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else starts_at.replace("Z", "1Z"),
            "generatorURL": "http://127.0.0.1/bench",
            "fingerprint": hashlib.sha256(server.encode()).hexdigest()[:16],
        }
        return {
            "receiver": "autoheal-relay",
            "status": status,
            "alerts": [alert],
            "groupLabels": {"alertname": labels["alertname"], "backend": labels["backend"], "server": server},
            "commonLabels": labels,
            "commonAnnotations": alert["annotations"],
            "externalURL": "http://127.0.0.1",
            "version": "4",
            "groupKey": f"bench/{server}",
            "truncatedAlerts": 0,
        }

    def cycles(self, path: str, count: int) -> dict[str, object]:
        s = self.stack
        server = RELAY_SERVER if path == "autoheal" else EDA_SERVER
        admin = self.path_admin(path)
        frontend = s.ports.frontend if path == "autoheal" else s.ports.eda_frontend
        load = stack.LoadGenerator(frontend, threads=4, per_thread_rps=100, max_seconds=3600).start()
        durations = []
        try:
            for i in range(count):
                starts_at = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                began = now()
                for status, wanted in (("firing", DRAINED), ("resolved", ("ready",))):
                    body = json.dumps(self.payload(server, status, starts_at)).encode()
                    if path == "autoheal":
                        code, answer = s.post_alerts(json.loads(body))
                    else:
                        code, answer = stack.http_post(f"http://127.0.0.1:{s.ports.eda}/endpoint", body)
                    if code >= 300:
                        raise RuntimeError(f"{path} refused the webhook: {code} {answer}")
                    self.poll_until(admin, server, wanted)
                durations.append(now() - began)
                if (i + 1) % 10 == 0:
                    snap = load.snapshot()
                    print(f"  {path}: {i + 1}/{count} cycles, {snap.total} requests, {snap.failed} failed", flush=True)
        finally:
            total = load.stop()
        return {
            "cycles": len(durations),
            "requests": total.total,
            "failed": total.failed,
            "retried": total.retried,
            "errors": dict(total.errors),
            "cycle_s": statistics.median(durations) if durations else float("nan"),
        }


def fmt(value: float | None) -> str:
    return "      -" if value is None else f"{max(value, 0.0) * 1000:7.0f}"


def report(rounds: dict[str, list[dict]], cycles: dict[str, dict]) -> None:
    def med(path: str, start: str, end: str) -> float | None:
        values = [r[end] - r[start] for r in rounds[path] if r.get(start) is not None and r.get(end) is not None]
        return statistics.median(values) if values else None

    rows = [
        ("metric change -> threshold crossed (Prometheus eval)", "change", "crossed", "change", "crossed"),
        ("crossed -> webhook delivered (Prometheus+Alertmanager)", "crossed", "notified", "crossed", "notified"),
        ("webhook -> decision journaled (relay; rulebook: in the next rows)", "notified", "decided", None, None),
        ("decision -> ansible-runner asked (coalescing window, guard)", "decided", "runner", None, None),
        ("ansible-runner asked -> playbook start (warm standby: hand-off received)", "runner", "playbook", None, None),
        ("webhook -> playbook start (all of the above)", "notified", "playbook", "notified", "playbook"),
        ("playbook start (hand-off) -> apply task start", "playbook", "apply", "playbook", "apply"),
        ("apply task start -> drained live (module | lineinfile+reload)", "apply", "drained", "apply", "drained"),
        ("webhook -> drained (relay-to-drained)", "notified", "drained", "notified", "drained"),
        ("threshold crossed -> drained", "crossed", "drained", "crossed", "drained"),
    ]
    n = len(rounds["autoheal"])
    print(f"\n== Detection to drain, median of {n} round(s), milliseconds")
    print(f"{'stage':74} {'autoheal':>8} {'rulebook':>8} {'ratio':>6}")
    print("(ratio = rulebook / autoheal; the first two stages are shared and differ only by noise)")
    for label, a0, a1, e0, e1 in rows:
        ours = med("autoheal", a0, a1)
        peer = med("eda", e0, e1) if e0 else None
        shared = a0 in ("change", "crossed") and a1 in ("crossed", "notified")  # same Prometheus+Alertmanager
        ratio = f"{peer / ours:5.1f}x" if ours and peer and not shared else "     -"
        print(f"{label:74} {fmt(ours):>8} {fmt(peer):>8} {ratio:>6}")
    restore_ours = statistics.median(r["restore"] for r in rounds["autoheal"])
    restore_peer = statistics.median(r["restore"] for r in rounds["eda"])
    print(
        f"{'metric falls -> restored live':74} {fmt(restore_ours):>8} {fmt(restore_peer):>8} "
        f"{restore_peer / restore_ours:5.1f}x"
    )
    if cycles:
        print("\n== Drain/restore cycles under load (4 keep-alive clients, ~400 req/s)")
        print(f"{'path':10} {'cycles':>6} {'requests':>9} {'failed':>7} {'retried':>8} {'cycle (median)':>15}")
        for path, c in cycles.items():
            print(
                f"{path:10} {c['cycles']:6d} {c['requests']:9d} {c['failed']:7d} {c['retried']:8d} "
                f"{c['cycle_s']:14.2f}s  {c['errors'] or ''}"
            )
        print("  retried = a request on a keep-alive connection the server had just closed, resent once on a")
        print("  new connection (as browsers and HTTP libraries do); failed = still failed after that.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port-base", type=int, default=None)
    parser.add_argument("--workdir", default=str(stack.REPO / "build" / "bench"))
    parser.add_argument("--rounds", type=int, default=3, help="metric-driven drains per path (default 3)")
    parser.add_argument("--cycles", type=int, default=100, help="drain/restore cycles under load, autoheal path")
    parser.add_argument("--peer-cycles", type=int, default=20, help="the same for the rulebook path")
    args = parser.parse_args()
    bench = Bench(args)
    with bench.stack:
        print(f"starting the stack in {args.workdir} ...", flush=True)
        bench.start()
        rounds: dict[str, list[dict]] = {"autoheal": [], "eda": []}
        for i in range(args.rounds):
            for path in ("autoheal", "eda"):
                marks = bench.round(path)
                rounds[path].append(marks)
                print(
                    f"  round {i + 1} {path}: crossed->drained {marks['drained'] - marks['crossed']:.3f}s, "
                    f"webhook->drained {marks['drained'] - marks['notified']:.3f}s",
                    flush=True,
                )
        cycles = {}
        for path, count in (("autoheal", args.cycles), ("eda", args.peer_cycles)):
            if count:
                cycles[path] = bench.cycles(path, count)
        report(rounds, cycles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
