"""Every `default` in the rules JSON Schema validates against its own subschema (issue 16: the
schema said `"grace": {"default": "PT15M", "pattern": "^(?:\\d+[dhms])+$"}`, so an editor that
filled in defaults wrote rules `validate` refused)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from hyperpod_guard.rules import load_rules
from tests.conftest import REPO


def schema_from_cli() -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "schema"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


SCHEMA = schema_from_cli()


def defaults(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """(JSON pointer, subschema) for every subschema anywhere in `node` that has a default."""
    if isinstance(node, dict):
        if "default" in node and not path.endswith("/properties"):  # not a property named "default"
            yield path, node
        for key, value in node.items():
            yield from defaults(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from defaults(value, f"{path}/{index}")


DEFAULTS = dict(defaults(SCHEMA))


def test_the_walk_finds_the_defaults_of_every_part():
    # the text count also finds the properties *named* "default" (routing's default receivers)
    named_default = sum("default" in d.get("properties", {}) for d in SCHEMA["$defs"].values())
    assert len(DEFAULTS) == json.dumps(SCHEMA).count('"default":') - named_default
    grace = DEFAULTS["#/$defs/TaintDriftSettings/properties/grace"]
    assert grace["pattern"] and grace["default"] == "15m"
    assert DEFAULTS["#/$defs/NodeRemediation/properties/after"]["default"] == "30m"


@pytest.mark.parametrize("pointer", sorted(DEFAULTS))
def test_every_default_validates_against_its_own_subschema(pointer):
    subschema = {k: v for k, v in DEFAULTS[pointer].items() if k != "default"}
    validator = jsonschema.Draft202012Validator({**subschema, "$defs": SCHEMA["$defs"]})
    errors = [e.message for e in validator.iter_errors(DEFAULTS[pointer]["default"])]
    assert not errors, f"{pointer}: default {DEFAULTS[pointer]['default']!r}: {errors}"


def test_the_defaults_document_still_validates_against_the_schema_and_the_model():
    document = json.loads((REPO / "rules" / "defaults.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    load_rules(document)


def test_schema_defaults_are_what_the_model_defaults_to():
    """A default read from the schema means what the model's default means (15m is 15 minutes)."""
    policies = load_rules({"version": 1}).model_dump(mode="json", by_alias=True)["policies"]
    properties = SCHEMA["$defs"]["TaintDriftSettings"]["properties"]
    assert properties["grace"]["default"] == policies["taint-drift"]["grace"]
    assert properties["repeat_interval"]["default"] == policies["taint-drift"]["repeat_interval"]
