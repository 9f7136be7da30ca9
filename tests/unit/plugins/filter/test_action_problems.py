# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""autoheal.haproxy.action_problems: every problem of an action list, named by index, before anything runs."""

from __future__ import annotations

import json
import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.autoheal.haproxy.plugins.filter.action_problems import (
    FilterModule,
    action_problems,
    checked_actions,
    is_alert_name,
    is_fingerprint,
    is_host,
    is_name,
    weight_problem,
)

with open(os.path.join(os.path.dirname(__file__), "label_alphabet.json"), encoding="utf-8") as cases_file:
    ALPHABET_CASES = json.load(cases_file)
with open(os.path.join(os.path.dirname(__file__), "weight_grammar.json"), encoding="utf-8") as cases_file:
    WEIGHT_CASES = json.load(cases_file)


def test_well_formed_actions_have_no_problems():
    actions = [
        {"server": "web1", "state": "drain"},
        {"address": "10.0.0.7:80", "backend": "app", "state": "disabled"},
        {"server": "web2", "state": "enabled", "weight": 0},
        {"server": "web3", "state": "enabled", "weight": "256"},
        {"server": "web3", "state": "enabled", "weight": "50%"},
        {"server": "web4", "state": "enabled", "weight": None,
         "reason": {"alert": "BackendCpuHigh", "fingerprint": "ab12", "status": "firing"}},
        {"server": "web5", "state": "absent"},
    ]
    assert action_problems(actions) == []
    assert action_problems([]) == []


def test_not_a_list():
    for value in ("web1", {"server": "web1", "state": "drain"}, 3, None):
        assert action_problems(value) == ["autoheal_actions must be a list"]


def test_every_problem_of_every_action_is_reported_with_its_index():
    problems = action_problems([
        {"server": "web1", "state": "drain"},
        "web2",
        {"server": "web3", "address": "10.0.0.3", "state": "drain"},
        {"state": "drain"},
        {"server": "", "backend": 7, "state": "drain"},
        {"server": "web6", "state": "sleep", "colour": "red", "Zone": 1},
        {"server": "web7", "state": "drain", "weight": 5},
        {"server": "web8", "state": "drain", "reason": "cpu"},
    ])
    assert problems == [
        "autoheal_actions[1] is not an object",
        "autoheal_actions[2] needs exactly one of server and address",
        "autoheal_actions[3] needs exactly one of server and address",
        "autoheal_actions[4].server must be a non-empty string",
        "autoheal_actions[4].backend must be a non-empty string",
        "autoheal_actions[5] has unknown keys Zone, colour",
        "autoheal_actions[5].state must be one of enabled, drain, disabled, absent",
        "autoheal_actions[6].weight is only allowed with state enabled",
        "autoheal_actions[7].reason must be an object (alert, fingerprint, status)",
    ]


def test_weights_follow_the_module_rules():
    def problems_of(weight):
        return action_problems([{"server": "web1", "state": "enabled", "weight": weight}])

    for good in (0, 1, 256, "7", " 12 ", "0%", "100%", "25 %"):
        assert problems_of(good) == [], good
    assert problems_of(257) == ["autoheal_actions[0].weight 257 is out of range (0 to 256)"]
    assert problems_of("101%") == ["autoheal_actions[0].weight 101% is out of range (0% to 100%)"]
    for bad in (-1, 1.5, "x%", "", "5%%", True, [1], {"w": 1}):
        assert problems_of(bad) == ["autoheal_actions[0].weight must be an integer 0..256 or a percentage like 50%"], bad


def test_the_weight_grammar_is_the_relays_and_the_modules():
    for kind in ("accept", "accept_loose"):
        for case in WEIGHT_CASES[kind]:
            assert weight_problem(case["value"]) is None, (kind, case)
    for case in WEIGHT_CASES["out_of_range"]:
        assert "out of range" in weight_problem(case["value"]), case
    for value in WEIGHT_CASES["refuse"]:
        assert weight_problem(value) is not None, value


def test_the_filters_are_registered_under_their_names():
    assert FilterModule().filters() == {"action_problems": action_problems, "checked_actions": checked_actions}


def test_checked_actions_passes_a_good_list_through_and_refuses_a_bad_one_with_every_problem():
    good = [{"server": "web1", "state": "drain"}]
    assert checked_actions(good) is good
    with pytest.raises(AnsibleFilterError) as refused:
        checked_actions([{"server": "web1", "state": "sleep"}, {"server": "a", "address": "b", "state": "drain"}])
    message = str(refused.value)
    assert message.startswith("Refusing to change anything: autoheal_actions[0].state must be one of"), message
    assert "autoheal_actions[1] needs exactly one of server and address" in message, message


def test_the_alphabets_are_the_relays():
    checks = {"name": is_name, "host": is_host, "alert": is_alert_name, "fingerprint": is_fingerprint}
    for kind, check in checks.items():
        for value in ALPHABET_CASES[kind]["accept"]:
            assert check(value), (kind, value)
        for value in ALPHABET_CASES[kind]["refuse"]:
            assert not check(value), (kind, value)


def test_values_that_could_be_templated_or_run_are_problems():
    problems = action_problems([
        {"server": "{{ lookup('pipe', 'id') }}", "state": "drain"},
        {"server": "web1", "backend": "be;reboot", "state": "drain"},
        {"address": "10.0.0.1:80;id", "state": "drain"},
        {"server": "web1", "state": "drain",
         "reason": {"alert": "{% raw %}", "fingerprint": "zz", "status": "pending"}},
        {"address": "[::1]:9100", "state": "drain"},
        {"address": "web-1.example.com", "state": "drain"},
    ])
    assert problems == [
        "autoheal_actions[0].server has characters or a form autoheal-relay never sends",
        "autoheal_actions[1].backend has characters or a form autoheal-relay never sends",
        "autoheal_actions[2].address has characters or a form autoheal-relay never sends",
        "autoheal_actions[3].reason.alert has characters autoheal-relay never sends",
        "autoheal_actions[3].reason.fingerprint must be hexadecimal",
        "autoheal_actions[3].reason.status must be firing or resolved",
    ]
