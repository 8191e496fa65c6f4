"""One finding shape: every field a policy sets (findings.FindingFields) reaches the alert record,
its stored DynamoDB item and the message the notifiers read, by name, with no stage-by-stage
mapping to forget. The values are built from the dataclass's own fields, so a field added to
FindingFields is covered here without editing this test."""

from __future__ import annotations

import dataclasses
import typing
from datetime import datetime, timezone

import pytest

from hyperpod_guard import findings
from hyperpod_guard.findings import SHAPE, Finding, FindingFields, Severity, shape_of
from hyperpod_guard.ledger import AlertRecord, Timing, observe
from hyperpod_guard.ledger_store import from_item, to_item
from hyperpod_guard.notify.message import FindingPayload, Notification, NotificationItem

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def _sample(name: str, annotation: typing.Any) -> typing.Any:
    """A value for the field that differs from its default."""
    if annotation is Severity:
        return Severity.CRITICAL
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)[-1]
    if typing.get_origin(annotation) is dict:
        return {"evidence": f"{name} evidence", "nested": {"n": 1}}
    return f"{name}-value"


def _hints() -> dict[str, typing.Any]:
    hints = typing.get_type_hints(FindingFields, vars(findings))
    # `str | None` -> str: a set value is what has to travel
    return {name: next((a for a in typing.get_args(h) if a is not type(None)), h) if typing.get_origin(h) is
            typing.Union or type(h).__name__ == "UnionType" else h for name, h in hints.items()}


def sample_finding() -> Finding:
    hints = _hints()
    return Finding(**{name: _sample(name, hints[name]) for name in SHAPE})


def test_the_sample_sets_every_field_away_from_its_default():
    finding = sample_finding()
    for f in dataclasses.fields(FindingFields):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        assert getattr(finding, f.name) != default, f.name


def test_every_field_reaches_the_record_the_stored_item_and_the_message():
    finding = sample_finding()
    record = AlertRecord.start(finding, NOW)
    assert shape_of(record) == shape_of(finding)

    stored = from_item(to_item(record))
    assert stored == record

    payload = FindingPayload.of(stored)
    assert shape_of(payload) == shape_of(finding)
    assert payload.fingerprint == finding.fingerprint

    body = Notification(cluster=finding.cluster, items=(NotificationItem(reason="first", finding=payload),)).body()
    read_back = Notification.model_validate_json(body).items[0].finding
    assert shape_of(read_back) == shape_of(finding)


def test_a_later_observation_carries_what_the_finding_says_now():
    first = sample_finding()
    record = AlertRecord.start(first, NOW)
    later = dataclasses.replace(first, summary="worse now", details={"evidence": "new"})
    decision = observe(record, later, Timing(), NOW, token="t")
    assert shape_of(decision.record) == shape_of(later)


@pytest.mark.parametrize("missing", [name for name in SHAPE if name not in ("policy", "cluster", "condition", "severity")])
def test_an_item_stored_before_a_field_existed_reads_with_its_default(missing):
    item = to_item(AlertRecord.start(sample_finding(), NOW))
    item.pop("details_json" if missing == "details" else missing)
    field = next(f for f in dataclasses.fields(FindingFields) if f.name == missing)
    expected = field.default_factory() if field.default_factory is not dataclasses.MISSING else (
        field.default if field.default is not dataclasses.MISSING else "")
    assert getattr(from_item(item), missing) == expected
