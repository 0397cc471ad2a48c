"""The ``<ping xmlns='urn:xmpp:ping'/>`` payload (XEP-0199 §3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from jaybird import ns
from jaybird.xml.element import Element

NAME = ns.clark(ns.PING, "ping")


@dataclass(frozen=True, slots=True)
class Ping:
    name: ClassVar[str] = NAME

    @classmethod
    def from_element(cls, element: Element) -> Self:
        return cls()

    def to_element(self) -> Element:
        return Element(NAME)
