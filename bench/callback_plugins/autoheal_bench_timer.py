# Benchmark-only Ansible callback: appends one JSON line per playbook/task event, with a wall-clock
# timestamp, to the file named by $AUTOHEAL_BENCH_EVENTS. Used identically on both paths so that the
# "ansible start" and "apply" stages are measured the same way.
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: autoheal_bench_timer
type: aggregate
short_description: timestamps playbook and task events for bench/loop.py
description: Writes JSON lines (event, task, action, time) to the file in AUTOHEAL_BENCH_EVENTS.
requirements: [AUTOHEAL_BENCH_EVENTS set in the environment]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "autoheal_bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, event: str, task: object = None) -> None:
        path = os.environ.get("AUTOHEAL_BENCH_EVENTS")
        if not path:
            return
        record = {"event": event, "time": time.time(), "pid": os.getpid()}
        if task is not None:
            record["task"] = task.get_name()
            record["action"] = task.action
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")

    def v2_playbook_on_start(self, playbook):
        self._write("playbook_start")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._write("task_start", task)

    def v2_playbook_on_handler_task_start(self, task):
        self._write("task_start", task)

    def v2_runner_on_ok(self, result):
        self._write("task_ok", result._task)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write("task_failed", result._task)

    def v2_playbook_on_stats(self, stats):
        self._write("playbook_end")
