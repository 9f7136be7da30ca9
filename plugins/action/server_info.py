# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the server_info_<system>_<arch> binary that matches the target (see plugin_utils/binary_module.py)."""

from __future__ import annotations

from ansible_collections.autoheal.haproxy.plugins.plugin_utils.binary_module import BinaryModuleAction


class ActionModule(BinaryModuleAction):
    MODULE = "server_info"
