"""Benchmark: one flapping server over ten minutes, without and with the relay's life cycle.

Two stacks run side by side, each a whole loop on loopback (Prometheus with the collection's rules,
Alertmanager, autoheal-relay, ansible-runner, HAProxy, three backends) with the same steady traffic. In
each, s2 answers 500 to every request but HAProxy's health check (a server sick in a way its check does
not see) for the whole run, and the error-rate alert (`for: 0s`) drives the relay:

  today      the relay with its life cycle off (no hold-down, one-step restore, no quarantine): what the
             relay did before issue 10, drain on firing, restore on resolve
  lifecycle  the relay's defaults: growing hold-down, ramped restore, quarantine after 3 remediations

A drained server gets no traffic, so its error rate has nothing to measure and the alert resolves: the
flap. The table counts, per stack, the drains and restores the relay carried out (its audit history),
the client requests that failed (s2's 500s and anything else) and where s2 ended.

Usage (after scripts/deps.sh and scripts/build.sh): PYTHONPATH=. .venv/bin/python bench/flap.py [--minutes 10] [--port-base 47000]
"""

from __future__ import annotations

import argparse
import sys
import time

from lab import stack
from lab.stack import Stack, StackOptions

SICK = "s2"
TARGET = f"{stack.HAPROXY_BACKEND}/{SICK}"
TODAY = "hold_down_base_secs = 0\nhold_down_max_secs = 0\nramp_percent = [100]\nquarantine_after = 0\n"
# The defaults of docs/relay.md, written out so that the lab's own (life cycle off) do not apply.
DEFAULTS = (
    "hold_down_base_secs = 30\nhold_down_max_secs = 300\nquarantine_after = 3\n"
    "ramp_percent = [10, 50, 100]\nramp_step_secs = 30\n"
)
ALERTING = {"autoheal_alerting_error_rate_for": "0s", "autoheal_alerting_server_down_enabled": False}


def start(name: str, port_base: int, lifecycle: str) -> Stack:
    options = StackOptions(
        port_base=stack.find_port_base(start=port_base),
        workdir=stack.REPO / "build" / "bench" / f"flap-{name}",
        min_active=2,
        relay_extra={"lifecycle": lifecycle},
        server_weight=10,
        alerting_extra=dict(ALERTING),
    )
    s = Stack(options)
    s.start_all()
    return s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--port-base", type=int, default=47000)
    parser.add_argument("--rps", type=float, default=10.0, help="requests per second per load thread (4 threads)")
    args = parser.parse_args()
    seconds = args.minutes * 60

    stacks: dict[str, Stack] = {}
    try:
        stacks["today"] = start("today", args.port_base, TODAY)
        stacks["lifecycle"] = start("lifecycle", args.port_base + 100, DEFAULTS)
        loads = {name: s.load(threads=4, per_thread_rps=args.rps, max_seconds=seconds + 60) for name, s in stacks.items()}
        stack.wait_until(lambda: all(l.snapshot().total > 20 for l in loads.values()), 30, "traffic through both")
        begin = stack.now()
        for s in stacks.values():
            s.set_fault(SICK, "errors")
        print(f"flap: {SICK} answers 500 on both stacks for {args.minutes:g} min", flush=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(min(30.0, max(0.0, deadline - time.monotonic())))
            line = "  ".join(
                f"{name}: {drains(s, begin)} drains, {loads[name].snapshot().failed} failed" for name, s in stacks.items()
            )
            print(f"  {int(stack.now() - begin):4d} s  {line}", flush=True)
        rows = []
        for name, s in stacks.items():
            total = loads[name].stop()
            events = [e["event"] for e in s.relay_life_events(TARGET, begin)]
            rows.append(
                (
                    name,
                    taken_out(events),
                    events.count("ramping"),
                    events.count("restored"),
                    total.total + total.failed,
                    total.failed,
                    stack.live_status(s.admin.servers_state()[SICK]),
                    "yes" if "quarantined" in events else "no",
                )
            )
    finally:
        for s in stacks.values():
            s.stop()
    print()
    print("| relay | drains | ramp steps back in | full restores | requests | failed | s2 at the end | quarantined |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    today, new = rows[0], rows[1]
    if today[5]:
        print(f"\nfailed requests, lifecycle/today: {new[5] / today[5]:.2f}x")
    return 0


def drains(s: Stack, since: float) -> int:
    return taken_out([e["event"] for e in s.relay_life_events(TARGET, since)])


def taken_out(events: list[str]) -> int:
    """How many times the relay took the sick server out: its life-cycle audit says `drained`, or
    `quarantined` for the drain that quarantines it."""
    return events.count("drained") + events.count("quarantined")


if __name__ == "__main__":
    sys.exit(main())
