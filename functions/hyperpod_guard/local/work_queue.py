"""The work queue's flush messages (grouping.py) for local runs, where the clock is injected.

SQS holds a delayed message back in real time; the demo and the tests move a clock of their own.
`LocalFlushQueue` sends each flush to the real queue (moto) when given one, and keeps it with the
time it becomes due, so that whoever drives the clock delivers it then (`due`), as Lambda's event
source would, or twice, or never (a lost message), to see what the pipeline makes of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..grouping import FlushGroup, FlushQueue


@dataclass
class Pending:
    flush: FlushGroup
    delay: timedelta
    #: when it becomes visible: set by `stamp` with the time of the invocation that sent it
    due: datetime | None = None


@dataclass
class LocalFlushQueue:
    #: the real queue to send to as well (moto's SqsFlushQueue), or None
    inner: FlushQueue | None = None
    pending: list[Pending] = field(default_factory=list)
    sent: int = 0

    def send(self, flush: FlushGroup, delay: timedelta) -> None:
        if self.inner is not None:
            self.inner.send(flush, delay)
        self.pending.append(Pending(flush, delay))
        self.sent += 1

    def stamp(self, now: datetime) -> None:
        """The invocation that ran at `now` is over: what it sent is due `delay` after it."""
        for pending in self.pending:
            if pending.due is None:
                pending.due = now + pending.delay

    def due(self, now: datetime) -> list[FlushGroup]:
        """The messages visible at `now` (removed), oldest first."""
        self.stamp(now)
        ready = sorted((p for p in self.pending if p.due is not None and p.due <= now), key=lambda p: p.due or now)
        self.pending = [p for p in self.pending if not any(p is r for r in ready)]
        return [p.flush for p in ready]

    def next_due(self) -> datetime | None:
        return min((p.due for p in self.pending if p.due is not None), default=None)
