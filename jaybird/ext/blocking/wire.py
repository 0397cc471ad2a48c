"""The XEP-0191 payloads (``<blocklist/>``, ``<block/>``, ``<unblock/>``), the ``<blocked/>`` error, and
the JID matching rules a blocklist is enforced with."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from jaybird import ns
from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.jid import JID, JIDError
from jaybird.xml.element import Element

__all__ = [
    "BLOCK",
    "BLOCKED",
    "BLOCKLIST",
    "ERRORS_NS",
    "NS",
    "UNBLOCK",
    "Block",
    "BlockList",
    "Unblock",
    "blocked_error",
    "candidates",
    "is_blocked",
]

NS: Final = "urn:xmpp:blocking"
ERRORS_NS: Final = "urn:xmpp:blocking:errors"
BLOCKLIST: Final = ns.clark(NS, "blocklist")
BLOCK: Final = ns.clark(NS, "block")
UNBLOCK: Final = ns.clark(NS, "unblock")
BLOCKED: Final = ns.clark(ERRORS_NS, "blocked")
_ITEM: Final = ns.clark(NS, "item")


def _read_items(element: Element) -> tuple[JID, ...]:
    """The ``jid`` of every ``<item/>``, in order and without repeats; a bad one is ``jid-malformed``."""
    jids: dict[JID, None] = {}
    for item in element.find_all(_ITEM):
        value = item.get("jid")
        if not value:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, text="an item without a 'jid'")
        try:
            jids[JID(value)] = None
        except JIDError as exc:
            raise StanzaError(StanzaErrorCondition.JID_MALFORMED, text=f"{value!r}: {exc}") from None
    return tuple(jids)


def _write(name: str, items: Sequence[JID]) -> Element:
    return Element(name, children=[Element(_ITEM, {"jid": str(jid)}) for jid in items])


@dataclass(frozen=True, slots=True)
class BlockList:
    """The user's blocked JIDs (XEP-0191 §3.2 "User Retrieves Block List")."""

    name: ClassVar[str] = BLOCKLIST
    items: tuple[JID, ...] = ()

    @classmethod
    def from_element(cls, element: Element) -> Self:
        return cls(_read_items(element))

    def to_element(self) -> Element:
        return _write(BLOCKLIST, self.items)


@dataclass(frozen=True, slots=True)
class Block:
    """Block these JIDs (§3.3); at least one (an empty ``<block/>`` is ``bad-request``)."""

    name: ClassVar[str] = BLOCK
    items: tuple[JID, ...]

    @classmethod
    def from_element(cls, element: Element) -> Self:
        items = _read_items(element)
        if not items:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, text="<block/> needs at least one <item/>")
        return cls(items)

    def to_element(self) -> Element:
        return _write(BLOCK, self.items)


@dataclass(frozen=True, slots=True)
class Unblock:
    """Unblock these JIDs (§3.4), or every blocked JID when there are none (§3.5 "unblock all")."""

    name: ClassVar[str] = UNBLOCK
    items: tuple[JID, ...] = ()

    @classmethod
    def from_element(cls, element: Element) -> Self:
        return cls(_read_items(element))

    def to_element(self) -> Element:
        return _write(UNBLOCK, self.items)

    @property
    def everything(self) -> bool:
        return not self.items


def blocked_error(text: str | None = None) -> StanzaError:
    """What the user gets for a stanza to a JID it blocked: ``not-acceptable`` + ``<blocked/>`` (§3.3)."""
    return StanzaError(StanzaErrorCondition.NOT_ACCEPTABLE, text=text, app_condition=Element(BLOCKED))


def candidates(jid: JID) -> Iterator[JID]:
    """The blocklist entries that match ``jid``, by the XEP-0191 "JID Matching" order (XEP-0016 §2.1):
    ``user@domain/resource``, ``user@domain``, ``domain/resource``, ``domain``, then every parent domain
    (a blocked domain also covers "an address containing a subdomain")."""
    yield jid
    if jid.local is not None and jid.resource is not None:
        yield jid.bare
        yield JID.from_parts(None, jid.domain, jid.resource)
    if not jid.is_domain:
        yield JID.from_parts(None, jid.domain)
    if _is_ip_literal(jid.domain):
        return
    labels = jid.domain.split(".")
    for start in range(1, len(labels) - 1):  # parents, but never a bare top-level label such as "com"
        yield JID.from_parts(None, ".".join(labels[start:]))


def _is_ip_literal(domain: str) -> bool:
    try:
        ipaddress.ip_address(domain.strip("[]"))
    except ValueError:
        return False
    return True


def is_blocked(blocklist: frozenset[JID] | set[JID], jid: JID) -> bool:
    """True when some entry of ``blocklist`` matches ``jid`` (a handful of set lookups, no scan)."""
    if not blocklist:
        return False
    return any(candidate in blocklist for candidate in candidates(jid))
