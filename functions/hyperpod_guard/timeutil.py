"""Timestamps and durations as HyperPod and our rules spell them.

HyperPod puts epoch *milliseconds* in event details, boto3 returns `datetime`, and JSON
snapshots carry ISO strings; everything becomes a timezone-aware UTC `datetime` here.
Durations in rules are short strings ("90s", "15m", "4h", "1d", "1h30m").
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

# Epoch values above this are milliseconds (1e11 s is the year 5138).
_EPOCH_MS_THRESHOLD = 100_000_000_000

DURATION_PATTERN = r"^(?:\d+[dhms])+$"
_DURATION_PART = re.compile(r"(\d+)([dhms])")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_timestamp(value: Any) -> datetime | None:
    """Epoch seconds or ms, ISO-8601 string or datetime -> aware UTC datetime.

    Unparseable values become None: a bad timestamp in a status document is not a reason
    to drop the whole evaluation.
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before datetime.min in UTC
            return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                return parse_timestamp(datetime.fromisoformat(text.replace("Z", "+00:00")))
            except ValueError:
                return None
    if isinstance(value, (int, float)):
        try:
            # inside the try: an int too big for a float overflows already in the division
            seconds = value / 1000 if abs(value) >= _EPOCH_MS_THRESHOLD else value
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def parse_duration(value: Any) -> timedelta:
    """'1h30m' -> timedelta. Also accepts a timedelta or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return timedelta(seconds=value)
        if isinstance(value, str) and re.fullmatch(DURATION_PATTERN, value.strip()):
            total = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(value))
            return timedelta(seconds=total)
    except OverflowError:  # beyond timedelta.max: a ValueError, so that rules validation reports it
        raise ValueError(f"duration too long: {value!r}") from None
    raise ValueError(f"not a duration: {value!r} (use e.g. '90s', '15m', '4h', '1d', '1h30m')")


def format_duration(delta: timedelta) -> str:
    """timedelta -> the shortest string parse_duration reads back ('0s' for zero)."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def isoformat(moment: datetime) -> str:
    """UTC ISO-8601 with a 'Z', the way EventBridge writes `time`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# Pydantic field types -------------------------------------------------------------

Timestamp = Annotated[
    datetime | None,
    BeforeValidator(parse_timestamp),
    PlainSerializer(lambda v: isoformat(v) if v else None, return_type=str | None),
]

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["15m", "4h", "1h30m"]}),
]
