# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the action plugins find out which binary to run: facts, the local machine, or uname on the target."""

from __future__ import annotations

import os
from types import SimpleNamespace

from ansible_collections.autoheal.haproxy.plugins.plugin_utils.binary_module import (
    BinaryModuleAction,
    PlatformUnknownError,
    normalise_platform,
    rust_target,
    shipped_binaries,
)


class FakeAction(BinaryModuleAction):
    """Only what _target_platform touches: the task, the connection, and the low-level command runner."""

    MODULE = "server"

    def __init__(self, transport, uname_result=None, delegate_to=None):  # pylint: disable=super-init-not-called
        self._task = SimpleNamespace(delegate_to=delegate_to)
        self._connection = SimpleNamespace(transport=transport)
        self._uname_result = uname_result
        self.commands = []

    def _low_level_execute_command(self, cmd, sudoable=True, *args, **kwargs):  # pylint: disable=keyword-arg-before-vararg
        self.commands.append(cmd)
        return self._uname_result


def test_remote_targets_are_asked_with_uname():
    action = FakeAction("ssh", {"rc": 0, "stdout": "Linux aarch64\n", "stderr": ""})
    system, arch, seen = action._target_platform({})
    assert (system, arch) == ("linux", "aarch64")
    assert action.commands == ["uname -s -m"]
    assert "uname -s -m: Linux aarch64" == seen


def test_a_failing_uname_is_a_clear_error():
    action = FakeAction("ssh", {"rc": 127, "stdout": "", "stderr": "uname: not found"})
    try:
        action._target_platform({})
    except PlatformUnknownError as err:
        assert "rc=127" in str(err) and "uname: not found" in str(err)
    else:
        raise AssertionError("no error for a failing uname")


def test_a_local_connection_reads_this_machine_without_running_anything():
    for delegate_to in (None, "localhost"):
        action = FakeAction("local", delegate_to=delegate_to)
        system, arch = action._target_platform({})[:2]
        assert (system, arch) == normalise_platform(os.uname().sysname, os.uname().machine)
        assert action.commands == []


def test_facts_win_for_the_host_itself_but_not_when_delegated():
    facts = {"ansible_facts": {"system": "FreeBSD", "architecture": "amd64"}}
    assert FakeAction("ssh")._target_platform(facts)[:2] == ("freebsd", "x86_64")
    delegated = FakeAction("ssh", {"rc": 0, "stdout": "Linux x86_64", "stderr": ""}, delegate_to="lb2")
    assert delegated._target_platform(facts)[:2] == ("linux", "x86_64")
    assert delegated.commands == ["uname -s -m"]


def test_names_and_targets():
    assert normalise_platform("Darwin", "arm64") == ("darwin", "aarch64")
    assert rust_target("linux", "armv7l") == "armv7-unknown-linux-gnueabihf"
    assert rust_target("linux", "riscv64") == "riscv64gc-unknown-linux-gnu"
    assert rust_target("darwin", "aarch64") == "aarch64-apple-darwin"


def test_shipped_binaries_tell_server_from_server_info(tmp_path):
    for name in ("server.py", "server_linux_x86_64", "server_info_linux_x86_64", "server_darwin_aarch64"):
        (tmp_path / name).write_text("")
    assert shipped_binaries(str(tmp_path), "server") == ["server_darwin_aarch64", "server_linux_x86_64"]
    assert shipped_binaries(str(tmp_path), "server_info") == ["server_info_linux_x86_64"]
    assert shipped_binaries(str(tmp_path / "missing"), "server") == []
