# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Documentation only: the module is a static binary (plugins/modules/__bin__/server_info_<system>_<arch>, built from
# rust/crates/autoheal-module) that the action plugin of the same name runs on the target.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: server_info
short_description: List HAProxy backends and servers, from haproxy.cfg and live
version_added: 0.1.0
description:
  - Reads an HAProxy configuration file and lists the servers of every C(backend) and C(listen) section, with
    the state the file gives them and what M(autoheal.haproxy.server) recorded about them.
  - With O(socket), adds each server's state in the running HAProxy, read with C(show servers state).
  - Read-only. Runs as a static binary on the target; no Python is needed there.
author:
  - autoheal.haproxy contributors (!UNKNOWN)
extends_documentation_fragment:
  - autoheal.haproxy.haproxy
options:
  path:
    description:
      - The HAProxy configuration file.
    type: str
    default: /etc/haproxy/haproxy.cfg
  backend:
    description:
      - Only list this C(backend) or C(listen) section.
    type: str
  socket:
    description:
      - Path of the HAProxy admin socket, to add the live state.
    type: str
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details:
      - The module only reads, so check mode returns the same result.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: N/A
    details:
      - The module changes nothing.
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
seealso:
  - module: autoheal.haproxy.server
"""

EXAMPLES = r"""
- name: List the servers of the app backend, with their live state
  autoheal.haproxy.server_info:
    backend: app
    socket: /run/haproxy/admin.sock
  register: haproxy_info

- name: Show the servers whose health check fails
  ansible.builtin.debug:
    msg: >-
      {{ haproxy_info.backends | map(attribute='servers') | flatten
         | selectattr('check_status', 'eq', 'failing') | map(attribute='name') | list }}

- name: Show the servers autoheal has taken out
  ansible.builtin.debug:
    msg: >-
      {{ haproxy_info.backends | map(attribute='servers') | flatten
         | selectattr('config.managed') | map(attribute='name') | list }}
"""

RETURN = r"""
path:
  description: The file read.
  returned: success
  type: str
  sample: /etc/haproxy/haproxy.cfg
checksum:
  description: The sha256 of the file, to pass as O(autoheal.haproxy.server#module:checksum) to a later change.
  returned: success
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
backends:
  description: The C(backend) and C(listen) sections that have servers, in file order.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The section's name.
      type: str
      sample: app
    servers:
      description: Its servers in file order, absent ones included.
      type: list
      elements: dict
      contains:
        name:
          description: The server's name.
          type: str
          sample: web1
        address:
          description: The address as written.
          type: str
          sample: 10.0.0.5:8080
        line:
          description: 1-based line number of the server line (of its marker comment when absent).
          type: int
          sample: 42
        config:
          description: The state the file gives the server.
          type: dict
          contains:
            weight:
              description: The weight in effect.
              type: int
            disabled:
              description: The C(disabled) keyword is in effect.
              type: bool
            backup:
              description: The C(backup) keyword is in effect.
              type: bool
            absent:
              description: The line is commented out by M(autoheal.haproxy.server).
              type: bool
            managed:
              description: What the module's marker records (V(drain), V(disabled), V(absent), V(weight 5),
                V(weight 50%)), or V(null).
              type: str
            original_weight:
              description: The weight before the module changed it.
              type: int
        live:
          description:
            - The server in the running HAProxy; V(null) without O(socket).
            - C(present) is V(false) when the running HAProxy does not know the server. Otherwise C(admin)
              (V(ready), V(drain) or V(maint)), C(active) (up, ready and weighted), C(op_state),
              C(admin_state), C(weight) and C(initial_weight) as C(show servers state) reports them.
          type: dict
        check_status:
          description:
            - HAProxy's health check of the server, V(passing), V(failing), V(none) or V(unknown), as
              RV(autoheal.haproxy.server#module:changes[].check_status) (V(unknown) without O(socket), unless the
              file gives the server no C(check)).
          type: str
          sample: passing
        set_by:
          description:
            - Who set the server's current state, V(autoheal) or V(operator), as
              RV(autoheal.haproxy.server#module:changes[].set_by); V(null) when it is in service as configured.
          type: str
          sample: operator
        slowstart:
          description: The C(slowstart) in effect for the server, in milliseconds, or V(null).
          type: int
          sample: 30000
"""
