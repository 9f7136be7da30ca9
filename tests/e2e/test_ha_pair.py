"""An HA pair of load balancers: two HAProxy instances (inventory hosts lb1 and lb2, each with its own
config, admin socket and frontend) before the same three backends, driven by one relay and one playbook."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import unittest

from lab import stack
from base import DRAINED, StackTestCase, no_failures_message, pause
from lab.stack import SERVERS

LB1, LB2 = 0, 1


class HaPairTest(StackTestCase):
    nodes = 2
    # Per node, the module keeps at least one server active; the relay lets two servers out at once.
    min_active = 1
    # Retries every 2 s, long enough for a stopped node to come back.
    relay_extra = {"max_out": 2, "retry": (15, 2000)}

    def node_state(self, node: int, server: str) -> tuple[str, str]:
        """(live, file) state of ``server`` on load balancer ``node``."""
        return self.stack.node_live(node)[server], self.stack.node_in_file(node)[server]

    def drained_on(self, node: int, server: str) -> bool:
        live, in_file = self.node_state(node, server)
        return live in DRAINED and in_file == "weight0"

    def ready_on(self, node: int, server: str) -> bool:
        return self.node_state(node, server) == ("ready", "ready")

    def settle(self) -> None:
        for name in SERVERS:
            self.stack.set_cpu(name, 0.1)
        self.wait(lambda: not self.stack.firing(), 60, "no alert firing")
        for node in (LB1, LB2):
            self.wait(
                lambda n=node: all(self.ready_on(n, name) for name in SERVERS), 60, f"every server ready on lb{node + 1}"
            )

    def drains_of(self, server: str, since: float) -> list[stack.Action]:
        return [a for a in self.stack.relay_actions(since) if a.server == server and a.state == "drain"]

    def test_drain_and_restore_reach_both_nodes_with_no_failed_request(self) -> None:
        s = self.stack
        originals = [s.node_cfg(node).read_text() for node in (LB1, LB2)]
        loads = [s.load(node, max_seconds=300) for node in (LB1, LB2)]
        for load in loads:
            self.addCleanup(load.stop)
        self.wait(lambda: all(load.snapshot().total > 50 for load in loads), 15, "traffic through both")

        start = stack.now()
        s.set_cpu("s2", 1.0)
        for node in (LB1, LB2):
            self.wait(lambda n=node: self.drained_on(n, "s2"), 60, f"s2 drained on lb{node + 1} (file and live)")
            self.assertTrue(self.ready_on(node, "s1") and self.ready_on(node, "s3"))
        pause(0.5)  # a request already on its way to s2 may still finish
        before = [load.snapshot() for load in loads]
        pause(2)
        for node, load in enumerate(loads):
            served = load.snapshot().minus(before[node]).served
            self.assertEqual(served["s2"], 0, f"lb{node + 1} still sends new requests to s2: {served}")

        s.set_cpu("s2", 0.1)
        for node in (LB1, LB2):
            self.wait(lambda n=node: self.ready_on(n, "s2"), 60, f"s2 back on lb{node + 1} (file and live)")
            self.assertEqual(s.node_cfg(node).read_text(), originals[node], f"lb{node + 1}'s file not given back")
        for node, load in enumerate(loads):
            total = load.stop()
            self.assertEqual(total.failed, 0, f"lb{node + 1}: {no_failures_message(total, load)}")
            self.assertGreater(total.total, 200)
        # One decision each way for the server, however many load balancers carried it out.
        actions = self.wait(
            lambda: (found := [a for a in s.relay_actions(start) if a.server == "s2"])
            and all(a.outcome == "applied" for a in found)
            and found,
            30,
            "both decisions recorded as done",
        )
        self.assertEqual(sorted(a.state for a in actions), ["drain", "enabled"], actions)

    def test_budget_counts_a_server_once_however_many_nodes_drain_it(self) -> None:
        s = self.stack
        self.addCleanup(self.settle)
        start = stack.now()
        s.set_cpu("s1", 1.0)
        self.wait(lambda: self.drained_on(LB1, "s1") and self.drained_on(LB2, "s1"), 60, "s1 drained on both")
        # Two drains on two nodes so far: were they counted per node, the budget of two would be spent.
        s.set_cpu("s3", 1.0)
        self.wait(lambda: self.drained_on(LB1, "s3") and self.drained_on(LB2, "s3"), 60, "s3 drained on both")
        # Two servers out: the third is refused by the relay, on every node.
        s.set_cpu("s2", 1.0)
        self.wait(lambda: [a for a in s.relay_refusals(start) if a.server == "s2"], 60, "the relay refusing s2")
        pause(1)
        self.assertTrue(self.ready_on(LB1, "s2") and self.ready_on(LB2, "s2"))

    def test_guard_min_active_is_checked_on_each_node(self) -> None:
        s = self.stack
        admin2 = s.node_admin(LB2)
        # On lb2 only, s1 and s3 are in maintenance (an operator's doing): s2 is its last active server.
        for name in ("s1", "s3"):
            self.assertEqual(admin2.command(f"set server {stack.HAPROXY_BACKEND}/{name} state maint").strip(), "")
            self.addCleanup(admin2.command, f"set server {stack.HAPROXY_BACKEND}/{name} state ready")
        lb2_file = s.node_cfg(LB2).read_text()

        drain = self.playbook([{"backend": stack.HAPROXY_BACKEND, "server": "s2", "state": "drain"}])
        self.addCleanup(self.playbook, [{"backend": stack.HAPROXY_BACKEND, "server": "s2", "state": "enabled"}])
        self.assertNotEqual(drain.returncode, 0, drain.stdout)
        self.assertIn("guard blocked", drain.stdout)
        self.assertRegex(drain.stdout, r"lb2\s*: .*failed=1")
        self.assertRegex(drain.stdout, r"lb1\s*: .*failed=0")
        self.assertTrue(self.drained_on(LB1, "s2"), "lb1 has servers to spare: s2 should be drained there")
        self.assertEqual(s.node_live(LB2)["s2"], "ready")
        self.assertEqual(s.node_cfg(LB2).read_text(), lb2_file, "a refused action changed lb2's file")

    def test_a_node_down_when_the_drain_comes_gets_it_once_back(self) -> None:
        s = self.stack
        self.addCleanup(self.settle)
        self.addCleanup(lambda: s.sup.running("haproxy") or s.restart_node(LB1))
        lb1_file = s.node_cfg(LB1).read_text()
        # lb1 comes first in the rollout: its failure must not keep lb2 from being drained.
        s.stop_node(LB1)
        with self.assertRaises(OSError):
            s.node_admin(LB1).command("show info")
        load = s.load(LB2, max_seconds=300)
        self.addCleanup(load.stop)

        start = stack.now()
        s.set_cpu("s2", 1.0)
        self.wait(lambda: self.drained_on(LB2, "s2"), 60, "s2 drained on lb2 while lb1 is down")
        # The decision's detail names the partial run (its outcome moves on to `running` at each retry).
        partial = self.wait(
            lambda: [a for a in self.drains_of("s2", start) if "partial" in (a.detail or "")],
            60,
            "the run recorded as partial",
        )[0]
        self.assertIn("lb1", partial.detail or "", partial)
        self.assertNotIn("lb2 (", partial.detail or "", partial)
        self.assertEqual(s.node_cfg(LB1).read_text(), lb1_file, "lb1's file changed while its HAProxy was down")

        s.restart_node(LB1)
        self.wait(lambda: self.drained_on(LB1, "s2"), 60, "s2 drained on lb1 once it is back (the relay's retry)")
        drains = self.wait(
            lambda: [a for a in self.drains_of("s2", start) if a.outcome == "applied"] and self.drains_of("s2", start),
            30,
            "the drain recorded as done",
        )
        self.assertEqual(len(drains), 1, drains)
        self.assertIn("partial", drains[0].detail or "", "the history forgot the partial run")
        self.assertIn("lb1", drains[0].detail or "")
        for node in (LB1, LB2):
            out = [name for name in SERVERS if not self.ready_on(node, name)]
            self.assertEqual(out, ["s2"], f"lb{node + 1}: only s2 may be out")
        total = load.stop()
        self.assertEqual(total.failed, 0, no_failures_message(total, load))

    def test_a_hand_edited_file_is_still_edited_exactly_and_the_other_node_is_unaffected(self) -> None:
        s = self.stack
        lb1_file, lb2_original = s.node_cfg(LB1).read_text(), s.node_cfg(LB2).read_text()
        self.addCleanup(s.node_cfg(LB2).write_text, lb2_original)
        self.addCleanup(self.settle)
        # Between runs, someone adds a comment and a server of their own to lb2's backend.
        edited = lb2_original.replace(
            "    option httpchk GET /health\n",
            "    option httpchk GET /health\n    # canary added by hand, not live yet\n"
            "    server canary 127.0.0.1:9 check disabled\n",
        )
        self.assertNotEqual(edited, lb2_original)
        s.node_cfg(LB2).write_text(edited)

        s.set_cpu("s2", 1.0)
        for node in (LB1, LB2):
            self.wait(lambda n=node: self.drained_on(n, "s2"), 60, f"s2 drained on lb{node + 1}")
        for node, before in ((LB1, lb1_file), (LB2, edited)):
            self.assert_only_s2_changed(before, s.node_cfg(node).read_text(), f"lb{node + 1}")
        self.assertNotIn("canary", s.node_cfg(LB1).read_text())

        s.set_cpu("s2", 0.1)
        for node in (LB1, LB2):
            self.wait(lambda n=node: self.ready_on(n, "s2"), 60, f"s2 back on lb{node + 1}")
        self.assertEqual(s.node_cfg(LB1).read_text(), lb1_file)
        self.assertEqual(s.node_cfg(LB2).read_text(), edited, "the hand edits did not survive on lb2")

    def assert_only_s2_changed(self, before: str, after: str, node: str) -> None:
        """Only s2's server line was replaced, with at most the module's `#autoheal` marker comment added
        above it; every other line is where and as it was."""
        old, new = before.splitlines(), after.splitlines()
        edits = [op for op in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes() if op[0] != "equal"]
        self.assertEqual(len(edits), 1, f"{node}: changes in several places: {edits}")
        _, a1, a2, b1, b2 = edits[0]
        self.assertEqual([line.split()[:2] for line in old[a1:a2]], [["server", "s2"]], f"{node}: {old[a1:a2]}")
        replaced = new[b1:b2]
        self.assertEqual(replaced[-1].split()[:2], ["server", "s2"], f"{node}: {replaced}")
        self.assertTrue(all(line.lstrip().startswith("#autoheal") for line in replaced[:-1]), f"{node}: {replaced}")

    def playbook(self, actions: list[dict]) -> subprocess.CompletedProcess:
        """The remediate playbook run directly on the pair's inventory (not through the relay)."""
        s = self.stack
        vars_file = s.dir / "direct-actions.json"
        vars_file.write_text(json.dumps({"autoheal_actions": actions}))
        return subprocess.run(
            [stack.VENV_BIN / "ansible-playbook", "-i", s.dir / "inventory.yml", "autoheal.haproxy.remediate",
             "-e", f"@{vars_file}"],
            env={**os.environ, **s.ansible_env()},
            capture_output=True,
            text=True,
            timeout=120,
        )


if __name__ == "__main__":
    unittest.main()
