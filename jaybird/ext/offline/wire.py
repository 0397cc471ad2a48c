"""The XEP-0203 ``<delay/>`` element and the XEP-0334 storage hints an offline store reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Self

from jaybird import ns
from jaybird.ext.time.wire import format_datetime, parse_datetime
from jaybird.xml.element import Element

DELAY = ns.clark(ns.DELAY, "delay")
HINTS = "urn:xmpp:hints"
STORE_HINT = f"{{{HINTS}}}store"
NO_STORE_HINT = f"{{{HINTS}}}no-store"
#: XEP-0160 §3 (via XEP-0013): the disco feature of a server that stores offline messages.
MSGOFFLINE = "msgoffline"


@dataclass(frozen=True, slots=True)
class Delay:
    """``<delay xmlns='urn:xmpp:delay' from stamp>reason</delay>`` (XEP-0203 §3)."""

    name: ClassVar[str] = DELAY

    stamp: datetime
    from_: str | None = None
    reason: str | None = None

    @classmethod
    def from_element(cls, element: Element) -> Self:
        return cls(parse_datetime(element.attrs.get("stamp", "")), element.get("from"), element.text or None)

    def to_element(self) -> Element:
        attrs = {"stamp": format_datetime(self.stamp)}
        if self.from_ is not None:
            attrs["from"] = self.from_
        return Element(DELAY, attrs, text=self.reason)
