"""The disco#info and disco#items payloads (XEP-0030 §3, §4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from jaybird import ns
from jaybird.xml.element import XML_LANG, Element

INFO = ns.clark(ns.DISCO_INFO, "query")
ITEMS = ns.clark(ns.DISCO_ITEMS, "query")
_IDENTITY = ns.clark(ns.DISCO_INFO, "identity")
_FEATURE = ns.clark(ns.DISCO_INFO, "feature")
_ITEM = ns.clark(ns.DISCO_ITEMS, "item")
DATA_FORM = "jabber:x:data"
_FORM = ns.clark(DATA_FORM, "x")


@dataclass(frozen=True, slots=True)
class DiscoIdentity:
    """``<identity category type name xml:lang/>`` (XEP-0030 §3.1)."""

    category: str
    type: str
    name: str | None = None
    lang: str | None = None

    def to_element(self) -> Element:
        attrs = {"category": self.category, "type": self.type}
        if self.name is not None:
            attrs["name"] = self.name
        if self.lang is not None:
            attrs[XML_LANG] = self.lang
        return Element(_IDENTITY, attrs)

    @classmethod
    def from_element(cls, element: Element) -> Self:
        return cls(element.attrs.get("category", ""), element.attrs.get("type", ""), element.get("name"), element.lang)


@dataclass(frozen=True, slots=True)
class DiscoInfo:
    """``<query xmlns='http://jabber.org/protocol/disco#info'/>``; a request has no identities nor features.

    ``forms`` are XEP-0128 extended-information data forms, kept as elements.
    """

    name: ClassVar[str] = INFO

    node: str | None = None
    identities: tuple[DiscoIdentity, ...] = ()
    features: tuple[str, ...] = ()
    forms: tuple[Element, ...] = ()

    @classmethod
    def from_element(cls, element: Element) -> Self:
        return cls(
            node=element.get("node"),
            identities=tuple(DiscoIdentity.from_element(e) for e in element.find_all(_IDENTITY)),
            features=tuple(e.attrs.get("var", "") for e in element.find_all(_FEATURE)),
            forms=tuple(e.copy() for e in element.find_all(_FORM)),
        )

    def to_element(self) -> Element:
        el = Element(INFO, {"node": self.node} if self.node is not None else None)
        el.children.extend(identity.to_element() for identity in self.identities)
        el.children.extend(Element(_FEATURE, {"var": var}) for var in self.features)
        el.children.extend(form.copy() for form in self.forms)
        return el


@dataclass(frozen=True, slots=True)
class DiscoItem:
    """``<item jid node name/>`` (XEP-0030 §4.1)."""

    jid: str
    node: str | None = None
    name: str | None = None

    def to_element(self) -> Element:
        attrs = {"jid": self.jid}
        if self.node is not None:
            attrs["node"] = self.node
        if self.name is not None:
            attrs["name"] = self.name
        return Element(_ITEM, attrs)

    @classmethod
    def from_element(cls, element: Element) -> Self:
        return cls(element.attrs.get("jid", ""), element.get("node"), element.get("name"))


@dataclass(frozen=True, slots=True)
class DiscoItems:
    """``<query xmlns='http://jabber.org/protocol/disco#items'/>``."""

    name: ClassVar[str] = ITEMS

    node: str | None = None
    items: tuple[DiscoItem, ...] = ()

    @classmethod
    def from_element(cls, element: Element) -> Self:
        return cls(element.get("node"), tuple(DiscoItem.from_element(e) for e in element.find_all(_ITEM)))

    def to_element(self) -> Element:
        el = Element(ITEMS, {"node": self.node} if self.node is not None else None)
        el.children.extend(item.to_element() for item in self.items)
        return el
