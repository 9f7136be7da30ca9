# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waits on a FIFO for autoheal-relay's worker to hand a run's variables to a warm standby playbook."""

from __future__ import annotations

import json
import os
import select
import time

from ansible.plugins.action import ActionBase
from ansible.utils.unsafe_proxy import wrap_var

ARGUMENT_SPEC = {
    "channel": {"type": "path", "required": True},
    "timeout": {"type": "float", "default": 900},
    "owner_pid": {"type": "int"},
}
# How often the owner's presence is checked while waiting.
OWNER_CHECK_S = 1.0


class HandoffError(Exception):
    """The hand-off did not arrive, or is not one."""


def process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def receive(channel, timeout, owner_pid=None):
    """The vars of the JSON object one writer put into the FIFO ``channel`` (every string marked unsafe),
    read within ``timeout`` seconds, unless the process ``owner_pid`` (the only writer there will be) is gone
    first."""
    deadline = time.monotonic() + timeout
    try:
        # Non-blocking, so that opening never waits for a writer; poll() then waits for its data.
        fd = os.open(channel, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise HandoffError("cannot open the hand-off channel %s: %s" % (channel, err.strerror)) from err
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        chunks = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HandoffError("no hand-off on %s within %g s" % (channel, timeout))
            if not poller.poll(min(left, OWNER_CHECK_S) * 1000):
                if owner_pid is not None and not process_exists(owner_pid):
                    raise HandoffError("the process that was to hand over the run (pid %d) is gone" % owner_pid)
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        message = json.loads(b"".join(chunks))
    except ValueError as err:
        raise HandoffError("the hand-off on %s is not JSON: %s" % (channel, err)) from err
    if not isinstance(message, dict):
        raise HandoffError("the hand-off on %s is not an object" % channel)
    if "cancel" in message:
        raise HandoffError("the standby was retired: %s" % message["cancel"])
    if not isinstance(message.get("vars"), dict):
        raise HandoffError("the hand-off on %s has no vars object" % channel)
    # Values from alert labels: marked unsafe, so that nothing that uses them templates them.
    return wrap_var(message["vars"])


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        started = time.monotonic()
        try:
            result["vars"] = receive(args["channel"], args["timeout"], args["owner_pid"])
        except HandoffError as err:
            result.update(failed=True, msg=str(err))
        result.update(changed=False, waited=round(time.monotonic() - started, 3))
        return result
