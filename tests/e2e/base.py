"""Shared set-up for the end-to-end tests: one real stack per test class, torn down even on failure."""

from __future__ import annotations

import os
import time
import unittest
from pathlib import Path

from lab import stack

DRAINED = ("drain", "weight0")
WORKROOT = Path(os.environ.get("AUTOHEAL_E2E_WORKDIR", stack.REPO / "build" / "e2e"))


class StackTestCase(unittest.TestCase):
    """Starts the whole loop once for the class; every test leaves the servers back in service."""

    stack: stack.Stack
    extra_alertmanagers = 0
    relay_extra: dict = {}
    nodes = 1
    min_active = 2
    server_weight: int | None = None
    alerting_extra: dict = {}

    @classmethod
    def setUpClass(cls) -> None:
        port_base = stack.find_port_base(start=int(os.environ.get("AUTOHEAL_E2E_PORT_BASE", "21000")))
        options = stack.StackOptions(
            port_base=port_base,
            # The port base in the name keeps two runs of the suite from sharing a directory.
            workdir=WORKROOT / f"{cls.__name__}-{port_base}",
            min_active=cls.min_active,
            extra_alertmanagers=cls.extra_alertmanagers,
            relay_extra=dict(cls.relay_extra),
            nodes=cls.nodes,
            server_weight=cls.server_weight,
            alerting_extra=dict(cls.alerting_extra),
        )
        cls.stack = stack.Stack(options)
        try:
            cls.stack.start_all()
        except BaseException:
            cls.dump_logs()
            cls.stack.stop()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls.stack.stop()

    @classmethod
    def dump_logs(cls) -> None:
        for name in ("relay", "haproxy", "haproxy-2", "alertmanager", "prometheus"):
            tail = cls.stack.sup.log_tail(name, 40)
            if tail:
                print(f"\n--- {name} log (last lines) ---\n{tail}")

    def run(self, result: unittest.TestResult | None = None) -> unittest.TestResult | None:
        failures_before = len(result.failures) + len(result.errors) if result else 0
        outcome = super().run(result)
        if result and len(result.failures) + len(result.errors) > failures_before:
            self.dump_logs()
        return outcome

    def wait(self, predicate, timeout: float, what: str) -> object:
        return stack.wait_until(predicate, timeout, what)

    def assert_all_ready(self) -> None:
        s = self.stack
        self.wait(lambda: all(v == "ready" for v in s.live().values()), 60, "every server ready (live)")
        self.assertEqual(s.in_file(), {name: "ready" for name in stack.SERVERS})

    def settle(self) -> None:
        """Bring every CPU down and wait until nothing fires and every server is back."""
        for name in stack.SERVERS:
            self.stack.set_cpu(name, 0.1)
        self.wait(lambda: not self.stack.firing(), 60, "no alert firing")
        self.assert_all_ready()


def no_failures_message(snapshot: stack.LoadSnapshot, load: stack.LoadGenerator) -> str:
    return f"{snapshot.failed} failed requests: {snapshot.errors}; first: {load.failures[:5]}"


def pause(seconds: float) -> None:
    time.sleep(seconds)
