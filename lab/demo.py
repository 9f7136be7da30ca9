"""The autoheal demo: the whole loop on loopback, narrated as a timeline.

Traffic spreads over s1..s3; s2's CPU rises; Prometheus fires; Alertmanager notifies autoheal-relay;
the relay decides and runs the collection's remediate playbook with ansible-runner; the module drains
s2 in haproxy.cfg and on the runtime socket; traffic continues on s1 and s3 with no failed request;
s2's CPU falls; the alert resolves; s2 comes back.  Then every server alerts at once and the budget
keeps enough of them serving.  Then s3 flaps: it answers 500 while its health check passes, so each drain
ends its errors, its alert resolves and it comes back failing; the relay's life cycle holds it out longer
each time and quarantines it at the third, until an operator releases it.  Ends with a summary table and
stops everything it started.

Run it with scripts/demo.sh (which installs and builds first).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lab import stack
from lab.stack import SERVERS, Stack, StackOptions, now, wait_until

STEP_TIMEOUT = 60.0
# Not s2, whose drain in the first scenario would count towards its quarantine.
FLAPPER = "s3"
FLAPPER_TARGET = f"{stack.HAPROXY_BACKEND}/{FLAPPER}"
# The flap's life cycle, shortened so that it plays out in about a minute (the defaults: docs/relay.md).
FLAP_LIFECYCLE = (
    "hold_down_base_secs = 5\nhold_down_max_secs = 60\nquarantine_after = 3\n"
    "ramp_percent = [50, 100]\nramp_step_secs = 5\ndefer_retry_secs = 2\ndefer_retry_max_secs = 2\n"
)


class Timeline:
    def __init__(self) -> None:
        self.start = now()
        self.marks: dict[str, float] = {}

    def say(self, message: str, at: float | None = None, key: str | None = None) -> float:
        at = now() if at is None else at
        if key:
            self.marks[key] = at
        stamp = time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"
        print(f"{stamp}  +{at - self.start:7.2f}s  {message}", flush=True)
        return at


def distribution(delta: stack.LoadSnapshot) -> str:
    total = max(delta.total, 1)
    parts = [
        f"{name} {delta.served.get(name, 0):4d} ({100 * delta.served.get(name, 0) / total:3.0f}%)" for name in SERVERS
    ]
    return ", ".join(parts) + f"; failed {delta.failed}"


def follow_drain(s: Stack, tl: Timeline, server: str, since: float, prefix: str) -> None:
    """Narrate each stage of one drain as it is observed, in the order it happens."""
    stages = [
        (
            f"{prefix}alert",
            lambda: s.firing().get(server),
            lambda a: f"Prometheus: AutohealNodeCpuBusy firing for {server} (active since {a['activeAt'][11:23]}Z)",
        ),
        (
            f"{prefix}notified",
            lambda: s.tap.first(server, "firing", after=since),
            lambda _: "Alertmanager: webhook sent (firing) to autoheal-relay",
        ),
        (
            f"{prefix}decided",
            lambda: s.relay_decision(server, "drain", since),
            lambda d: f"relay: decided drain {server} ({d})",
        ),
        (
            f"{prefix}run",
            lambda: s.relay_run(server, "drain", since),
            lambda run: f"relay: ansible-runner started run {run} (playbook autoheal.haproxy.remediate)",
        ),
        (
            f"{prefix}drained_live",
            lambda: s.live().get(server) in ("drain", "weight0"),
            lambda _: f"HAProxy runtime: {server} is {s.live()[server]} (no new connections)",
        ),
        (
            f"{prefix}drained_file",
            lambda: s.in_file().get(server) == "weight0",
            lambda _: f"haproxy.cfg: {stack.file_servers(s.haproxy_cfg.read_text())[server]!r}",
        ),
    ]
    narrate(s, tl, stages)


def follow_restore(s: Stack, tl: Timeline, server: str, since: float, prefix: str) -> None:
    stages = [
        (
            f"{prefix}alert_resolved",
            lambda: server not in s.firing(),
            lambda _: f"Prometheus: AutohealNodeCpuBusy for {server} no longer firing",
        ),
        (
            f"{prefix}notified_resolved",
            lambda: s.tap.first(server, "resolved", after=since),
            lambda _: "Alertmanager: webhook sent (resolved) to autoheal-relay",
        ),
        (
            f"{prefix}decided_restore",
            lambda: s.relay_decision(server, "enabled", since),
            lambda d: f"relay: decided restore {server} ({d})",
        ),
        (
            f"{prefix}run_restore",
            lambda: s.relay_run(server, "enabled", since),
            lambda run: f"relay: ansible-runner started run {run} (playbook autoheal.haproxy.remediate)",
        ),
        (
            f"{prefix}restored_live",
            lambda: s.live().get(server) == "ready",
            lambda _: f"HAProxy runtime: {server} is ready again",
        ),
        (
            f"{prefix}restored_file",
            lambda: s.in_file().get(server) == "ready",
            lambda _: f"haproxy.cfg: {stack.file_servers(s.haproxy_cfg.read_text())[server]!r}",
        ),
    ]
    narrate(s, tl, stages)


def narrate(s: Stack, tl: Timeline, stages: list) -> None:
    """Poll every stage at once; print each the moment it is first seen (some may coincide)."""
    pending = list(stages)
    deadline = time.monotonic() + STEP_TIMEOUT
    while pending:
        for stage in list(pending):
            key, probe, describe = stage
            try:
                value = probe()
            except Exception:  # noqa: BLE001 - a stage not reached yet may not be readable yet
                value = None
            if value:
                tl.say(describe(value), key=key)
                pending.remove(stage)
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"stalled waiting for: {', '.join(k for k, _, _ in pending)}\n" f"relay log:\n{s.sup.log_tail('relay')}"
            )
        time.sleep(0.02)


def run(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir)
    options = StackOptions(
        port_base=args.port_base,
        workdir=workdir,
        min_active=2,
        # A weight a ramp can split; the error-rate alert as soon as the rate is up, and no alert for a
        # failing check (the flap's check passes anyway).
        server_weight=10,
        alerting_extra={"autoheal_alerting_error_rate_for": "0s", "autoheal_alerting_server_down_enabled": False},
    )
    tl = Timeline()
    with Stack(options) as s:
        tl.say(f"starting the stack on 127.0.0.1, ports {args.port_base}..{args.port_base + 22}, in {workdir}")
        s.start_all()
        tl.say("up: 3 backends + exporters, HAProxy (master-worker), Prometheus, Alertmanager, autoheal-relay")
        load = s.load(max_seconds=900)
        before = load.snapshot()
        time.sleep(3)
        tl.say(f"traffic through HAProxy, last 3 s: {distribution(load.snapshot().minus(before))}")

        # ---- one sick server --------------------------------------------------------------------
        change = tl.say("s2: CPU rises to 100% (exporter's node_cpu_seconds_total now mostly non-idle)", key="cpu_up")
        s.set_cpu("s2", 1.0)
        follow_drain(s, tl, "s2", change, "")
        drained = load.snapshot()
        time.sleep(3)
        tl.say(f"traffic with s2 drained, last 3 s: {distribution(load.snapshot().minus(drained))}")
        change = tl.say("s2: CPU falls to 10%", key="cpu_down")
        s.set_cpu("s2", 0.1)
        follow_restore(s, tl, "s2", change, "")
        restored = load.snapshot()
        time.sleep(3)
        tl.say(f"traffic with s2 back, last 3 s: {distribution(load.snapshot().minus(restored))}")

        # ---- a storm: everyone is sick ----------------------------------------------------------
        storm = tl.say("storm: s1, s2 and s3 all go to 100% CPU at once", key="storm")
        for name in SERVERS:
            s.set_cpu(name, 1.0)
        wait_until(lambda: len(s.firing()) == len(SERVERS), STEP_TIMEOUT, "all three alerts firing")
        tl.say("Prometheus: AutohealNodeCpuBusy firing for s1, s2 and s3")
        wait_until(lambda: s.relay_saw_all(storm), STEP_TIMEOUT, "the relay deciding on all three")
        wait_until(
            lambda: sum(v in ("drain", "weight0") for v in s.live().values()) >= 1, STEP_TIMEOUT, "one server drained"
        )
        time.sleep(3)  # give any (wrong) extra drain time to show
        live = s.live()
        out = [name for name, state in live.items() if state != "ready"]
        tl.say(
            f"after the storm: out of service {out or 'none'}; serving {[n for n in SERVERS if n not in out]} "
            f"(min_active {options.min_active})"
        )
        for refusal in s.relay_refusals(storm):
            tl.say(f"relay refused to drain {refusal.server}: {refusal.detail}")
        storm_traffic = load.snapshot()
        time.sleep(2)
        tl.say(f"traffic during the storm, last 2 s: {distribution(load.snapshot().minus(storm_traffic))}")
        calm = tl.say("storm over: every CPU back to 10%")
        for name in SERVERS:
            s.set_cpu(name, 0.1)
        wait_until(
            lambda: all(v == "ready" for v in s.live().values()) and not s.firing(),
            STEP_TIMEOUT,
            "every server back in service",
        )
        tl.say(f"all servers ready again ({now() - calm:.1f} s after the CPUs fell)")

        flap(s, tl, load)
        total = load.stop()
        wait_until(
            lambda: not [a for a in s.relay_actions() if a.outcome in ("pending", "running")],
            STEP_TIMEOUT,
            "the relay's last runs to finish",
        )

        print_summary(s, tl, total)
        if args.keep_running:
            p = s.ports
            print(
                f"\nStill running (Ctrl-C stops everything):\n"
                f"  HAProxy stats  http://127.0.0.1:{p.stats}/stats\n"
                f"  Prometheus     http://127.0.0.1:{p.prometheus}/alerts\n"
                f"  Alertmanager   http://127.0.0.1:{p.alertmanager}/\n"
                f"  relay metrics  curl -H 'Authorization: Bearer {s.relay_token()}' "
                f"http://127.0.0.1:{p.relay}/metrics\n"
                f"  load balancer  http://127.0.0.1:{p.frontend}/\n"
                f"  raise a CPU    curl -d 1.0 http://127.0.0.1:{p.exporter(1)}/cpu   (s2; 0.1 lowers it)",
                flush=True,
            )
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        tl.say("stopping everything the demo started")
    unexpected = total.failed - total.errors[f"HTTP 500 from {FLAPPER}"]
    return 0 if unexpected == 0 else 1


def flap(s: Stack, tl: Timeline, load: stack.LoadGenerator) -> None:
    """A server sick in a way its check does not see, through the relay's life cycle, then released."""
    s.options.relay_extra["lifecycle"] = FLAP_LIFECYCLE
    s.write_relay_config()
    s.restart_relay()
    tl.say("flap: the relay restarted with its life cycle on (hold-down 5 s doubling, ramp 50% then 100% "
           "every 5 s, quarantine at the third remediation in an hour)")
    before = load.snapshot()
    start = tl.say(f"{FLAPPER}: answers 500 to every request; its health check still passes", key="flap")
    s.set_fault(FLAPPER, "errors")
    seen = 0
    deadline = time.monotonic() + 4 * STEP_TIMEOUT
    while True:
        events = s.relay_life_events(FLAPPER_TARGET, start)
        for event in events[seen:]:
            tl.say(f"relay life cycle of {FLAPPER}: {life_event(event)}", at=event["at"])
        seen = len(events)
        if any(e["event"] == "quarantined" for e in events):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{FLAPPER} was not quarantined\nrelay log:\n{s.sup.log_tail('relay')}")
        time.sleep(0.2)
    wait_until(lambda: s.live()[FLAPPER] in ("drain", "weight0"), STEP_TIMEOUT, f"{FLAPPER} out of service")
    flapped = load.snapshot().minus(before)
    drains = [a for a in s.relay_actions(start) if a.server == FLAPPER and a.state == "drain"]
    tl.say(f"quarantined after {len(drains)} drains; requests failed meanwhile: {flapped.failed} "
           f"({', '.join(f'{n} x {why}' for why, n in flapped.errors.most_common(3))})")
    fixed = tl.say(f"operator: {FLAPPER} is fixed; `autoheal-relay release {FLAPPER_TARGET}`")
    s.set_fault(FLAPPER, "none")
    tl.say(f"autoheal-relay: {s.relay_release(FLAPPER_TARGET)}")
    wait_until(
        lambda: any(e["event"] == "restored" for e in s.relay_life_events(FLAPPER_TARGET, fixed)),
        STEP_TIMEOUT,
        f"{FLAPPER} restored after the release",
    )
    for event in [e for e in s.relay_life_events(FLAPPER_TARGET, fixed) if e["at"] >= fixed]:
        tl.say(f"relay life cycle of {FLAPPER}: {event['event']}", at=event["at"])
    wait_until(lambda: all(v == "ready" for v in s.live().values()), STEP_TIMEOUT, "every server back in service")
    tl.say("all servers ready again")


def life_event(event: dict) -> str:
    """One life-cycle audit row, for people: `eligible` says when the restore may come."""
    if event["event"] == "eligible" and event["detail"]:
        restore_at_ms = int(event["detail"].split()[-2])
        return f"eligible, restore in {restore_at_ms / 1000 - event['at']:.1f} s at the earliest"
    return event["event"] + (f": {event['detail']}" if event["detail"] else "")


def print_summary(s: Stack, tl: Timeline, total: stack.LoadSnapshot) -> None:
    m = tl.marks
    print("\n== Summary")
    print(f"  s2 CPU up -> alert firing          {m['alert'] - m['cpu_up']:6.2f} s")
    print(f"  s2 CPU up -> relay notified        {m['notified'] - m['cpu_up']:6.2f} s")
    print(f"  s2 CPU up -> drained (live)        {m['drained_live'] - m['cpu_up']:6.2f} s")
    print(f"  s2 CPU up -> drained (file)        {m['drained_file'] - m['cpu_up']:6.2f} s")
    print(f"  relay notified -> drained (live)   {m['drained_live'] - m['notified']:6.2f} s")
    print(f"  s2 CPU down -> restored (live)     {m['restored_live'] - m['cpu_down']:6.2f} s")
    print(f"  s2 CPU down -> restored (file)     {m['restored_file'] - m['cpu_down']:6.2f} s")
    stats = s.admin.stats()
    print("\n  server   requests served   HAProxy: connect errors / response errors / aborted by server")
    for name in SERVERS:
        row = stats.get(name, {})
        print(
            f"  {name:6} {total.served.get(name, 0):17d}   {row.get('econ', '?'):>5} / {row.get('eresp', '?'):>5} / "
            f"{row.get('srv_abrt', '?'):>5}"
        )
    print(
        f"  {'total':6} {total.total:17d}   requests failed at the client: {total.failed}, of which "
        f"{FLAPPER}'s own 500s in the flap: {total.errors[f'HTTP 500 from {FLAPPER}']} "
        f"(resent once on a fresh connection after an idle keep-alive close: {total.retried})"
    )
    print("\n  relay audit history:")
    for line in s.history_lines():
        print(f"    {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--port-base", type=int, default=None, help="first of the ports used (default: the first free range from 20000)"
    )
    parser.add_argument(
        "--workdir", default=str(stack.REPO / "build" / "demo"), help="where configs, logs and state go (recreated)"
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="after the scenario, keep everything running and print the URLs; Ctrl-C stops",
    )
    args = parser.parse_args()
    if args.port_base is None:
        args.port_base = stack.find_port_base()
    try:
        return run(args)
    except (TimeoutError, RuntimeError, FileNotFoundError) as error:
        print(f"\ndemo failed: {error}\n(logs in {args.workdir}/logs)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: everything the demo started is stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
