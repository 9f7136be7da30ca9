# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The problems of a list of autoheal actions, checked all at once before any of them runs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

DOCUMENTATION = r"""
name: action_problems
author: autoheal.haproxy contributors
version_added: 0.1.0
short_description: What is wrong with a list of autoheal actions
description:
  - Checks every action of a list such as autoheal-relay sends (the role C(autoheal.haproxy.remediate)'s
    C(autoheal_actions)) and returns one message per problem, so that all of them can be reported before
    anything is changed.
  - An action is an object with exactly one of C(server) and C(address), optionally C(backend), a C(state)
    (C(enabled), C(drain), C(disabled) or C(absent)), a C(weight) (only with C(state=enabled); an integer
    0 to 256 or a percentage 0% to 100%, as M(autoheal.haproxy.server) takes it) and a C(reason) object.
options:
  _input:
    description: The actions.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Refuse the whole list when one action is malformed
  ansible.builtin.assert:
    that: autoheal_actions | autoheal.haproxy.action_problems | length == 0
    fail_msg: "{{ autoheal_actions | autoheal.haproxy.action_problems | join('; ') }}"
"""

RETURN = r"""
_value:
  description: One message per problem, naming the action by its index; empty when every action is fine.
  type: list
  elements: str
"""

STATES = ("enabled", "drain", "disabled", "absent")
KEYS = ("server", "address", "backend", "state", "weight", "reason")
WEIGHT = re.compile(r"^\s*([0-9]+)\s*(%?)\s*$")


def weight_problem(weight):
    """Why ``weight`` is not a weight M(autoheal.haproxy.server) accepts, or None."""
    if isinstance(weight, bool) or not isinstance(weight, (int, str)):
        return "must be an integer 0..256 or a percentage like 50%"
    match = WEIGHT.match(str(weight))
    if not match:
        return "must be an integer 0..256 or a percentage like 50%"
    value, percent = int(match.group(1)), match.group(2) == "%"
    if percent and value > 100:
        return "%s%% is out of range (0%% to 100%%)" % value
    if not percent and value > 256:
        return "%s is out of range (0 to 256)" % value
    return None


def action_problems(actions):
    """One message per problem found in ``actions``; an empty list when all of them are fine."""
    if isinstance(actions, (str, bytes, Mapping)) or not isinstance(actions, Sequence):
        return ["autoheal_actions must be a list"]
    problems = []
    for index, action in enumerate(actions):
        where = "autoheal_actions[%d]" % index
        if not isinstance(action, Mapping):
            problems.append("%s is not an object" % where)
            continue
        unknown = sorted(str(key) for key in action if key not in KEYS)
        if unknown:
            problems.append("%s has unknown keys %s" % (where, ", ".join(unknown)))
        if ("server" in action) == ("address" in action):
            problems.append("%s needs exactly one of server and address" % where)
        for key in ("server", "address", "backend"):
            if key in action and (not isinstance(action[key], str) or not action[key]):
                problems.append("%s.%s must be a non-empty string" % (where, key))
        state = action.get("state")
        if state not in STATES:
            problems.append("%s.state must be one of %s" % (where, ", ".join(STATES)))
        if action.get("weight") is not None:
            if state != "enabled":
                problems.append("%s.weight is only allowed with state enabled" % where)
            else:
                why = weight_problem(action["weight"])
                if why:
                    problems.append("%s.weight %s" % (where, why))
        if "reason" in action and not isinstance(action["reason"], Mapping):
            problems.append("%s.reason must be an object (alert, fingerprint, status)" % where)
    return problems


class FilterModule:
    """autoheal.haproxy filters."""

    def filters(self):
        return {"action_problems": action_problems}
