"""Shared test helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"


@pytest.fixture
def load_json():
    def load(relative: str):
        return json.loads((REPO / relative).read_text())

    return load
