"""Archive ids and timestamps, taken from one clock so that id order, time order and call order agree.

An id is 14 hex digits of microseconds since the Unix epoch (strictly increasing within one process, so two
appends in the same microsecond still get ordered ids) and 8 random hex digits (so two processes, or a clock
set back between runs, do not collide). Ids therefore sort as strings, and a time range is an id range: the
stores filter ``start``/``end`` on the id index and need no second index on time.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta

__all__ = ["ArchiveClock", "from_micros", "id_lower_bound", "id_upper_bound", "to_micros", "when_of"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_DIGITS = 14  # 16**14 microseconds reach past the year 4000


def to_micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def when_of(item_id: str) -> datetime:
    return from_micros(int(item_id[:_TIME_DIGITS], 16))


def id_lower_bound(start: datetime) -> str:
    """The smallest id at or after ``start``: ids of that instant compare greater than their bare prefix."""
    return f"{max(to_micros(start), 0):0{_TIME_DIGITS}x}"


def id_upper_bound(end: datetime) -> str:
    """Every id at or before ``end`` compares less than this."""
    return f"{max(to_micros(end) + 1, 0):0{_TIME_DIGITS}x}"


class ArchiveClock:
    """Hands out (id, timestamp) pairs; synchronous, so the order is the order of the calls."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> tuple[str, datetime]:
        micros = max(time.time_ns() // 1000, self._last + 1)
        self._last = micros
        return f"{micros:0{_TIME_DIGITS}x}{secrets.token_hex(4)}", from_micros(micros)
