"""States a person set are a person's: a server an operator put in maintenance by hand stays there through
a whole firing/resolved cycle of its alert, in the running HAProxy and in the file."""

from __future__ import annotations

import unittest

from lab import stack
from base import StackTestCase

# Outcomes of a decision whose run has not ended yet.
UNFINISHED = ("pending", "running")


class OperatorStateTest(StackTestCase):
    def decided(self, server: str, state: str, since: float) -> list[stack.Action]:
        """The relay's decisions to put ``server`` in ``state`` since ``since`` whose run has ended."""
        return [
            a
            for a in self.stack.relay_actions(since)
            if a.server == server and a.state == state and a.outcome not in UNFINISHED
        ]

    def test_operator_maintenance_survives_a_firing_and_resolved_alert(self) -> None:
        s = self.stack
        self.addCleanup(self.settle)
        self.addCleanup(lambda: s.admin.command(f"set server {stack.HAPROXY_BACKEND}/s2 state ready"))
        original = s.haproxy_cfg.read_text()

        # The operator's hand: maintenance on the runtime socket, nothing in the file.
        answer = s.admin.command(f"set server {stack.HAPROXY_BACKEND}/s2 state maint")
        self.assertEqual(answer.strip(), "", answer)
        self.wait(lambda: s.live()["s2"] == "maint", 5, "s2 in maintenance")

        start = stack.now()
        s.set_cpu("s2", 1.0)
        self.wait(lambda: self.decided("s2", "drain", start), 60, "the relay's drain of s2 carried out")
        s.set_cpu("s2", 0.1)
        self.wait(lambda: self.decided("s2", "enabled", start), 90, "the relay's restore of s2 carried out")

        self.assertEqual(s.live()["s2"], "maint", "autoheal took the operator's server out of maintenance")
        self.assertEqual(s.haproxy_cfg.read_text(), original, "autoheal wrote over the operator's server")
        self.assertEqual((s.live()["s1"], s.live()["s3"]), ("ready", "ready"))
        actions = s.relay_actions(since=start)
        self.assertFalse([a for a in actions if a.outcome == "failed"], f"a run failed: {actions}")


if __name__ == "__main__":
    unittest.main()
