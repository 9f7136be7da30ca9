"""Panic: when most of a backend's servers alert at once, the trouble is a shared dependency, not the
servers. The relay takes out at most its budget, refuses every other drain for that backend with the
outcome `panic`, says so in a metric, and remediates again by itself once the alerts resolve."""

from __future__ import annotations

import unittest

from lab import stack
from base import DRAINED, StackTestCase


class PanicTest(StackTestCase):
    # The relay knows the backend's three servers (guard.servers), so it knows their share; the default
    # panic policy applies: more than half of at least three servers.
    relay_extra = {"servers": True}

    def panicking(self) -> float:
        return stack.metric_sum(self.stack.relay_metrics(), "autoheal_relay_backend_panic", stack.HAPROXY_BACKEND)

    def test_every_server_alerting_at_once_is_a_panic_that_ends_by_itself(self) -> None:
        s = self.stack
        self.addCleanup(self.settle)
        start = stack.now()
        for name in stack.SERVERS:
            s.set_cpu(name, 1.0)
        refused = self.wait(
            lambda: [a for a in s.relay_actions(start) if a.state == "drain" and a.outcome == "panic"],
            90,
            "a drain refused as a panic",
        )
        self.wait(lambda: self.panicking() == 1, 30, "the panic metric of the backend")
        self.wait(lambda: s.relay_saw_all(start), 60, "a decision for every alerting server")
        out = [name for name, state in s.live().items() if state != "ready"]
        self.assertLessEqual(len(out), 1, f"more than the budget of one taken out: {s.live()}")
        drains = [a for a in s.relay_actions(start) if a.state == "drain"]
        self.assertEqual(
            {a.server for a in drains if a.outcome != "panic"},
            set(out),
            f"every drain but the one within the budget is refused as a panic: {drains}",
        )
        self.assertTrue(all(a.backend == stack.HAPROXY_BACKEND for a in refused), refused)
        self.assertEqual(s.in_file(), {name: ("weight0" if name in out else "ready") for name in stack.SERVERS})

        # The dependency recovers: the alerts resolve, the panic ends and any server taken out comes back.
        for name in stack.SERVERS:
            s.set_cpu(name, 0.1)
        self.wait(lambda: not s.firing(), 90, "no alert firing")
        self.wait(lambda: self.panicking() == 0, 30, "the panic metric back to 0")
        self.assert_all_ready()

        # Remediation resumes by itself: one sick server alone is drained again.
        resumed = stack.now()
        s.set_cpu("s2", 1.0)
        self.wait(lambda: s.live()["s2"] in DRAINED and s.in_file()["s2"] == "weight0", 60, "s2 drained")
        drains = self.wait(
            lambda: (found := [a for a in s.relay_actions(resumed) if a.state == "drain"])
            and all(a.outcome not in ("pending", "running") for a in found)
            and found,
            30,
            "the drain's run recorded",
        )
        self.assertEqual([(a.server, a.outcome) for a in drains], [("s2", "applied")], drains)


if __name__ == "__main__":
    unittest.main()
