# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side dispatch of a module shipped as per-platform static binaries.

A module NAME of this collection is documented by ``plugins/modules/NAME.py`` and implemented by
binaries ``plugins/modules/__bin__/NAME_<system>_<arch>`` (for example ``server_linux_x86_64``). The
binaries sit in a directory whose name starts with ``__`` so that ansible-doc and ansible-test do not read
them as module sources; the plugin loader still finds them by their FQCN
(``autoheal.haproxy.__bin__.server_linux_x86_64``). The action plugin finds out which system and
architecture the target runs, and runs the matching binary. It holds no business logic: options, check mode
and diff mode are handled by the binary itself.
"""

from __future__ import annotations

import os
import re
import shutil
import stat

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

COLLECTION = "autoheal.haproxy"
# The binaries' directory under plugins/modules/, also the FQCN's subdirectory part.
BINARIES_DIR = "__bin__"

# Systems a binary may be built for (uname -s, lowercased). Listed so that the binaries of `server` and of
# `server_info` can be told apart by name (server_info_linux_x86_64 is not a `server` binary for system "info").
_SYSTEMS = ("linux", "darwin", "freebsd", "openbsd", "netbsd", "sunos", "aix")

# Spellings of the same architecture (uname -m on Linux and the BSDs, ansible_architecture on macOS) mapped
# to the one used in binary file names; anything else is used lowercased as it is.
_ARCH_ALIASES = {
    "amd64": "x86_64",
    "arm64": "aarch64",
}


def normalise_platform(system, machine):
    """Return the (system, arch) pair used in binary names for raw uname or fact values."""
    machine = machine.strip().lower()
    return system.strip().lower(), _ARCH_ALIASES.get(machine, machine)


def rust_target(system, arch):
    """The Rust target triple that builds a binary for this platform (best effort, for messages)."""
    if system == "linux":
        if arch.startswith("armv7"):
            return "armv7-unknown-linux-gnueabihf"
        return "%s-unknown-linux-gnu" % ("riscv64gc" if arch == "riscv64" else arch)
    if system == "darwin":
        return "%s-apple-darwin" % arch
    return "%s-unknown-%s" % (arch, system)


def shipped_binaries(modules_dir, module):
    """Names of the binaries of ``module`` that exist in ``modules_dir``, sorted."""
    pattern = re.compile(r"^%s_(%s)_[a-z0-9_]+$" % (re.escape(module), "|".join(_SYSTEMS)))
    try:
        entries = os.listdir(modules_dir)
    except OSError:
        return []
    return sorted(name for name in entries if pattern.match(name))


class BinaryModuleAction(ActionBase):
    """Base class: subclasses set ``MODULE`` to the short module name (for example ``server``)."""

    MODULE = ""

    # The binaries implement check mode and diff mode themselves; async goes through Ansible's wrapper.
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp

        try:
            system, arch, seen = self._target_platform(task_vars)
        except PlatformUnknownError as err:
            result.update(failed=True, msg=str(err))
            self._remove_tmp_path(self._connection._shell.tmpdir)
            return result

        binary = "%s_%s_%s" % (self.MODULE, system, arch)
        fqcn = "%s.%s.%s" % (COLLECTION, BINARIES_DIR, binary)
        if not self._shared_loader_obj.module_loader.find_plugin_with_context(fqcn, "").resolved:
            result.update(failed=True, msg=self._missing_binary_message(system, arch, seen, binary))
            self._remove_tmp_path(self._connection._shell.tmpdir)
            return result

        wrap_async = self._task.async_val and not self._connection.has_native_async
        result.update(self._execute_module(module_name=fqcn, module_args=self._task.args,
                                           task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    # On a local connection without become, the module runs on this machine as the user running Ansible: the
    # steps around it (expand ~, make the temporary directory, chmod, remove it) are done here rather than by
    # a shell each (three processes a step; ~25 ms of the module task's ~60 ms). Anything else is Ansible's.

    def _runs_as_controller_user(self):
        return self._connection.transport == "local" and not self._connection.become

    def _local_remote_tmp(self):
        """remote_tmp with ~ expanded as Ansible would (the remote user's home), or None if it cannot be here
        (a home that cannot be found, or shell syntax such as $HOME, which Ansible's own steps expand)."""
        path = self.get_shell_option("remote_tmp", default="~/.ansible/tmp")
        if "$" in path or "`" in path:
            return None
        if path.startswith("~"):
            first, sep, rest = path.partition(os.path.sep)
            if first == "~":
                first = "~%s" % (self._get_remote_user() or "")
            home = os.path.expanduser(first)
            if home.startswith("~"):
                return None
            path = home + sep + rest
        return path

    def _make_tmp_path(self, remote_user=None):
        base = self._local_remote_tmp() if self._runs_as_controller_user() else None
        if base is None:
            return super()._make_tmp_path(remote_user)
        tmpdir = os.path.join(base, self._connection._shell._generate_temp_dir_name())
        old_umask = os.umask(0o077)
        try:
            os.makedirs(base, exist_ok=True)
            os.mkdir(tmpdir)
        except OSError as err:
            raise AnsibleConnectionFailure("Failed to create the temporary directory %s: %s" % (tmpdir, err)) from err
        finally:
            os.umask(old_umask)
        self._cleanup_remote_tmp = True
        # With a trailing separator, as Ansible's own.
        self._connection._shell.tmpdir = tmpdir + os.path.sep
        return self._connection._shell.tmpdir

    def _fixup_perms2(self, remote_paths, remote_user=None, execute=True):
        if not self._runs_as_controller_user():
            return super()._fixup_perms2(remote_paths, remote_user, execute)
        if execute:
            for path in remote_paths:
                try:
                    os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | stat.S_IRWXU)
                except OSError as err:
                    raise AnsibleError("Failed to set permissions on %s: %s" % (path, err)) from err
        return remote_paths

    def _remove_tmp_path(self, tmp_path, force=False):
        if not self._runs_as_controller_user():
            return super()._remove_tmp_path(tmp_path, force)
        if tmp_path is None and self._connection._shell.tmpdir:
            tmp_path = self._connection._shell.tmpdir
        if force or self._should_remove_tmp_path(tmp_path):
            try:
                shutil.rmtree(tmp_path)
            except OSError as err:
                display.warning("Error deleting the temporary files in %s: %s" % (tmp_path, err))
            else:
                self._connection._shell.tmpdir = None
        return None

    def _target_platform(self, task_vars):
        """(system, arch, what was seen) of the host the module runs on: gathered facts, this machine, or uname.

        Facts are only trusted for the inventory host itself: with delegate_to the module runs elsewhere.
        """
        if not self._task.delegate_to:
            facts = task_vars.get("ansible_facts") or {}
            if facts.get("system") and facts.get("architecture"):
                system, arch = normalise_platform(facts["system"], facts["architecture"])
                return system, arch, "facts: system %s, architecture %s" % (facts["system"], facts["architecture"])

        # A local connection (delegated or not) runs the module on this very machine: no need to spawn uname.
        if self._connection.transport == "local":
            uname = os.uname()
            system, arch = normalise_platform(uname.sysname, uname.machine)
            return system, arch, "local connection: %s %s" % (uname.sysname, uname.machine)

        res = self._low_level_execute_command("uname -s -m", sudoable=False)
        words = res.get("stdout", "").split()
        if res.get("rc") != 0 or len(words) != 2:
            raise PlatformUnknownError(
                "%s.%s: could not determine the target's system and architecture: `uname -s -m` returned rc=%s, "
                "stdout=%r, stderr=%r" % (COLLECTION, self.MODULE, res.get("rc"), res.get("stdout", ""),
                                          res.get("stderr", "")))
        system, arch = normalise_platform(words[0], words[1])
        return system, arch, "uname -s -m: %s" % " ".join(words)

    def _missing_binary_message(self, system, arch, seen, binary):
        plugins_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        shipped = shipped_binaries(os.path.join(plugins_dir, "modules", BINARIES_DIR), self.MODULE)
        return (
            "%s.%s has no binary for this target (%s): plugins/modules/%s/%s does not exist in the collection. "
            "Binaries it has: %s. To add one, build on a %s/%s machine or with a cross toolchain "
            "(in rust/: RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target %s "
            "-p autoheal-module) and install the executable as plugins/modules/%s/%s, mode 0755; see the README."
            % (COLLECTION, self.MODULE, seen, BINARIES_DIR, binary, ", ".join(shipped) or "none",
               system, arch, rust_target(system, arch), BINARIES_DIR, binary)
        )


class PlatformUnknownError(Exception):
    """The target's system and architecture could not be determined."""
