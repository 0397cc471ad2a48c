"""The ``<time xmlns='urn:xmpp:time'/>`` payload (XEP-0202 §3) and XEP-0082 date-time helpers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Self

from jaybird.xml.element import Element

TIME = "urn:xmpp:time"
NAME = f"{{{TIME}}}time"
_TZO = f"{{{TIME}}}tzo"
_UTC = f"{{{TIME}}}utc"


def format_datetime(moment: datetime) -> str:
    """XEP-0082 §3.2 DateTime in UTC with a ``Z``, milliseconds when there is a fraction."""
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(text: str) -> datetime:
    """A XEP-0082 DateTime (``Z`` or ``±hh:mm``, optional fraction) as an aware datetime."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"a XEP-0082 DateTime needs a time zone: {text!r}")
    return moment


def format_offset(offset: timedelta) -> str:
    """``±hh:mm`` (XEP-0082 TZD)."""
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


def parse_offset(text: str) -> timedelta:
    text = text.strip()
    if text == "Z":
        return timedelta(0)
    sign = -1 if text.startswith("-") else 1
    hours, _, mins = text.lstrip("+-").partition(":")
    return sign * timedelta(hours=int(hours), minutes=int(mins or 0))


@dataclass(frozen=True, slots=True)
class EntityTime:
    """The entity's time: ``utc`` (aware) and its offset from UTC; a request has neither."""

    name: ClassVar[str] = NAME

    utc: datetime | None = None
    tzo: timedelta | None = None

    @property
    def local(self) -> datetime | None:
        """The entity's wall-clock time."""
        if self.utc is None:
            return None
        return self.utc.astimezone(UTC) + (self.tzo or timedelta(0))

    @classmethod
    def from_element(cls, element: Element) -> Self:
        utc, tzo = element.find_text(_UTC), element.find_text(_TZO)
        return cls(parse_datetime(utc) if utc else None, parse_offset(tzo) if tzo else None)

    def to_element(self) -> Element:
        el = Element(NAME)
        if self.tzo is not None:
            el.add(_TZO, text=format_offset(self.tzo))
        if self.utc is not None:
            el.add(_UTC, text=format_datetime(self.utc))
        return el
