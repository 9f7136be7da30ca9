# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The remediate role's per-action outcome, built from the module's result in one pass."""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.autoheal.haproxy.plugins.plugin_utils.values import is_list

DOCUMENTATION = r"""
name: remediate_outcome
author: autoheal.haproxy contributors
version_added: 0.1.0
short_description: One outcome per autoheal action, from the result of M(autoheal.haproxy.server)
description:
  - Pairs each action of C(autoheal_actions) with its entry in the module's RV(autoheal.haproxy.server#module:changes)
    and keeps what the caller (autoheal-relay, AWX) reads. When the module failed before reporting each change
    (a refused list), every action carries the module's message.
  - Done in Python rather than in a Jinja loop, which costs tens of milliseconds per action list in ansible-core.
options:
  _input:
    description: The registered result of M(autoheal.haproxy.server) called with O(autoheal.haproxy.server#module:changes).
    type: dict
    required: true
  actions:
    description:
      - The actions the module was given.
      - Anything but a list (refused by C(autoheal.haproxy.checked_actions) before the module ran) gives no outcome.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Publish the outcome
  ansible.builtin.set_fact:
    outcome: "{{ result | autoheal.haproxy.remediate_outcome(autoheal_actions) }}"
"""

RETURN = r"""
_value:
  description:
    - One entry per action, in order, with C(action), C(changed), C(failed), C(guard), C(reload_required),
      C(live_in_sync), C(servers) (names), C(placed) (the same as C(backend/server)), C(unavailable) (HAProxy did not answer on the admin socket, so
      nothing was changed on this load balancer) and C(msg).
    - And, from the module's entry for the action (see RV(autoheal.haproxy.server#module:changes)), C(found),
      C(check_status), C(set_by), C(slowstart), C(health_gate), C(deferred), C(deferred_reason), C(skipped) and
      C(skip_reason). They are C(null) when the module reported no entry (it failed before planning).
  type: list
  elements: dict
"""


# What the module says about each action's server beyond `changed`, passed through as it reports it.
STANDING = ("found", "check_status", "set_by", "slowstart", "health_gate", "deferred", "deferred_reason",
            "skipped", "skip_reason")


def remediate_outcome(result, actions):
    """One outcome per action: what was asked and what the module said about it."""
    result = result if isinstance(result, Mapping) else {}
    if not is_list(actions):
        # Refused by checked_actions before the module ran: nothing to pair; the result says why.
        return []
    per_change = result.get("changes") or []
    failed = bool(result.get("failed", False))
    outcome = []
    for index, action in enumerate(actions):
        entry = per_change[index] if index < len(per_change) else {}
        outcome.append({
            "action": action,
            "changed": bool(entry.get("changed", False)),
            "failed": failed,
            "guard": result.get("guard"),
            "reload_required": bool(entry.get("reload_required", False)),
            "live_in_sync": result.get("live_in_sync"),
            "unavailable": bool(result.get("haproxy_unreachable", False)),
            "servers": [name.split("/", 1)[-1] for name in entry.get("servers", [])],
            # The same servers with their backends: where the servers really are, whatever the alert's labels said.
            "placed": list(entry.get("servers", [])),
            "msg": entry.get("msg", result.get("msg", "")),
        })
        outcome[-1].update((key, entry.get(key)) for key in STANDING)
    return outcome


def remediate_summary(outcome):
    """One line per outcome: changed/ok/FAILED, what the module did, and the alert behind the action."""
    lines = []
    for entry in outcome:
        if entry["failed"]:
            word = "FAILED"
        elif entry.get("found") is False:
            word = "not found"
        elif entry.get("deferred"):
            word = "deferred"
        elif entry.get("skipped"):
            word = "skipped"
        else:
            word = "changed" if entry["changed"] else "ok"
        reason = entry["action"].get("reason")
        alert = reason.get("alert") if isinstance(reason, Mapping) else None
        lines.append("%s: %s%s" % (word, entry["msg"], " [%s]" % alert if alert else ""))
    return lines


class FilterModule:
    """autoheal.haproxy filters."""

    def filters(self):
        return {"remediate_outcome": remediate_outcome, "remediate_summary": remediate_summary}
