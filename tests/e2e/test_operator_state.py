"""States a person set are a person's: a server an operator put in maintenance by hand, or drained with the
module, stays so through a whole firing/resolved cycle of its alert, in the running HAProxy and in the file."""

from __future__ import annotations

import json
import subprocess
import unittest

from lab import stack
from base import StackTestCase

# Outcomes of a decision whose run has not ended yet.
UNFINISHED = ("pending", "running")
MODULE = stack.REPO / "plugins" / "modules" / "__bin__" / "server_linux_x86_64"


class OperatorStateTest(StackTestCase):
    def decided(self, server: str, state: str, since: float) -> list[stack.Action]:
        """The relay's decisions to put ``server`` in ``state`` since ``since`` whose run has ended."""
        return [
            a
            for a in self.stack.relay_actions(since)
            if a.server == server and a.state == state and a.outcome not in UNFINISHED
        ]

    def operator_module(self, server: str, state: str) -> dict:
        """The module run by hand, as an operator's playbook runs it (``set_by`` left at its default)."""
        s = self.stack
        args = s.dir / f"operator-{server}-{state}.json"
        options = {"path": str(s.haproxy_cfg), "socket": str(s.dir / "haproxy" / "admin.sock"),
                   "backend": stack.HAPROXY_BACKEND, "server": server, "state": state}
        args.write_text(json.dumps(options))
        done = subprocess.run([MODULE, args], capture_output=True, text=True, timeout=60)
        result = json.loads(done.stdout)
        self.assertEqual(done.returncode, 0, result)
        return result

    def cycle(self, server: str) -> float:
        """Fires the server's alert, waits for the relay's drain to end, resolves it, waits for the restore."""
        start = stack.now()
        self.stack.set_cpu(server, 1.0)
        self.wait(lambda: self.decided(server, "drain", start), 60, f"the relay's drain of {server} carried out")
        self.stack.set_cpu(server, 0.1)
        self.wait(lambda: self.decided(server, "enabled", start), 90, f"the relay's restore of {server} carried out")
        return start

    def test_a_drain_an_operator_ran_with_the_module_survives_a_firing_and_resolved_alert(self) -> None:
        s = self.stack
        self.addCleanup(self.settle)
        self.addCleanup(self.operator_module, "s1", "enabled")
        drained = self.operator_module("s1", "drain")
        self.assertEqual(drained["set_by"], None, drained)
        operators_file = s.haproxy_cfg.read_text()
        self.assertIn("#autoheal drain was: server s1", operators_file)

        start = self.cycle("s1")
        self.assertEqual((s.live()["s1"], s.in_file()["s1"]), ("drain", "weight0"), "autoheal restored s1")
        self.assertEqual(s.haproxy_cfg.read_text(), operators_file, "autoheal rewrote the operator's marker")
        actions = s.relay_actions(since=start)
        self.assertFalse([a for a in actions if a.outcome == "failed"], f"a run failed: {actions}")

    def test_operator_maintenance_survives_a_firing_and_resolved_alert(self) -> None:
        s = self.stack
        self.addCleanup(self.settle)
        self.addCleanup(lambda: s.admin.command(f"set server {stack.HAPROXY_BACKEND}/s2 state ready"))
        original = s.haproxy_cfg.read_text()

        # The operator's hand: maintenance on the runtime socket, nothing in the file.
        answer = s.admin.command(f"set server {stack.HAPROXY_BACKEND}/s2 state maint")
        self.assertEqual(answer.strip(), "", answer)
        self.wait(lambda: s.live()["s2"] == "maint", 5, "s2 in maintenance")

        start = self.cycle("s2")

        self.assertEqual(s.live()["s2"], "maint", "autoheal took the operator's server out of maintenance")
        self.assertEqual(s.haproxy_cfg.read_text(), original, "autoheal wrote over the operator's server")
        self.assertEqual((s.live()["s1"], s.live()["s3"]), ("ready", "ready"))
        actions = s.relay_actions(since=start)
        self.assertFalse([a for a in actions if a.outcome == "failed"], f"a run failed: {actions}")


if __name__ == "__main__":
    unittest.main()
