"""Storm and guard: every server alerts at once; the budget keeps at least min_active serving and the
relay records what it refused."""

from __future__ import annotations

import time
import unittest

from lab import stack
from base import DRAINED, StackTestCase, no_failures_message, pause
from lab.stack import SERVERS


class StormTest(StackTestCase):
    def test_budget_keeps_min_active_serving_when_every_server_alerts(self) -> None:
        s = self.stack
        min_active = s.options.min_active
        load = s.load(max_seconds=300)
        self.addCleanup(load.stop)
        self.wait(lambda: load.snapshot().total > 50, 15, "traffic through HAProxy")

        start = stack.now()
        for name in SERVERS:
            s.set_cpu(name, 1.0)
        self.wait(lambda: len(s.firing()) == len(SERVERS), 60, "all three alerts firing")
        self.wait(lambda: s.relay_saw_all(start), 60, "the relay deciding on all three servers")
        self.wait(lambda: any(v in DRAINED for v in s.live().values()), 60, "the allowed drain applied")

        fewest_ready, deadline = len(SERVERS), time.monotonic() + 5
        while time.monotonic() < deadline:
            fewest_ready = min(fewest_ready, sum(v == "ready" for v in s.live().values()))
            time.sleep(0.05)
        self.assertGreaterEqual(fewest_ready, min_active)
        out_live = sorted(n for n, v in s.live().items() if v != "ready")
        out_file = sorted(n for n, v in s.in_file().items() if v != "ready")
        self.assertEqual(len(out_live), len(SERVERS) - min_active, s.live())
        self.assertEqual(out_live, out_file)

        before = load.snapshot()
        pause(2)
        storm = load.snapshot().minus(before)
        serving = [name for name in SERVERS if storm.served[name] > 0]
        self.assertGreaterEqual(len(serving), min_active, storm.served)

        refusals = s.relay_refusals(start)
        refused_servers = {r.server for r in refusals}
        self.assertEqual(refused_servers, set(SERVERS) - set(out_live), f"refusals: {refusals}")
        self.assertGreaterEqual(stack.metric_sum(s.relay_metrics(), "actions_refused_total"), len(refused_servers))

        self.settle()
        total = load.stop()
        self.assertEqual(total.failed, 0, no_failures_message(total, load))


if __name__ == "__main__":
    unittest.main()
