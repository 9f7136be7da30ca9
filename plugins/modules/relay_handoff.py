#!/usr/bin/python
# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Documentation only: the work is done on the controller by plugins/action/relay_handoff.py.

from __future__ import annotations

DOCUMENTATION = r"""
module: relay_handoff
author:
  - autoheal.haproxy contributors (!UNKNOWN)
version_added: 0.1.0
short_description: Wait for autoheal-relay to hand a run's variables to a warm standby playbook
description:
  - Used by the playbook C(autoheal.haproxy.standby), which the relay's resident ansible-runner worker starts
    ahead of the next alert, so that C(ansible-playbook) has already started, read the inventory and parsed the
    playbooks when the alert arrives.
  - Blocks until the worker writes one JSON object to O(channel), a FIFO the worker created, then returns the
    run's variables in RV(vars). Not meant to be called by hand.
  - Runs on the controller; nothing is changed anywhere.
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
    details: It only reads from the channel.
options:
  channel:
    description: The FIFO to read the hand-off from.
    type: path
    required: true
  timeout:
    description:
      - Seconds to wait for the hand-off. The task fails when it passes, and so does the standby run (the worker
        starts a fresh one for the next alert).
    type: float
    default: 900
  owner_pid:
    description:
      - The process that will write the hand-off (the relay's worker). The task fails as soon as it is gone,
        so that a standby never outlives its worker.
    type: int
notes:
  - 'The worker writes C({"vars": {...}}) for a run, or C({"cancel": reason}) to retire the standby (for example
    after the inventory changed); a cancelled hand-off fails the task.'
seealso:
  - name: autoheal-relay
    description: docs/relay.md in the collection's repository describes the warm standby.
    link: https://github.com/autoheal/haproxy/blob/main/docs/relay.md
"""

EXAMPLES = r"""
- name: Receive the run's variables (first play of playbooks/standby.yml)
  autoheal.haproxy.relay_handoff:
    channel: "{{ autoheal_standby_channel }}"
  register: autoheal_standby_handoff
  run_once: true
"""

RETURN = r"""
vars:
  description: The variables of the run, as the relay would have passed them as extra variables.
  returned: success
  type: dict
  sample: {"autoheal_actions": [{"server": "web2", "backend": "app", "state": "drain"}]}
waited:
  description: Seconds spent waiting for the hand-off.
  returned: always
  type: float
"""
