# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""autoheal.haproxy.remediate_outcome/remediate_summary: one outcome per action from the module's batch result."""

from __future__ import annotations

from ansible_collections.autoheal.haproxy.plugins.filter.remediate_outcome import (
    FilterModule,
    remediate_outcome,
    remediate_summary,
)

ACTIONS = [
    {"backend": "app", "server": "web1", "state": "drain", "reason": {"alert": "NodeCpuBusy"}},
    {"server": "web2", "state": "absent"},
]


def test_each_action_gets_its_change_entry():
    result = {
        "changed": True, "guard": "passed", "live_in_sync": True, "msg": "both",
        "changes": [
            {"changed": True, "reload_required": False, "msg": "app/web1 drain: file was updated",
             "servers": ["app/web1"]},
            {"changed": False, "reload_required": True, "msg": "app/web2 absent: file already up to date",
             "servers": ["app/web2", "api/web2b"]},
        ],
    }
    outcome = remediate_outcome(result, ACTIONS)
    assert [o["changed"] for o in outcome] == [True, False]
    assert [o["reload_required"] for o in outcome] == [False, True]
    assert outcome[1]["servers"] == ["web2", "web2b"]
    assert outcome[1]["placed"] == ["app/web2", "api/web2b"]
    assert outcome[0]["action"] is ACTIONS[0]
    assert {o["guard"] for o in outcome} == {"passed"}
    assert not any(o["failed"] for o in outcome)
    assert remediate_summary(outcome) == [
        "changed: app/web1 drain: file was updated [NodeCpuBusy]",
        "ok: app/web2 absent: file already up to date",
    ]


def test_a_refused_list_marks_every_action_failed_with_the_module_message():
    result = {"failed": True, "changed": False, "msg": "changes[1]: no server matches server 'web2'"}
    outcome = remediate_outcome(result, ACTIONS)
    assert [o["failed"] for o in outcome] == [True, True]
    assert {o["msg"] for o in outcome} == {result["msg"]}
    assert all(o["servers"] == [] for o in outcome)
    assert not any(o["unavailable"] for o in outcome)
    assert remediate_summary(outcome)[0].startswith("FAILED: changes[1]")


def test_haproxy_not_answering_marks_every_action_unavailable():
    result = {"failed": True, "changed": False, "haproxy_unreachable": True,
              "msg": "admin socket /run/haproxy/admin.sock: `show servers state app` failed: Connection refused"}
    outcome = remediate_outcome(result, ACTIONS)
    assert [(o["failed"], o["unavailable"], o["changed"]) for o in outcome] == [(True, True, False)] * 2


def test_actions_that_are_not_a_list_have_no_outcome():
    refused = {"failed": True, "msg": "Refusing to change anything: autoheal_actions must be a list"}
    for actions in (5, "drain web1", {"server": "web1", "state": "drain"}, None):
        assert remediate_outcome(refused, actions) == []


def test_a_skipped_run_has_no_outcome_and_the_filters_are_registered():
    assert remediate_outcome({"skipped": True, "changed": False}, []) == []
    assert set(FilterModule().filters()) == {"remediate_outcome", "remediate_summary"}


def test_each_outcome_carries_the_standing_the_module_reported_for_its_action():
    drained = {"changed": False, "reload_required": False, "msg": "app/web1 deferred: its check is failing",
               "servers": ["app/web1"], "found": True, "check_status": "failing", "set_by": "autoheal",
               "slowstart": 2000, "health_gate": "deferred", "deferred": True,
               "deferred_reason": "its check is failing", "skipped": False, "skip_reason": None}
    typo = {"changed": False, "reload_required": False, "msg": "changes[1]: no server matches server 'web2'",
            "servers": [], "found": False, "check_status": "unknown", "set_by": None, "slowstart": None,
            "health_gate": None, "deferred": False, "deferred_reason": None, "skipped": False, "skip_reason": None}
    outcome = remediate_outcome({"changed": False, "guard": "passed", "changes": [drained, typo]}, ACTIONS)
    assert [(o["found"], o["deferred"], o["check_status"]) for o in outcome] == [
        (True, True, "failing"), (False, False, "unknown")]
    assert (outcome[0]["slowstart"], outcome[0]["set_by"], outcome[0]["health_gate"]) == (2000, "autoheal", "deferred")
    assert not any(o["failed"] for o in outcome)
    assert remediate_summary(outcome) == [
        "deferred: app/web1 deferred: its check is failing [NodeCpuBusy]",
        "not found: changes[1]: no server matches server 'web2'",
    ]
    skipped = dict(drained, deferred=False, skipped=True, skip_reason="operator_state", msg="app/web1 skipped")
    assert remediate_summary(remediate_outcome({"changes": [skipped]}, ACTIONS[:1]))[0].startswith("skipped: ")


def test_a_refused_list_has_no_standing():
    outcome = remediate_outcome({"failed": True, "msg": "guard"}, ACTIONS[:1])
    assert (outcome[0]["found"], outcome[0]["deferred"], outcome[0]["check_status"]) == (None, None, None)
