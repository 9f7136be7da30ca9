# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The problems of a list of autoheal actions, checked all at once before any of them runs."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.autoheal.haproxy.plugins.plugin_utils.values import is_list

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
  - Names and the reason keep to the alphabets autoheal-relay enforces on alert labels (C(server),
    C(backend)) ASCII letters, digits, C(.), C(_), C(-), C(:), starting with a letter or digit, no C(..), at
    most 128 characters; C(address) a host name or IP address, with an optional port; C(reason.alert) the
    same as a name plus spaces; C(reason.fingerprint) hexadecimal), so that a value that did not come
    through the relay (AWX, a person running the playbook) cannot carry a template or a command either.
options:
  _input:
    description: The actions.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Give a module the list only if every action is fine (checked_actions raises the problems otherwise)
  autoheal.haproxy.server:
    path: /etc/haproxy/haproxy.cfg
    changes: "{{ autoheal_actions | autoheal.haproxy.checked_actions }}"

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
# The alphabets of autoheal-relay's label check (rust/crates/autoheal-relay/src/label.rs); the shared
# cases in tests/unit/plugins/filter/label_alphabet.json keep the two the same.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
ALERT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9 ._:-]{0,127}\Z")
FINGERPRINT = re.compile(r"^[0-9A-Fa-f]{1,64}\Z")
PORT = re.compile(r"^[0-9]{1,5}\Z")


def is_name(value):
    """A server or backend name as the relay accepts it from a label."""
    return isinstance(value, str) and bool(NAME.match(value)) and ".." not in value


def is_host(value):
    """A host name (RFC 1123 labels) or an IP address."""
    if not isinstance(value, str) or not value or len(value) > 253:
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return all(HOST_LABEL.match(label) for label in value.split("."))


def is_address(value):
    """A host, optionally with a port: ``host:port``, ``[v6]:port``."""
    if not isinstance(value, str):
        return False
    if value.startswith("["):
        host, dummy, port = value[1:].partition("]:")
        return is_host(host) and ":" in host and bool(PORT.match(port)) and 0 < int(port) < 65536
    if is_host(value):
        return True
    host, dummy, port = value.rpartition(":")
    return is_host(host) and bool(PORT.match(port)) and 0 < int(port) < 65536


def is_alert_name(value):
    """An alert name as the relay accepts it (a name, and spaces)."""
    return isinstance(value, str) and bool(ALERT.match(value)) and ".." not in value


def is_fingerprint(value):
    return isinstance(value, str) and bool(FINGERPRINT.match(value))


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
    if not is_list(actions):
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
        for key, valid in (("server", is_name), ("address", is_address), ("backend", is_name)):
            if key not in action:
                continue
            if not isinstance(action[key], str) or not action[key]:
                problems.append("%s.%s must be a non-empty string" % (where, key))
            elif not valid(action[key]):
                problems.append("%s.%s has characters or a form autoheal-relay never sends" % (where, key))
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
        if "reason" in action:
            problems.extend(reason_problems(action["reason"], where))
    return problems


def reason_problems(reason, where):
    if not isinstance(reason, Mapping):
        return ["%s.reason must be an object (alert, fingerprint, status)" % where]
    problems = []
    if "alert" in reason and not is_alert_name(reason["alert"]):
        problems.append("%s.reason.alert has characters autoheal-relay never sends" % where)
    if "fingerprint" in reason and not is_fingerprint(reason["fingerprint"]):
        problems.append("%s.reason.fingerprint must be hexadecimal" % where)
    if "status" in reason and reason["status"] not in ("firing", "resolved"):
        problems.append("%s.reason.status must be firing or resolved" % where)
    return problems


def checked_actions(actions):
    """``actions`` as they are when every one is fine; otherwise an error naming every problem, so that the task
    given the list fails before its module runs (the role's check costs no task of its own)."""
    problems = action_problems(actions)
    if problems:
        raise AnsibleFilterError("Refusing to change anything: %s" % "; ".join(problems))
    return actions


class FilterModule:
    """autoheal.haproxy filters."""

    def filters(self):
        return {"action_problems": action_problems, "checked_actions": checked_actions}
