"""The ``<query xmlns='jabber:iq:private'/>`` payload (XEP-0049 §2) and its rules on what may be stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Self

from jaybird import ns
from jaybird.errors import RemoteProtocolError
from jaybird.xml.element import Element
from jaybird.xml.parser import ElementReceived, XMLStreamParser
from jaybird.xml.serializer import serialize

__all__ = ["NAME", "NS", "PrivateQuery", "element_from_xml", "element_to_xml", "is_reserved"]

NS: Final = "jabber:iq:private"
NAME: Final = ns.clark(NS, "query")

#: XEP-0049 §2.3: namespaces reserved in Jabber, which a server may refuse to store (``not-acceptable``).
_RESERVED_PREFIXES: Final = ("jabber:", "http://jabber.org/")
_RESERVED: Final = frozenset({"vcard-temp"})


def is_reserved(namespace: str) -> bool:
    """True for a namespace XEP-0049 §2.3 calls reserved (and for no namespace at all: the stored fragment
    must be "scoped by its own namespace", §2.1)."""
    return not namespace or namespace in _RESERVED or namespace.startswith(_RESERVED_PREFIXES)


@dataclass(frozen=True, slots=True)
class PrivateQuery:
    """The query and the fragments it carries (one to retrieve, or those to store)."""

    name: ClassVar[str] = NAME
    items: tuple[Element, ...] = ()

    @classmethod
    def from_element(cls, element: Element) -> Self:
        if element.name != NAME:
            raise ValueError(f"not a private XML query: {element.name}")
        return cls(tuple(child.copy() for child in element.elements()))

    def to_element(self) -> Element:
        return Element(NAME, children=[item.copy() for item in self.items])


def element_to_xml(element: Element) -> str:
    """The stored form of one fragment."""
    return serialize(element)


def element_from_xml(text: str) -> Element:
    """One stored fragment back; ValueError when the text is not exactly one element."""
    data = text.encode()
    try:
        events = XMLStreamParser(root=None, max_stanza_bytes=len(data) + 1).feed(data)
    except RemoteProtocolError as exc:
        raise ValueError(f"stored fragment does not parse: {exc}") from None
    elements = [e.element for e in events if isinstance(e, ElementReceived)]
    if len(elements) != 1:
        raise ValueError("stored fragment is not a single element")
    return elements[0]
