"""Validate a Chatbot custom notification against tests/schemas/chatbot-custom-notification.schema.json,
the JSON Schema written from the documented format:
https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html

`validate_chatbot(payload)` raises AssertionError naming every violation (with its JSON path); the demo's
test can call it on each Chatbot payload the demo writes."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).parent / "schemas" / "chatbot-custom-notification.schema.json"
DOC_URL = "https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html"


@cache
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_chatbot(payload: Any) -> None:
    """Raise AssertionError unless `payload` (a dict, or its JSON text) is a valid custom notification."""
    data = json.loads(payload) if isinstance(payload, str | bytes) else payload
    errors = sorted(validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    assert not errors, f"not a Chatbot custom notification ({DOC_URL}):\n" + "\n".join(
        f"  {e.json_path}: {e.message}" for e in errors)
