"""The role argument specs state the weight limits that the shared weight-grammar vectors hold."""

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[4]
VECTORS = json.loads((Path(__file__).with_name("weight_grammar.json")).read_text())


def limits():
    accepted = VECTORS["accept"]
    absolute = max(c["weight"] for c in accepted if not c["percent"])
    percent = max(c["weight"] for c in accepted if c["percent"])
    return f"0..{absolute}", f"0%..{percent}%"


def weight_options(node):
    """Every option named `weight` in an argument spec, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "weight" and isinstance(value, dict) and "description" in value:
                yield value
            yield from weight_options(value)
    elif isinstance(node, list):
        for item in node:
            yield from weight_options(item)


def test_weight_descriptions_state_the_vectors_limits():
    found = []
    for spec in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        for option in weight_options(yaml.safe_load(spec.read_text())):
            found.append(spec)
            description = " ".join(option["description"]) if isinstance(option["description"], list) else option["description"]
            for limit in limits():
                assert limit in description, f"{spec}: {description!r} lacks {limit}"
    assert found, "no weight option in any role argument spec"
