"""Timestamps (epoch s/ms, ISO, datetime) and rule durations ("1h30m")."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, ValidationError

from hyperpod_guard.timeutil import Duration, Timestamp, format_duration, isoformat, parse_duration, parse_timestamp

T0 = datetime(2025, 4, 28, 16, 59, 1, tzinfo=timezone.utc)
EPOCH_S = 1745859541  # T0
EPOCH_MS = EPOCH_S * 1000


@pytest.mark.parametrize("value, expected", [
    pytest.param(EPOCH_MS, T0, id="epoch-ms"),
    pytest.param(EPOCH_MS + 412, T0.replace(microsecond=412000), id="epoch-ms-fraction"),
    pytest.param(EPOCH_S, T0, id="epoch-s"),
    pytest.param(EPOCH_S + 0.25, T0.replace(microsecond=250000), id="epoch-s-float"),
    pytest.param(float(EPOCH_MS), T0, id="epoch-ms-float"),
    pytest.param(0, datetime(1970, 1, 1, tzinfo=timezone.utc), id="zero"),
    pytest.param(99_999_999_999, datetime(5138, 11, 16, 9, 46, 39, tzinfo=timezone.utc), id="largest-seconds"),
    pytest.param(100_000_000_000, datetime(1973, 3, 3, 9, 46, 40, tzinfo=timezone.utc), id="smallest-ms"),
    pytest.param(str(EPOCH_MS), T0, id="numeric-string-ms"),
    pytest.param(f" {EPOCH_S} ", T0, id="numeric-string-s-padded"),
    pytest.param("1745859541.5", T0.replace(microsecond=500000), id="numeric-string-float"),
    pytest.param("2025-04-28T16:59:01Z", T0, id="iso-z"),
    pytest.param("2025-04-28T16:59:01.000Z", T0, id="iso-z-millis"),
    pytest.param("2025-04-28T18:59:01+02:00", T0, id="iso-offset-plus"),
    pytest.param("2025-04-28T11:59:01-05:00", T0, id="iso-offset-minus"),
    pytest.param("2025-04-28T16:59:01", T0, id="iso-naive-is-utc"),
    pytest.param("2025-04-28 16:59:01+00:00", T0, id="iso-space"),
    pytest.param("2025-04-28", datetime(2025, 4, 28, tzinfo=timezone.utc), id="iso-date"),
    pytest.param(T0, T0, id="aware-datetime"),
    pytest.param(datetime(2025, 4, 28, 16, 59, 1), T0, id="naive-datetime"),
    pytest.param(datetime(2025, 4, 28, 9, 59, 1, tzinfo=timezone(timedelta(hours=-7))), T0, id="other-zone-datetime"),
    pytest.param(None, None, id="none"),
    pytest.param("", None, id="empty"),
    pytest.param("   ", None, id="blank"),
    pytest.param("yesterday", None, id="garbage"),
    pytest.param("2025-13-01T00:00:00Z", None, id="month-13"),
    pytest.param(True, None, id="bool-true"),
    pytest.param(False, None, id="bool-false"),
    pytest.param([EPOCH_MS], None, id="list"),
    pytest.param({"t": EPOCH_MS}, None, id="dict"),
    pytest.param(10**20, None, id="huge-ms"),
    pytest.param(10**400, None, id="huge-beyond-float"),
    pytest.param(-(10**400), None, id="huge-negative"),
    pytest.param(float("inf"), None, id="inf"),
    pytest.param("1e400", None, id="inf-string"),
    pytest.param("nan", None, id="nan-string"),
    pytest.param("0001-01-01T00:00:00+01:00", None, id="before-min-in-utc"),
    pytest.param("9999-12-31T23:59:59-01:00", None, id="after-max-in-utc"),
])
def test_parse_timestamp(value, expected):
    result = parse_timestamp(value)
    assert result == expected
    if result is not None:
        assert result.tzinfo is not None
        assert result.utcoffset() == timedelta(0)


@pytest.mark.parametrize("moment, text", [
    pytest.param(T0, "2025-04-28T16:59:01Z", id="utc"),
    pytest.param(datetime(2025, 4, 28, 18, 59, 1, tzinfo=timezone(timedelta(hours=2))), "2025-04-28T16:59:01Z", id="converted"),
    pytest.param(T0.replace(microsecond=412000), "2025-04-28T16:59:01.412000Z", id="micros"),
])
def test_isoformat(moment, text):
    assert isoformat(moment) == text
    assert parse_timestamp(text) == moment


@pytest.mark.parametrize("value, expected, canonical", [
    pytest.param("90s", timedelta(seconds=90), "1m30s", id="90s"),
    pytest.param("15m", timedelta(minutes=15), "15m", id="15m"),
    pytest.param("4h", timedelta(hours=4), "4h", id="4h"),
    pytest.param("1d", timedelta(days=1), "1d", id="1d"),
    pytest.param("1h30m", timedelta(hours=1, minutes=30), "1h30m", id="1h30m"),
    pytest.param("90m", timedelta(minutes=90), "1h30m", id="90m"),
    pytest.param("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4), "1d2h3m4s", id="all-units"),
    pytest.param("30m1h", timedelta(hours=1, minutes=30), "1h30m", id="any-order"),
    pytest.param("0s", timedelta(0), "0s", id="zero-string"),
    pytest.param("0m", timedelta(0), "0s", id="zero-minutes"),
    pytest.param(" 15m ", timedelta(minutes=15), "15m", id="padded"),
    pytest.param(0, timedelta(0), "0s", id="zero-int"),
    pytest.param(90, timedelta(seconds=90), "1m30s", id="int-seconds"),
    pytest.param(3600.0, timedelta(hours=1), "1h", id="float-seconds"),
    pytest.param(timedelta(hours=2), timedelta(hours=2), "2h", id="timedelta"),
])
def test_parse_duration_and_format_round_trip(value, expected, canonical):
    parsed = parse_duration(value)
    assert parsed == expected
    assert format_duration(parsed) == canonical
    assert parse_duration(canonical) == expected


@pytest.mark.parametrize("value", [
    pytest.param("", id="empty"),
    pytest.param("5", id="no-unit"),
    pytest.param("-1m", id="negative"),
    pytest.param("1w", id="weeks"),
    pytest.param("m", id="unit-only"),
    pytest.param("15M", id="upper-case"),
    pytest.param("1h 30m", id="inner-space"),
    pytest.param("1.5h", id="fraction"),
    pytest.param("PT15M", id="iso8601"),
    pytest.param(-1, id="negative-int"),
    pytest.param(True, id="bool"),
    pytest.param(None, id="none"),
    pytest.param(["15m"], id="list"),
    pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"),
    pytest.param("99999999999d", id="beyond-timedelta-max"),
    pytest.param(1e300, id="huge-seconds"),
])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize("delta, text", [
    pytest.param(timedelta(0), "0s", id="zero"),
    pytest.param(timedelta(seconds=59), "59s", id="seconds"),
    pytest.param(timedelta(days=2, seconds=1), "2d1s", id="skips-zero-units"),
    pytest.param(timedelta(hours=25), "1d1h", id="carries"),
])
def test_format_duration(delta, text):
    assert format_duration(delta) == text


class _Model(BaseModel):
    at: Timestamp = None
    wait: Duration = timedelta(0)


def test_pydantic_field_types_validate_and_serialise():
    model = _Model.model_validate({"at": EPOCH_MS, "wait": "1h30m"})
    assert model.at == T0
    assert model.wait == timedelta(hours=1, minutes=30)
    assert model.model_dump(mode="json") == {"at": "2025-04-28T16:59:01Z", "wait": "1h30m"}
    assert _Model.model_validate({"at": "garbage"}).model_dump(mode="json") == {"at": None, "wait": "0s"}


@pytest.mark.parametrize("wait", ["1w", "99999999999d", -5])
def test_duration_field_rejects_with_validation_error(wait):
    with pytest.raises(ValidationError) as caught:
        _Model.model_validate({"wait": wait})
    assert caught.value.errors()[0]["loc"] == ("wait",)
