"""The ``<vCard xmlns='vcard-temp'/>`` payload (XEP-0054 §3) and its stored form.

The server keeps a vCard as opaque XML: XEP-0054 is a historical format whose content (the vCard-XML DTD)
the server never needs to read, so the payload holds the element as it came rather than a typed model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Final, Self

from jaybird import ns
from jaybird.errors import RemoteProtocolError
from jaybird.xml.element import Element
from jaybird.xml.parser import ElementReceived, XMLStreamParser
from jaybird.xml.serializer import serialize

__all__ = ["NAME", "NS", "VCard"]

NS: Final = "vcard-temp"
NAME: Final = ns.clark(NS, "vCard")


@dataclass(frozen=True, slots=True)
class VCard:
    """A vCard; ``element`` is the whole ``<vCard/>`` (an empty one when the user has none)."""

    name: ClassVar[str] = NAME
    element: Element = field(default_factory=lambda: Element(NAME))

    @classmethod
    def from_element(cls, element: Element) -> Self:
        if element.name != NAME:
            raise ValueError(f"not a vCard: {element.name}")
        return cls(element.copy())

    def to_element(self) -> Element:
        return self.element.copy()

    @property
    def is_empty(self) -> bool:
        return not self.element.children

    def field(self, name: str) -> str | None:
        """The text of a top-level field such as ``FN`` or ``NICKNAME`` (upper case, XEP-0054 §7)."""
        return self.element.find_text(ns.clark(NS, name))

    def to_xml(self) -> str:
        """The stored form."""
        return serialize(self.element)

    @classmethod
    def from_xml(cls, text: str) -> Self:
        """Read the stored form back; ValueError when it is not one vCard."""
        data = text.encode()
        try:
            events = XMLStreamParser(root=None, max_stanza_bytes=len(data) + 1).feed(data)
        except RemoteProtocolError as exc:
            raise ValueError(f"stored vCard does not parse: {exc}") from None
        elements = [e.element for e in events if isinstance(e, ElementReceived)]
        if len(elements) != 1:
            raise ValueError("stored vCard is not a single element")
        return cls.from_element(elements[0])
