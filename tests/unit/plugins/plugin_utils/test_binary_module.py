# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the action plugins find out which binary to run (facts, the local machine, or uname on the target), and how
they make the module's temporary directory on a local connection."""

from __future__ import annotations

import os
import pwd
import stat
from types import SimpleNamespace

from ansible.plugins.shell.sh import ShellModule

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


class FakeTmpAction(BinaryModuleAction):
    """What the temporary-directory steps touch: the connection (transport, become, shell), remote_tmp and the
    remote user; commands that would go to a shell are recorded and succeed."""

    MODULE = "server"

    def __init__(self, transport, remote_tmp, become=None):  # pylint: disable=super-init-not-called
        self._connection = SimpleNamespace(transport=transport, become=become, _shell=ShellModule())
        self._remote_tmp = remote_tmp
        self._cleanup_remote_tmp = False
        self.commands = []

    def get_shell_option(self, option, default=None):
        return self._remote_tmp if option == "remote_tmp" else default

    def _get_remote_user(self):
        return pwd.getpwuid(os.getuid()).pw_name

    def _low_level_execute_command(self, cmd, sudoable=True, *args, **kwargs):  # pylint: disable=keyword-arg-before-vararg
        self.commands.append(cmd)
        return {"rc": 0, "stdout": "", "stderr": ""}


def test_on_a_local_connection_the_temporary_directory_needs_no_shell(tmp_path):
    action = FakeTmpAction("local", str(tmp_path / "remote_tmp"))
    tmpdir = action._make_tmp_path()
    assert tmpdir.endswith(os.path.sep) and "-tmp-" in tmpdir
    assert os.path.dirname(tmpdir.rstrip(os.path.sep)) == str(tmp_path / "remote_tmp")
    assert stat.S_IMODE(os.stat(tmpdir).st_mode) == 0o700
    module = os.path.join(tmpdir, "AnsiballZ_server_linux_x86_64")
    with open(module, "w", encoding="utf-8"):
        pass
    os.chmod(module, 0o600)
    action._fixup_perms2([tmpdir, module])
    assert stat.S_IMODE(os.stat(module).st_mode) == 0o700
    action._remove_tmp_path(action._connection._shell.tmpdir)
    assert not os.path.exists(tmpdir) and action._connection._shell.tmpdir is None
    assert action.commands == []


def test_a_local_remote_tmp_under_home_is_the_remote_users_home():
    user = pwd.getpwuid(os.getuid())
    assert FakeTmpAction("local", "~/.ansible/tmp")._local_remote_tmp() == os.path.join(user.pw_dir, ".ansible/tmp")
    assert FakeTmpAction("local", "~%s/t" % user.pw_name)._local_remote_tmp() == os.path.join(user.pw_dir, "t")
    # A home that cannot be found here, or shell syntax, is left to Ansible's own steps.
    assert FakeTmpAction("local", "~no-such-user-autoheal/t")._local_remote_tmp() is None
    assert FakeTmpAction("local", "$HOME/.ansible/tmp")._local_remote_tmp() is None
    assert FakeTmpAction("local", "/tmp/`whoami`")._local_remote_tmp() is None


def test_with_become_or_on_another_host_the_shell_removes_the_directory(tmp_path):
    for action in (FakeTmpAction("ssh", str(tmp_path)), FakeTmpAction("local", str(tmp_path), become=object())):
        action._cleanup_remote_tmp = True
        action._remove_tmp_path("/home/ops/.ansible/tmp/ansible-tmp-1-2-3/")
        assert len(action.commands) == 1 and "rm -f -r" in action.commands[0]
