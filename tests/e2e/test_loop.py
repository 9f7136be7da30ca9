"""The loop end to end: a sick server is drained live and in the file, traffic keeps flowing, and it
comes back when the alert resolves."""

from __future__ import annotations

import unittest

from lab import stack
from base import DRAINED, StackTestCase, no_failures_message, pause
from lab.stack import SERVERS


class LoopTest(StackTestCase):
    def test_sick_server_is_drained_then_restored_with_no_failed_request(self) -> None:
        s = self.stack
        original = s.haproxy_cfg.read_text()
        load = s.load(max_seconds=300)
        self.addCleanup(load.stop)
        self.wait(lambda: load.snapshot().total > 50, 15, "traffic through HAProxy")
        spread = load.snapshot()
        self.assertTrue(all(spread.served[name] > 0 for name in SERVERS), f"traffic not spread: {spread.served}")

        start = stack.now()
        s.set_cpu("s2", 1.0)
        self.wait(lambda: s.live()["s2"] in DRAINED, 60, "s2 drained on the runtime socket")
        self.wait(lambda: s.in_file()["s2"] == "weight0", 10, "s2 drained in haproxy.cfg")

        live, in_file = s.live(), s.in_file()
        self.assertEqual(
            {n: live[n] in DRAINED for n in SERVERS},
            {n: in_file[n] == "weight0" for n in SERVERS},
            f"file and live disagree: live {live}, file {in_file}",
        )
        self.assertEqual((live["s1"], live["s3"]), ("ready", "ready"))

        pause(0.5)  # a request already on its way to s2 when it was drained may still finish
        before = load.snapshot()
        pause(2)
        drained = load.snapshot().minus(before)
        self.assertEqual(drained.served["s2"], 0, f"s2 still gets new requests: {drained.served}")
        self.assertGreater(drained.served["s1"], 0)
        self.assertGreater(drained.served["s3"], 0)

        backups = [
            path
            for path in s.haproxy_cfg.parent.iterdir()
            if path.is_file()
            and path != s.haproxy_cfg
            and path.name.startswith("haproxy.cfg")
            and path.read_text(errors="replace") == original
        ]
        self.assertTrue(
            backups,
            f"no backup of the original haproxy.cfg in {sorted(p.name for p in s.haproxy_cfg.parent.iterdir())}",
        )

        s.set_cpu("s2", 0.1)
        self.wait(lambda: s.live()["s2"] == "ready", 60, "s2 back in service on the runtime socket")
        self.wait(lambda: s.in_file()["s2"] == "ready", 10, "s2 back in service in haproxy.cfg")
        self.assertEqual(s.haproxy_cfg.read_text(), original, "the restore did not give back the original file")

        before = load.snapshot()
        pause(2)
        self.assertGreater(load.snapshot().minus(before).served["s2"], 0, "s2 gets no traffic after the restore")
        total = load.stop()
        self.assertEqual(total.failed, 0, no_failures_message(total, load))
        # No reload happened, so no connection was closed under a client: not even a resend was needed.
        self.assertEqual(total.retried, 0)
        self.assertGreater(total.total, 500)

        actions = s.relay_actions(since=start)
        drains = [a for a in actions if a.server == "s2" and a.state == "drain" and a.outcome == "applied"]
        restores = [a for a in actions if a.server == "s2" and a.state == "enabled" and a.outcome == "applied"]
        self.assertEqual(len(drains), 1, f"history: {actions}")
        self.assertEqual(len(restores), 1, f"history: {actions}")
        self.assertFalse([a for a in actions if a.server in ("s1", "s3")], f"unexpected actions: {actions}")
        # The drain, the first run since the relay started, ran on the standby primed at start; the restore ran
        # on the one the drain's run left behind.
        self.assertIn("warm standby", s.relay_run_detail(s.relay_run("s2", "drain", start)))
        self.assertIn("warm standby", s.relay_run_detail(s.relay_run("s2", "enabled", start)))

        metrics = s.relay_metrics()
        finished = stack.metric_sum(metrics, "runs_finished_total")
        self.assertGreaterEqual(stack.metric_sum(metrics, "runs_finished_total", 'result="successful"'), 2, metrics)
        self.assertEqual(finished, stack.metric_sum(metrics, "runs_finished_total", 'result="successful"'), metrics)
        self.assertGreaterEqual(stack.metric_sum(metrics, "actions_decided_total", 'state="drain"'), 1, metrics)
        self.assertGreaterEqual(stack.metric_sum(metrics, "actions_decided_total", 'state="enabled"'), 1, metrics)


if __name__ == "__main__":
    unittest.main()
