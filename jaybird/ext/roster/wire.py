"""The ``<query xmlns='jabber:iq:roster'/>`` payload and its items (RFC 6121 §2.1)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Self

from jaybird import ns
from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.jid import JID, JIDError
from jaybird.xml.element import Element

__all__ = ["ITEM", "QUERY", "RosterItem", "RosterQuery", "Subscription"]

QUERY = ns.clark(ns.ROSTER, "query")
ITEM = ns.clark(ns.ROSTER, "item")
GROUP = ns.clark(ns.ROSTER, "group")


class Subscription(enum.Enum):
    """The ``subscription`` attribute (RFC 6121 §2.1.2.5); ``REMOVE`` only appears in sets and pushes."""

    NONE = "none"
    TO = "to"
    FROM = "from"
    BOTH = "both"
    REMOVE = "remove"

    @classmethod
    def of(cls, to: bool, from_: bool) -> Subscription:
        """The value naming a pair of subscription directions, seen from the roster's owner."""
        if to and from_:
            return cls.BOTH
        if to:
            return cls.TO
        if from_:
            return cls.FROM
        return cls.NONE

    @property
    def to(self) -> bool:
        """The owner receives the contact's presence."""
        return self in (Subscription.TO, Subscription.BOTH)

    @property
    def from_(self) -> bool:
        """The contact receives the owner's presence."""
        return self in (Subscription.FROM, Subscription.BOTH)


def _bad(text: str) -> StanzaError:
    return StanzaError(StanzaErrorCondition.BAD_REQUEST, text=text)


@dataclass(frozen=True, slots=True)
class RosterItem:
    """One ``<item/>`` (RFC 6121 §2.1.2): a contact, the name the owner gave it, groups, subscription state.

    A child of :class:`RosterQuery`, not a stanza payload of its own (so ``name`` is the item's name).
    """

    jid: JID
    name: str | None = None
    groups: tuple[str, ...] = ()
    subscription: Subscription = Subscription.NONE
    #: A subscription request from the owner is pending (``ask='subscribe'``, RFC 6121 §2.1.2.2).
    ask: bool = False
    #: The owner pre-approved the contact's subscription (``approved='true'``, RFC 6121 §2.1.2.1, §3.4).
    approved: bool = False

    @classmethod
    def from_element(cls, element: Element) -> Self:
        raw = element.get("jid")
        if not raw:
            raise _bad("a roster item needs a 'jid' (RFC 6121 §2.1.2.3)")
        try:
            jid = JID(raw)
        except JIDError as exc:
            raise StanzaError(StanzaErrorCondition.JID_MALFORMED, text=str(exc)) from None
        value = element.get("subscription")
        try:
            subscription = Subscription(value) if value is not None else Subscription.NONE
        except ValueError:
            raise _bad(f"unknown subscription value {value!r} (RFC 6121 §2.1.2.5)") from None
        return cls(
            jid=jid,
            name=element.get("name"),
            groups=tuple(group.text for group in element.find_all(GROUP)),
            subscription=subscription,
            ask=element.get("ask") == "subscribe",
            approved=element.get("approved") in ("true", "1"),
        )

    def to_element(self) -> Element:
        attrs = {"jid": str(self.jid)}
        if self.name is not None:
            attrs["name"] = self.name
        attrs["subscription"] = self.subscription.value
        if self.ask:
            attrs["ask"] = "subscribe"
        if self.approved:
            attrs["approved"] = "true"
        element = Element(ITEM, attrs)
        for group in self.groups:
            element.add(GROUP, text=group)
        return element


@dataclass(frozen=True, slots=True)
class RosterQuery:
    """``<query xmlns='jabber:iq:roster' ver='...'>`` with its items (RFC 6121 §2.1.1, §2.6)."""

    name: ClassVar[str] = QUERY

    items: tuple[RosterItem, ...] = ()
    ver: str | None = None

    @classmethod
    def from_element(cls, element: Element) -> Self:
        items = tuple(RosterItem.from_element(child) for child in element.find_all(ITEM))
        return cls(items=items, ver=element.get("ver"))

    def to_element(self) -> Element:
        element = Element(QUERY, {"ver": self.ver} if self.ver is not None else None)
        for item in self.items:
            element.append(item.to_element())
        return element

    def item(self, jid: JID) -> RosterItem | None:
        """The item for ``jid``, if the query holds one."""
        for item in self.items:
            if item.jid == jid:
                return item
        return None
