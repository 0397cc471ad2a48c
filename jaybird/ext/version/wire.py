"""The ``<query xmlns='jabber:iq:version'/>`` payload (XEP-0092 §2); a request has no children."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from jaybird import ns
from jaybird.xml.element import Element

NAME = ns.clark(ns.VERSION, "query")
_NAME = ns.clark(ns.VERSION, "name")
_VERSION = ns.clark(ns.VERSION, "version")
_OS = ns.clark(ns.VERSION, "os")


@dataclass(frozen=True, slots=True)
class SoftwareVersion:
    name: ClassVar[str] = NAME

    software: str | None = None
    version: str | None = None
    os: str | None = None

    @classmethod
    def from_element(cls, element: Element) -> Self:
        return cls(element.find_text(_NAME), element.find_text(_VERSION), element.find_text(_OS))

    def to_element(self) -> Element:
        el = Element(NAME)
        for child, value in ((_NAME, self.software), (_VERSION, self.version), (_OS, self.os)):
            if value is not None:
                el.add(child, text=value)
        return el
