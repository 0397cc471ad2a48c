"""The ``<query xmlns='jabber:iq:last' seconds='...'>status</query>`` payload (XEP-0012 §2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from jaybird.xml.element import Element

LAST = "jabber:iq:last"
NAME = f"{{{LAST}}}query"


@dataclass(frozen=True, slots=True)
class LastActivity:
    """``seconds`` is None in a request; ``status`` is the text of the last unavailable presence, if any."""

    name: ClassVar[str] = NAME

    seconds: int | None = None
    status: str | None = None

    @classmethod
    def from_element(cls, element: Element) -> Self:
        seconds = element.get("seconds")
        try:
            value = int(seconds) if seconds is not None else None
        except ValueError:
            value = None
        return cls(value, element.text or None)

    def to_element(self) -> Element:
        return Element(NAME, {"seconds": str(self.seconds)} if self.seconds is not None else None, text=self.status)
