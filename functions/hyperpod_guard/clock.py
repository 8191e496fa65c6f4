"""The time the handlers act at: the wall clock, or a simulated one (the demo replays days in seconds)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


_current: Clock = wall_clock


def now() -> datetime:
    return _current()


def use(clock: Clock | None) -> None:
    """Make `now()` answer from `clock` (None: back to the wall clock)."""
    global _current
    _current = clock or wall_clock
