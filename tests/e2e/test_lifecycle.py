"""A server that keeps failing, alerted on its error rate with the collection's own rule, over its whole
life cycle on the real stack: drained, its restore deferred while its health check fails, restored in
ramp steps, straight back out when it fails during the ramp (with a longer hold-down), quarantined the
third time, restored by `release`. A restart of the relay during the deferral, the hold-down and the
quarantine keeps each."""

from __future__ import annotations

import unittest

from lab import stack
from base import DRAINED, StackTestCase, no_failures_message

SICK = "s2"
TARGET = f"{stack.HAPROXY_BACKEND}/{SICK}"
WEIGHT = 10
HOLD_DOWN_SECS = 6
RAMP_STEP_SECS = 12
# Short enough for one test, long enough that each step is seen: a run takes seconds here.
LIFECYCLE = f"""hold_down_base_secs = {HOLD_DOWN_SECS}
hold_down_max_secs = 60
quarantine_after = 3
defer_retry_secs = 2
defer_retry_max_secs = 2
ramp_percent = [50, 100]
ramp_step_secs = {RAMP_STEP_SECS}
"""
ALERT = "AutohealServerErrorRate"
# The sick server's own answers are the only failures clients may see.
OWN_ERRORS = f"HTTP 500 from {SICK}"
# HAProxy's srv_op_state.
DOWN, UP = "0", "2"
# The time stamps come from two clocks read milliseconds apart (the relay's, the journal's).
SLACK = 0.5


class LifecycleTest(StackTestCase):
    relay_extra = {"lifecycle": LIFECYCLE}
    server_weight = WEIGHT
    # The error-rate alert fires as soon as its rate does; the check-down alert is left out, so the failing
    # health check only gates the restore (it would otherwise keep the server out on its own).
    alerting_extra = {"autoheal_alerting_error_rate_for": "0s", "autoheal_alerting_server_down_enabled": False}

    def event(self, name: str, after: float, timeout: float = 60) -> dict:
        """The first life-cycle event ``name`` of the sick server after ``after``, awaited."""
        return self.wait(
            lambda: next((e for e in self.stack.relay_life_events(TARGET, after) if e["event"] == name
                          and e["at"] >= after), None),
            timeout, f"life-cycle event {name!r} of {TARGET}")

    def events_between(self, start: float, end: float) -> list[str]:
        return [e["event"] for e in self.stack.relay_life_events(TARGET, start) if start <= e["at"] <= end]

    def live_row(self) -> dict[str, str]:
        return self.stack.admin.servers_state()[SICK]

    def file_weight(self) -> str | None:
        """The ``weight`` the sick server's line in haproxy.cfg has (None: none)."""
        words = stack.file_servers(self.stack.haproxy_cfg.read_text())[SICK].split()
        return words[words.index("weight") + 1] if "weight" in words else None

    def assert_out(self, why: str) -> None:
        self.wait(lambda: stack.live_status(self.live_row()) in DRAINED and self.file_weight() == "0",
                  30, f"{SICK} out in HAProxy and in the file ({why})")

    def assert_serving_at(self, weight: int) -> None:
        self.wait(lambda: stack.live_status(self.live_row()) == "ready"
                  and self.live_row()["srv_uweight"] == str(weight), 30, f"{SICK} serving at weight {weight}")
        self.assertEqual(self.file_weight(), str(weight))

    def decisions(self, state: str, outcome: str, since: float) -> list[stack.Action]:
        return [a for a in self.stack.relay_actions(since)
                if a.server == SICK and a.state == state and a.outcome == outcome]

    def restart_relay(self) -> float:
        """Restart the relay, between runs as far as can be told (a run that ends in the stop's grace is
        carried through too; one cut in the middle is test_faults' subject)."""
        s = self.stack

        def idle() -> bool:
            series = s.relay_metrics()
            started = stack.metric_sum(series, "autoheal_relay_runs_started_total")
            return started == stack.metric_sum(series, "autoheal_relay_runs_finished_total")

        self.wait(idle, 60, "no run in progress")
        s.restart_relay()
        return stack.now()

    def phase_gauge(self, phase: str) -> float:
        return stack.metric_sum(self.stack.relay_metrics(), "autoheal_relay_targets{", f'phase="{phase}"')

    def test_a_flapping_server_is_deferred_ramped_held_down_longer_quarantined_and_released(self) -> None:
        s = self.stack
        self.addCleanup(self.settle)
        self.addCleanup(s.set_fault, SICK, "none")
        original = s.haproxy_cfg.read_text()
        load = s.load()
        self.addCleanup(load.stop)
        start = stack.now()

        # 1. It answers 500: the collection's error-rate rule fires and the relay drains it.
        s.set_fault(SICK, "errors")
        self.wait(lambda: SICK in s.firing(ALERT), 30, f"{ALERT} firing for {SICK}")
        first = self.event("drained", start)
        self.assertEqual(first["detail"], f"hold-down {HOLD_DOWN_SECS} s (remediation 1)")
        self.assert_out("first drain")
        # Now its health check fails too: drained, it gets no traffic, so its alert resolves.
        s.set_fault(SICK, "down")
        self.wait(lambda: self.live_row()["srv_op_state"] == DOWN, 15, f"HAProxy's check marking {SICK} DOWN")
        self.wait(lambda: SICK not in s.firing(ALERT), 30, f"{ALERT} resolved for {SICK}")

        # 2. The restore is deferred while the check fails, not before the hold-down is over.
        deferred = self.event("deferred", first["at"])
        self.assertGreaterEqual(deferred["at"], first["at"] + HOLD_DOWN_SECS - SLACK, "restored inside the hold-down")
        self.wait(lambda: self.decisions("enabled", "deferred", start), 10, "the restore decision shown deferred")
        self.assertEqual(stack.live_status(self.live_row()), "drain")
        self.assertEqual(self.file_weight(), "0")
        # A restart keeps the deferral: the relay tries again (and defers again) by itself.
        restarted = self.restart_relay()
        self.event("deferred", restarted)
        self.assertEqual(self.file_weight(), "0", "restored with a failing health check")

        # 3. It is well again: restored to half its weight, the first step.
        s.set_fault(SICK, "none")
        ramping = self.event("ramping", restarted)
        self.assertEqual(ramping["detail"], "50% of its weight")
        self.assert_serving_at(WEIGHT // 2)

        # 4. It fails during the ramp: straight back out, the hold-down doubled, no further step.
        s.set_fault(SICK, "errors")
        second = self.event("drained", ramping["at"])
        self.assertEqual(second["detail"], f"hold-down {2 * HOLD_DOWN_SECS} s (remediation 2)")
        self.assertNotIn("restored", self.events_between(ramping["at"], second["at"]))
        self.assert_out("second drain")
        s.set_fault(SICK, "none")
        # A restart in the hold-down keeps it.
        self.restart_relay()
        self.wait(lambda: SICK not in s.firing(ALERT), 30, f"{ALERT} resolved for {SICK}")
        ramping = self.event("ramping", second["at"])
        self.assertGreaterEqual(ramping["at"], second["at"] + 2 * HOLD_DOWN_SECS - SLACK,
                                "restored inside the doubled hold-down")
        self.assert_serving_at(WEIGHT // 2)
        restored = self.event("restored", ramping["at"])
        self.assertGreaterEqual(restored["at"], ramping["at"] + RAMP_STEP_SECS - SLACK, "the ramp skipped its step")
        self.assert_serving_at(WEIGHT)

        # 5. The third time within the window: quarantined; its resolve restores nothing.
        s.set_fault(SICK, "errors")
        quarantined = self.event("quarantined", restored["at"])
        self.assert_out("third drain")
        s.set_fault(SICK, "none")
        self.wait(lambda: SICK not in s.firing(ALERT), 30, f"{ALERT} resolved for {SICK}")
        self.wait(lambda: self.decisions("enabled", "held", quarantined["at"]), 30, "the restore held")
        # A restart keeps the quarantine: the relay reads it back and still holds the restore.
        restarted = self.restart_relay()
        self.wait(lambda: self.phase_gauge("quarantined") == 1, 15, "the relay counting one target quarantined")
        self.assertEqual(self.events_between(restarted, stack.now() + 1), [], "the restart changed the life cycle")
        self.assertEqual(stack.live_status(self.live_row()), "drain")
        self.assertEqual(self.file_weight(), "0")

        # 6. An operator's release restores it, through the health gate and the ramp.
        answer = s.relay_release(TARGET)
        self.assertIn("released", answer)
        released = self.event("released", restarted)
        self.event("ramping", released["at"])
        self.event("restored", released["at"])
        self.assert_serving_at(WEIGHT)
        self.assertEqual(s.live(), {name: "ready" for name in stack.SERVERS})
        self.assertEqual(s.haproxy_cfg.read_text(), original, "the last step did not give the line back")
        drains = self.decisions("drain", "applied", start)
        self.assertEqual(len(drains), 3, s.history_lines())

        # Clients saw nothing but the sick server's own 500s (before each drain took effect).
        snapshot = load.stop()
        self.assertGreater(snapshot.errors[OWN_ERRORS], 0, "the sick server never failed a request")
        others = snapshot.failed - snapshot.errors[OWN_ERRORS]
        self.assertEqual(others, 0, no_failures_message(snapshot, load))
        failed_runs = [a for a in s.relay_actions(start) if a.outcome == "failed"]
        self.assertFalse(failed_runs, failed_runs)


if __name__ == "__main__":
    unittest.main()
