# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The options and attributes that M(autoheal.haproxy.server) and M(autoheal.haproxy.server_info) share."""

    DOCUMENTATION = r"""
options:
  socket_timeout:
    description:
      - Seconds to wait for each exchange on O(socket).
    type: float
    default: 5
attributes:
  action_group:
    description: Use C(group/autoheal.haproxy.haproxy) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - autoheal.haproxy.haproxy
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
"""
