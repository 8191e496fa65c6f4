"""Golden files: a renderer's output for the message samples (tests/message_samples.py), kept in
tests/golden/<channel>/ and reviewed by eye once. `UPDATE_GOLDEN=1 pytest ...` rewrites them
(then read the diff before committing)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent / "golden"


def check_golden(channel: str, name: str, rendered: Any, *, suffix: str | None = None) -> None:
    """Compare `rendered` (str, or JSON-able) with tests/golden/<channel>/<name>.<suffix> (default: txt for
    a str, json otherwise)."""
    text = rendered if isinstance(rendered, str) else json.dumps(rendered, indent=2, ensure_ascii=False) + "\n"
    path = GOLDEN / channel / f"{name}.{suffix or ('txt' if isinstance(rendered, str) else 'json')}"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}: run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{path} differs (UPDATE_GOLDEN=1 rewrites it; review the diff)"
