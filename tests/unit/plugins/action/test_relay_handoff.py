# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The warm standby's side of the hand-off: one JSON object through a FIFO, or a clear reason why not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible_collections.autoheal.haproxy.plugins.action.relay_handoff import HandoffError, receive


def fifo(tmp_path):
    path = str(tmp_path / "handoff")
    os.mkfifo(path, 0o600)
    return path


def write_later(path, data, delay=0.1):
    def write():
        time.sleep(delay)
        fd = os.open(path, os.O_WRONLY)
        os.write(fd, data)
        os.close(fd)

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def refusal(path, timeout=5, owner_pid=None):
    try:
        receive(path, timeout, owner_pid)
    except HandoffError as err:
        return str(err)
    raise AssertionError("the hand-off was accepted")


def test_the_vars_arrive_whole_even_past_the_pipe_buffer(tmp_path):
    path = fifo(tmp_path)
    actions = [{"server": "web%d" % n, "state": "drain", "reason": {"alert": "x" * 200}} for n in range(500)]
    writer = write_later(path, json.dumps({"vars": {"autoheal_actions": actions}}).encode())
    assert receive(path, 5) == {"autoheal_actions": actions}
    writer.join()


def test_handed_over_strings_are_never_templated(tmp_path):
    # ansible-core 2.19 already distrusts strings from an action's result; older cores (the collection
    # supports 2.15+) template them unless they are marked unsafe.
    path = fifo(tmp_path)
    action = {"server": "web1", "state": "drain", "reason": {"alert": "{{ 6 * 7 }}"}}
    writer = write_later(path, json.dumps({"vars": {"autoheal_actions": [action]}}).encode())
    received = receive(path, 5)["autoheal_actions"][0]
    writer.join()
    assert Templar(loader=DataLoader()).template(received["reason"]["alert"]) == "{{ 6 * 7 }}"


def test_a_cancel_is_a_refusal_with_its_reason(tmp_path):
    path = fifo(tmp_path)
    writer = write_later(path, b'{"cancel": "the inventory changed"}')
    assert refusal(path) == "the standby was retired: the inventory changed"
    writer.join()


def test_garbage_is_refused(tmp_path):
    for data, why in ((b"not json", "is not JSON"), (b"[1]", "is not an object"), (b'{"vars": 3}', "no vars object")):
        path = fifo(tmp_path)
        writer = write_later(path, data, delay=0)
        assert why in refusal(path)
        writer.join()
        os.unlink(path)


def test_nothing_within_the_timeout(tmp_path):
    started = time.monotonic()
    assert "within 0.3 s" in refusal(fifo(tmp_path), timeout=0.3)
    assert time.monotonic() - started < 2


def test_the_wait_ends_when_the_owner_is_gone(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    # Reaped as soon as it exits, as the relay reaps its worker (a zombie would still count as there).
    reaper = threading.Thread(target=owner.wait)
    reaper.start()
    started = time.monotonic()
    why = refusal(fifo(tmp_path), timeout=60, owner_pid=owner.pid)
    reaper.join()
    assert "(pid %d) is gone" % owner.pid in why
    assert time.monotonic() - started < 5


def test_a_missing_channel_is_named(tmp_path):
    assert "cannot open the hand-off channel" in refusal(str(tmp_path / "missing"))
