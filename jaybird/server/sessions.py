"""The bound client sessions of one host, and the resource-conflict rule.

RFC 6120 §7.7.2.2 lets the server choose what happens when a resource is bound twice; jaybird lets the new
session win and closes the old one with the ``conflict`` stream error (what Prosody and ejabberd do by
default), so a client that lost its connection without noticing can always log in again.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Generic, TypeVar

from jaybird.jid import JID
from jaybird.server.api import Session

__all__ = ["SessionRegistry", "new_resource"]

S = TypeVar("S", bound=Session)


def new_resource() -> str:
    """A server-generated resource (RFC 6120 §7.6.2.1): random, so it reveals nothing and does not collide."""
    return f"jaybird-{secrets.token_hex(6)}"


class SessionRegistry(Generic[S]):
    """Sessions by bare JID, then resource."""

    def __init__(self) -> None:
        self._by_bare: dict[JID, dict[str, S]] = {}
        self._count = 0

    def add(self, session: S) -> S | None:
        """Register ``session`` under its full JID; returns the session it replaced (to be closed), if any."""
        jid = session.jid
        assert jid.resource is not None, "only sessions with a bound resource are registered"
        resources = self._by_bare.setdefault(jid.bare, {})
        old = resources.get(jid.resource)
        resources[jid.resource] = session
        if old is None:
            self._count += 1
        return old

    def remove(self, session: S) -> bool:
        """Unregister ``session`` if it is still the one bound to its JID (a replaced one is not)."""
        jid = session.jid
        resources = self._by_bare.get(jid.bare)
        if resources is None or jid.resource is None or resources.get(jid.resource) is not session:
            return False
        del resources[jid.resource]
        self._count -= 1
        if not resources:
            del self._by_bare[jid.bare]
        return True

    def of(self, bare: JID) -> Sequence[S]:
        resources = self._by_bare.get(bare.bare)
        return tuple(resources.values()) if resources else ()

    def get(self, full: JID) -> S | None:
        if full.resource is None:
            return None
        resources = self._by_bare.get(full.bare)
        return resources.get(full.resource) if resources else None

    def all(self) -> Sequence[S]:
        return tuple(session for resources in self._by_bare.values() for session in resources.values())

    def __len__(self) -> int:
        return self._count
