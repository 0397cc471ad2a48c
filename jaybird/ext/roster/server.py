"""The roster module: RFC 6121 §2 roster get/set/remove with pushes, and versioning (§2.6, XEP-0237).

Other modules change rosters through :meth:`RosterModule.update` (the presence module, for subscription state)
under :meth:`RosterModule.lock`, so that two changes to one roster never interleave their read and write.

Roster versioning is advertised with the stream feature ``<ver xmlns='urn:xmpp:features:rosterver'/>`` after
authentication (RFC 6121 §2.6.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator

from jaybird import ns
from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.roster.store import RosterEntry, RosterStore
from jaybird.ext.roster.wire import ITEM, QUERY, RosterItem, RosterQuery, Subscription
from jaybird.jid import JID
from jaybird.server.api import IqRequest, IqScope, ServerModule
from jaybird.stanza import Iq, IqType, Presence, PresenceType
from jaybird.stream.feature import StreamFeature, always
from jaybird.stream.state import SessionState
from jaybird.xml.element import Element

__all__ = ["RosterModule"]

#: Longest item name and group name accepted (RFC 6121 §2.3.3 lets the server set a limit).
MAX_TEXT = 1023


def _error(condition: StanzaErrorCondition, text: str) -> StanzaError:
    return StanzaError(condition, text=text)


#: RFC 6121 §2.6.1: advertised once the client is authenticated; nothing to negotiate.
ROSTER_VERSIONING = StreamFeature(
    name=ns.clark(ns.ROSTER_VER_FEATURE, "ver"),
    necessary=SessionState.AUTHENTICATED,
    advertise=always(Element(ns.clark(ns.ROSTER_VER_FEATURE, "ver"))),
)


class RosterModule(ServerModule):
    name = "roster"
    implements = ("RFC 6121 §2", "XEP-0237")

    async def load(self) -> None:
        self.store = RosterStore(self.host.storage)
        self._locks: weakref.WeakValueDictionary[JID, asyncio.Lock] = weakref.WeakValueDictionary()
        self.iq(IqType.GET, QUERY, self._on_get, scope=IqScope.ACCOUNT)
        self.iq(IqType.SET, QUERY, self._on_set, scope=IqScope.ACCOUNT)
        self.stream_feature(ROSTER_VERSIONING)

    # -- the API other modules use ----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lock(self, owner: JID) -> AsyncIterator[None]:
        """Hold ``owner``'s roster while reading and changing it."""
        key = owner.bare
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            yield

    async def get_entry(self, owner: JID, contact: JID) -> RosterEntry | None:
        """The stored entry (listed or only holding a pending inbound request)."""
        return await self.store.get(owner, contact)

    async def get_item(self, owner: JID, contact: JID) -> RosterItem | None:
        """The roster item as the owner's clients see it, or None when the contact is not on the roster."""
        entry = await self.store.get(owner, contact)
        return entry.item if entry is not None and entry.listed else None

    async def entries(self, owner: JID) -> list[RosterEntry]:
        return await self.store.entries(owner)

    async def update(self, owner: JID, entry: RosterEntry) -> int:
        """Store ``entry`` (or drop it when it holds nothing) and push it to the interested resources when the
        item they see changed (RFC 6121 §2.1.6). Returns how many pushes were sent."""
        before = await self.store.get(owner, entry.jid)
        if entry.disposable:
            if before is not None:
                await self.store.delete(owner, entry.jid)
        else:
            await self.store.put(owner, entry)
        seen_before = before.item if before is not None and before.listed else None
        seen_after = entry.item if entry.listed else None
        if seen_before == seen_after:
            return 0
        version = await self.store.bump(owner)
        if seen_after is None:
            assert seen_before is not None
            removed = RosterItem(jid=seen_before.jid, subscription=Subscription.REMOVE)
            return await self.push(owner, removed, version)
        return await self.push(owner, seen_after, version)

    async def push(self, owner: JID, item: RosterItem, version: int) -> int:
        """A roster push (RFC 6121 §2.1.6) with a fresh id to every interested resource of ``owner``."""
        sent = 0
        for session in self.host.sessions.of(owner.bare):
            if not session.interested:
                continue
            push = Iq.build(IqType.SET, RosterQuery(items=(item,), ver=str(version)), to=session.jid)
            await session.send(push)
            sent += 1
        return sent

    async def remove(self, owner: JID, contact: JID) -> bool:
        """Remove ``contact`` from the roster, cancelling the subscriptions both ways (RFC 6121 §2.5.2)."""
        async with self.lock(owner):
            entry = await self.store.get(owner, contact)
            if entry is None or not entry.listed:
                return False
            await self.update(owner, RosterEntry(jid=contact.bare, listed=False))
        # Routed once the lock is released: a local contact's server side takes the contact's roster lock, and
        # the contact may be removing us at the same moment.
        state = entry.state
        if state.from_:
            await self._send_unavailable(owner, contact)  # the contact loses our presence (§3.2.2)
        if state.to or state.pending_out:
            await self._send_subscription(owner, contact, PresenceType.UNSUBSCRIBE)
        if state.from_ or state.pending_in:
            await self._send_subscription(owner, contact, PresenceType.UNSUBSCRIBED)
        return True

    async def _send_subscription(self, owner: JID, contact: JID, type_: PresenceType) -> None:
        await self.host.route(Presence.build(to=contact.bare, type=type_, from_=owner.bare))

    async def _send_unavailable(self, owner: JID, contact: JID) -> None:
        for session in self.host.sessions.of(owner.bare):
            if session.available:
                await self.host.route(Presence.build(to=contact.bare, type=PresenceType.UNAVAILABLE, from_=session.jid))

    # -- IQ handlers ------------------------------------------------------------------------------------------
    def _check_owner(self, request: IqRequest) -> JID:
        owner = request.to.bare
        if request.sender.bare != owner:
            raise _error(StanzaErrorCondition.FORBIDDEN, "a roster belongs to its account only (RFC 6121 §2.1.3)")
        return owner

    async def _on_get(self, request: IqRequest) -> RosterQuery | None:
        owner = self._check_owner(request)
        if request.origin is not None:
            request.origin.interested = True  # RFC 6121 §2.2: it asked, so it gets pushes
        query = request.iq.payload
        wanted_ver = query.get("ver") if query is not None else None
        async with self.lock(owner):
            version = await self.store.version(owner)
            if wanted_ver is not None and wanted_ver == str(version):
                return None  # §2.6.3: up to date; changes follow as pushes
            entries = await self.store.entries(owner)
        items = tuple(entry.item for entry in entries if entry.listed)
        return RosterQuery(items=items, ver=str(version) if wanted_ver is not None else None)

    async def _on_set(self, request: IqRequest) -> None:
        owner = self._check_owner(request)
        query = request.iq.payload
        assert query is not None
        elements = query.find_all(ITEM)
        if len(elements) != 1:
            raise _error(StanzaErrorCondition.BAD_REQUEST, "a roster set holds exactly one item (RFC 6121 §2.3.3)")
        item = RosterItem.from_element(elements[0])
        _check_item(item)
        contact = item.jid
        if contact == owner:
            raise _error(StanzaErrorCondition.NOT_ALLOWED, "an account is not a contact of itself")
        if item.subscription is Subscription.REMOVE:
            if not await self.remove(owner, contact):
                raise _error(StanzaErrorCondition.ITEM_NOT_FOUND, "no such roster item (RFC 6121 §2.5.3)")
            return None
        async with self.lock(owner):
            entry = await self.store.get(owner, contact) or RosterEntry(jid=contact)
            # The subscription, ask and approved attributes of a set are the client's echo of server state:
            # the server keeps its own (RFC 6121 §2.1.2.1, §2.1.2.2, §2.1.2.5).
            updated = RosterEntry(
                jid=contact,
                name=item.name,
                groups=item.groups,
                state=entry.state,
                listed=True,
                request_status=entry.request_status,
            )
            await self.update(owner, updated)
        return None


def _check_item(item: RosterItem) -> None:
    """The roster set errors of RFC 6121 §2.3.3."""
    if not item.jid.is_bare:
        raise _error(StanzaErrorCondition.BAD_REQUEST, "roster items are bare JIDs (RFC 6121 §2.1.2.3)")
    if len(set(item.groups)) != len(item.groups):
        raise _error(StanzaErrorCondition.BAD_REQUEST, "a group is named twice (RFC 6121 §2.3.3)")
    if any(not group for group in item.groups):
        raise _error(StanzaErrorCondition.NOT_ACCEPTABLE, "a group name is empty (RFC 6121 §2.3.3)")
    if (item.name is not None and len(item.name) > MAX_TEXT) or any(len(g) > MAX_TEXT for g in item.groups):
        raise _error(StanzaErrorCondition.NOT_ACCEPTABLE, f"names are limited to {MAX_TEXT} characters")
