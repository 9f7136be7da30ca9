"""Faults around the loop: duplicate notifications, the relay killed mid-run, HAProxy reloaded mid-run,
and a change that validation rejects."""

from __future__ import annotations

import hashlib
import json
import signal
import unittest

from lab import stack
from base import DRAINED, StackTestCase, no_failures_message, pause


class FaultsTest(StackTestCase):
    # Two Alertmanagers that do not gossip: every notification reaches the relay twice.
    extra_alertmanagers = 1
    # Runs started from scratch: a handed-over warm standby drains within ~150 ms, too short a run to be
    # interrupted on purpose. (The loop and storm tests run on the standby.)
    relay_extra = {"standby": False}

    def drained_both(self, server: str) -> bool:
        return self.stack.live()[server] in DRAINED and self.stack.in_file()[server] == "weight0"

    def test_duplicate_notifications_make_one_action(self) -> None:
        s = self.stack
        self.addCleanup(self.settle)
        start = stack.now()
        s.set_cpu("s1", 1.0)
        self.wait(lambda: self.drained_both("s1"), 60, "s1 drained")
        self.wait(
            lambda: len(s.tap.all("s1", "firing", after=start)) >= 2, 10, "both Alertmanagers notifying (the duplicate)"
        )
        pause(1)
        drains = [a for a in s.relay_actions(since=start) if a.server == "s1" and a.state == "drain"]
        self.assertEqual(len(drains), 1, drains)

        # And once more, the very body Alertmanager sent, after the action ran.
        _, body = s.tap.all("s1", "firing", after=start)[0]
        status, answer = s.post_alerts(body)
        self.assertLess(status, 300, answer)
        pause(2)
        drains = [a for a in s.relay_actions(since=start) if a.server == "s1" and a.state == "drain"]
        self.assertEqual(len(drains), 1, drains)
        self.assertGreaterEqual(stack.metric_sum(s.relay_metrics(), "alerts_deduplicated_total"), 1)

    def test_relay_killed_mid_run_resumes_after_restart(self) -> None:
        s = self.stack
        self.addCleanup(self.settle)
        self.addCleanup(lambda: s.sup.running("relay") or s.start_relay())
        start = stack.now()
        s.set_cpu("s2", 1.0)
        self.wait(lambda: s.relay_playbooks(), 60, "a remediation run (ansible-playbook) in progress")
        s.sup.stop("relay", sig=signal.SIGKILL)  # the relay and its runner, as a crashed unit
        self.assertFalse(self.drained_both("s2"), "the run finished before the kill: the test proves nothing")
        s.start_relay()
        self.wait(lambda: self.drained_both("s2"), 60, "s2 drained after the relay restarted")
        self.wait(
            lambda: [
                a
                for a in s.relay_actions(since=start)
                if a.server == "s2" and a.state == "drain" and a.outcome == "applied"
            ],
            60,
            "the history recording the resumed drain as applied",
        )

    def test_haproxy_reload_mid_run_keeps_the_change_and_the_traffic(self) -> None:
        s = self.stack
        self.addCleanup(self.settle)
        load = s.load(max_seconds=120)
        self.addCleanup(load.stop)
        self.wait(lambda: load.snapshot().total > 50, 15, "traffic through HAProxy")
        s.set_cpu("s3", 1.0)
        self.wait(lambda: s.relay_playbooks(), 60, "a remediation run (ansible-playbook) in progress")
        s.reload_haproxy()
        self.wait(lambda: self.drained_both("s3"), 60, "s3 drained across the reload")
        pause(1)
        self.assertIn(s.live()["s3"], DRAINED, "the drain did not survive the reload")
        s.set_cpu("s3", 0.1)
        self.wait(lambda: s.live()["s3"] == "ready" and s.in_file()["s3"] == "ready", 60, "s3 restored")
        total = load.stop()
        self.assertEqual(total.failed, 0, no_failures_message(total, load))

    def test_a_drain_the_validation_refuses_leaves_file_and_live_untouched_and_the_failure_reported(self) -> None:
        s = self.stack
        errorfile = s.haproxy_cfg.parent / "errors" / "503.http"
        saved = errorfile.read_bytes()
        self.addCleanup(self.settle)
        self.addCleanup(errorfile.write_bytes, saved)
        # haproxy.cfg names this file: without it, `haproxy -c` fails on any new version of the config.
        errorfile.unlink()
        before = s.haproxy_cfg.read_bytes()
        listing = sorted(p.name for p in s.haproxy_cfg.parent.iterdir())
        start = stack.now()
        s.set_cpu("s1", 1.0)
        # The run fails; its action is then `retrying` (a retry is due) until its retries are used up.
        failed = self.wait(
            lambda: [
                a for a in s.relay_actions(since=start) if a.server == "s1" and a.outcome in ("retrying", "failed")
            ],
            60,
            "the run failing",
        )
        self.assertEqual(hashlib.sha256(s.haproxy_cfg.read_bytes()).hexdigest(), hashlib.sha256(before).hexdigest())
        self.assertEqual(
            sorted(p.name for p in s.haproxy_cfg.parent.iterdir()), listing, "files left behind next to haproxy.cfg"
        )
        # The drain went live before the file was validated; the refused file took it back, so nothing
        # is half-done (the relay retries the run).
        # A retry in flight may hold the drain for a moment: wait for it to be taken back too.
        self.wait(lambda: s.live()["s1"] == "ready", 15, "the live drain taken back")
        # The run's own output says why: the module's validation refused the new file.
        outputs = " ".join(
            path.read_text(errors="replace") for path in (s.relay_dir / "runs").glob("*/artifacts/*/stdout")
        )
        said = outputs + json.dumps([a.detail for a in failed])
        self.assertIn("validation failed", said, failed)
        self.assertIn("persisting the change failed", said, failed)
        self.assertIn("taken back", said, failed)


if __name__ == "__main__":
    unittest.main()
