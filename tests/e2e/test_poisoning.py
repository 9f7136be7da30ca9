"""A budget that cannot be poisoned: an alert for a server that does not exist (a typo, a rename) does not
use up its backend's budget, and an alert without a `backend` label counts against the server's real
backend."""

from __future__ import annotations

import time
import unittest

from lab import stack
from base import DRAINED, StackTestCase

# Outcomes of a decision whose run has not ended yet.
UNFINISHED = ("pending", "running")


def alertmanager_payload(status: str, labels: dict[str, str], fingerprint: str) -> dict:
    """An Alertmanager webhook (version 4) carrying one alert, as Alertmanager sends it."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    alert = {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "e2e: posted by the test"},
        "startsAt": now,
        "endsAt": now if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1/graph",
        "fingerprint": fingerprint,
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{labels["alertname"]}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "autoheal-relay",
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [alert],
    }


class PoisoningTest(StackTestCase):
    # The stack's budget: one server of three out at a time (min_active 2). The relay knows the backend's
    # servers (guard.servers), so an alert without a backend label is counted where its server is.
    # Two sick servers of three would be a panic (more than half): off here, this test is about the budget.
    relay_extra = {"servers": True, "panic": "share_percent = 100"}

    def post(self, status: str, labels: dict[str, str], fingerprint: str) -> None:
        code, body = self.stack.post_alerts(alertmanager_payload(status, labels, fingerprint))
        self.assertLess(code, 300, body)

    def finished(self, server: str, state: str, since: float) -> list[stack.Action]:
        return [
            a
            for a in self.stack.relay_actions(since)
            if a.server == server and a.state == state and a.outcome not in UNFINISHED
        ]

    def test_an_unknown_server_does_not_use_up_the_budget_and_a_missing_backend_label_does_not_bypass_it(self) -> None:
        s = self.stack
        self.addCleanup(self.settle)
        typo = {"alertname": "AutohealNodeCpuBusy", "autoheal": "true", "server": "s9",
                "backend": stack.HAPROXY_BACKEND}
        unlabelled = {"alertname": "AutohealNodeCpuBusy", "autoheal": "true", "server": "s3"}
        self.addCleanup(self.post, "resolved", typo, "00000000000000a9")
        self.addCleanup(self.post, "resolved", unlabelled, "00000000000000a3")
        original = s.haproxy_cfg.read_text()

        start = stack.now()
        self.post("firing", typo, "00000000000000a9")
        # The run ends `done` and the module's `found: false` makes it `not_found` right after.
        typo_drain = self.wait(
            lambda: [a for a in self.finished("s9", "drain", start) if a.outcome == "not_found"],
            60, "the typo's drain recorded as not found")[0]
        self.assertEqual(typo_drain.outcome, "not_found", typo_drain)
        self.assertEqual(s.haproxy_cfg.read_text(), original, "a drain of a server that does not exist wrote the file")

        # The budget (one out) is still whole: a real sick server in the same backend is drained.
        s.set_cpu("s2", 1.0)
        self.wait(lambda: s.live()["s2"] in DRAINED and s.in_file()["s2"] == "weight0", 60, "s2 drained")

        # s3's alert has no backend label: it counts in s3's real backend, where the budget is spent.
        self.post("firing", unlabelled, "00000000000000a3")
        refused = self.wait(
            lambda: [a for a in s.relay_refusals(start) if a.server == "s3"], 60, "the relay refusing s3"
        )
        self.assertTrue(refused, refused)
        self.assertEqual(s.live()["s3"], "ready", "s3 was taken out although its backend's budget was spent")
        self.assertEqual(s.in_file()["s3"], "ready")


if __name__ == "__main__":
    unittest.main()
