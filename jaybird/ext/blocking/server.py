"""The Blocking Command on the server (XEP-0191): the blocklist in the map store (``blocklist``: one key per
blocked JID), its IQs and pushes, and its enforcement in both directions.

* Inbound (XEP-0191 §3.3, "User Blocks Contact"): nothing from a blocked JID reaches the user. Presence is
  dropped without an answer; messages and IQ get/set are answered ``service-unavailable``, so the user
  "appears offline"; IQ results and errors are dropped.
* Outbound: a stanza the user sends to a blocked JID is not routed; the user gets ``not-acceptable`` with
  ``<blocked xmlns='urn:xmpp:blocking:errors'/>``. Presence the server sends on the user's behalf (broadcasts)
  is dropped too, so a blocked contact does not keep seeing it.
* Pushes go to the sessions that retrieved the blocklist (§3.3: "all of the user's resources that have
  requested the blocklist").
* Blocking sends the user's blocked contact unavailable presence from each available resource; unblocking
  asks the presence module for the user's current presence on the contact's behalf (a probe), which it answers
  only when the contact's subscription allows it (RFC 6121 §4.3.2), as §3.3 and §3.4 require.

Blocklists are cached per account (bounded, least recently used first out): every routed stanza consults
one, and this module is the only writer of the store. With several worker processes each caches its own: a
change is announced (:class:`~jaybird.server.events.SharedStateChanged`), and the other workers drop their copy
and push the change to the resources they hold.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable
from typing import ClassVar, Final

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.blocking.wire import (
    BLOCK,
    BLOCKLIST,
    NS,
    UNBLOCK,
    Block,
    BlockList,
    Unblock,
    blocked_error,
    is_blocked,
)
from jaybird.jid import JID
from jaybird.server.api import IqRequest, IqScope, ServerModule, Session
from jaybird.server.events import (
    AccountRemoved,
    IqToAccount,
    MessageToAccount,
    PresenceToAccount,
    RemoteStanza,
    SharedStateChanged,
    StanzaFromClient,
)
from jaybird.stanza import Iq, IqType, Message, Payload, Presence, PresenceType
from jaybird.xml.element import Element

__all__ = ["PRIORITY", "STORE", "BlockingModule"]

STORE: Final = "blocklist"
#: Ahead of the modules that deliver or answer (presence, offline, carbons run at the default 0).
PRIORITY: Final = 100
DEFAULT_CACHE_SIZE: Final = 10_000
_NOTHING: Final[frozenset[JID]] = frozenset()


def _owner(account: JID) -> str:
    """The cache and store key of an account: its bare JID as text (built without a bare JID object)."""
    return account.domain if account.local is None else f"{account.local}@{account.domain}"


def _same_account(a: JID, b: JID) -> bool:
    return a.local == b.local and a.domain == b.domain


class BlockingModule(ServerModule):
    name: ClassVar[str] = "blocking"
    implements: ClassVar[tuple[str, ...]] = ("XEP-0191",)

    async def load(self) -> None:
        self._cache_size = self.options.get_int("cache_size", DEFAULT_CACHE_SIZE, minimum=1)
        self._cache: OrderedDict[str, frozenset[JID]] = OrderedDict()
        # Bumped whenever another worker changes a blocklist: a read that began before is not cached.
        self._generation = 0
        self.iq(IqType.GET, BLOCKLIST, self._get, scope=IqScope.ACCOUNT)
        self.iq(IqType.SET, BLOCK, self._block, scope=IqScope.ACCOUNT)
        self.iq(IqType.SET, UNBLOCK, self._unblock, scope=IqScope.ACCOUNT)
        self.feature(NS)
        self.on(StanzaFromClient, self._outbound, priority=PRIORITY)
        self.on(MessageToAccount, self._inbound_message, priority=PRIORITY)
        self.on(PresenceToAccount, self._inbound_presence, priority=PRIORITY)
        self.on(RemoteStanza, self._outbound_remote, priority=PRIORITY)
        self.on(IqToAccount, self._inbound_iq, priority=PRIORITY)
        self.on(AccountRemoved, self._forget)
        self.on(SharedStateChanged, self._changed_elsewhere)

    # -- the blocklist ----------------------------------------------------------------------------------------
    def _cached(self, account: JID) -> frozenset[JID] | None:
        """The blocklist of ``account`` if it is cached (then marked recently used), without touching storage."""
        owner = _owner(account)
        cached = self._cache.get(owner)
        if cached is not None:
            self._cache.move_to_end(owner)
        return cached

    async def blocklist(self, account: JID) -> frozenset[JID]:
        """The JIDs ``account`` (a bare JID) blocks."""
        cached = self._cached(account)
        if cached is not None:
            return cached
        owner = _owner(account)
        generation = self._generation
        stored = await self.host.storage.map.items(owner, STORE)
        jids = frozenset(JID(key) for key in stored)
        if generation == self._generation:
            self._remember(owner, jids)
        return jids

    def _remember(self, owner: str, jids: frozenset[JID]) -> None:
        self._cache[owner] = jids
        self._cache.move_to_end(owner)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def blocks(self, account: JID, other: JID | None) -> bool:
        """True when local ``account`` blocks ``other`` (never its own account, nor an unknown sender)."""
        if other is None or _same_account(account, other):
            return False
        return is_blocked(await self.blocklist(account), other)

    # -- IQs (XEP-0191 §3.2-§3.5) ----------------------------------------------------------------------------
    def _own(self, request: IqRequest) -> JID:
        if request.sender.bare != request.to.bare:
            raise StanzaError(StanzaErrorCondition.FORBIDDEN, text="a blocklist belongs to its owner only")
        return request.to.bare

    async def _get(self, request: IqRequest) -> BlockList:
        account = self._own(request)
        if request.origin is not None:
            request.origin.data[BlockingModule] = True  # this resource now gets pushes
        return BlockList(tuple(sorted(await self.blocklist(account), key=str)))

    async def _block(self, request: IqRequest) -> None:
        account = self._own(request)
        block = Block.from_element(self._payload(request))
        owner = _owner(account)
        before = await self.blocklist(account)
        for jid in block.items:
            if jid not in before:  # while still unblocked: the enforcement below would drop it
                await self._appear_offline(account, jid)
        for jid in block.items:
            await self.host.storage.map.set(owner, STORE, str(jid), "")
        self._remember(owner, before | set(block.items))
        await self._push(account, block)
        await self.host.hooks.fire(SharedStateChanged(STORE, owner, block.to_element()))

    async def _unblock(self, request: IqRequest) -> None:
        account = self._own(request)
        unblock = Unblock.from_element(self._payload(request))
        owner = _owner(account)
        before = await self.blocklist(account)
        if unblock.everything:
            await self.host.storage.map.clear(owner, STORE)
            removed = before
        else:
            removed = before & set(unblock.items)
            for jid in removed:
                await self.host.storage.map.delete(owner, STORE, str(jid))
        self._remember(owner, before - removed)
        await self._push(account, unblock)
        await self.host.hooks.fire(SharedStateChanged(STORE, owner, unblock.to_element()))
        for jid in sorted(removed, key=str):
            await self._reappear(account, jid)

    @staticmethod
    def _payload(request: IqRequest) -> Element:
        payload = request.iq.payload
        assert payload is not None, "the core dispatched on this payload"
        return payload

    async def _push(self, account: JID, payload: Payload | Element) -> None:
        for session in self.host.sessions.of(account):
            if session.data.get(BlockingModule):  # only ever set on this worker's own sessions
                await session.send(Iq.build(IqType.SET, payload, to=session.jid, from_=account))

    async def _changed_elsewhere(self, event: SharedStateChanged) -> None:
        """Another worker changed a blocklist: forget ours, and push the change to our resources that asked."""
        if event.kind != STORE or not event.remote:
            return
        self._generation += 1
        self._cache.pop(event.key, None)
        if event.payload is not None:
            await self._push(JID(event.key), event.payload)

    async def _appear_offline(self, account: JID, contact: JID) -> None:
        """§3.3: the blocked contact sees the user go offline (only users: a domain gets no presence)."""
        if contact.local is None:
            return
        for session in self.host.sessions.of(account):
            if session.available:
                gone = Presence.build(contact, type=PresenceType.UNAVAILABLE, from_=session.jid)
                await self.host.route(gone, origin=session)

    async def _reappear(self, account: JID, contact: JID) -> None:
        """§3.4: the contact gets the user's current presence if its subscription allows; the presence module
        decides that when it answers a probe (RFC 6121 §4.3.2)."""
        if contact.local is None or not any(s.available for s in self.host.sessions.of(account)):
            return
        await self.host.route(Presence.build(account, type=PresenceType.PROBE, from_=contact.bare))

    # -- enforcement ------------------------------------------------------------------------------------------
    # Every routed stanza passes these hooks. With the blocklist cached and empty (nearly always) they answer
    # at once, without a coroutine and without parsing the stanza's other address.
    def _outbound(self, event: StanzaFromClient) -> bool | Awaitable[bool]:
        if self._cached(event.session.jid) == _NOTHING:
            return False
        return self._outbound_checked(event)

    async def _outbound_checked(self, event: StanzaFromClient) -> bool:
        stanza = event.stanza
        if not await self.blocks(event.session.jid, stanza.to):
            return False
        if not stanza.is_error and not (isinstance(stanza, Iq) and stanza.type is IqType.RESULT):
            await event.session.send(stanza.error_reply(blocked_error()))
        return True

    async def _outbound_remote(self, event: RemoteStanza) -> bool:
        """Presence the server sends for a local user to a remote JID it blocks (broadcasts, probes answers)."""
        return await self._server_presence_to_blocked(event.stanza, event.to)

    async def _server_presence_to_blocked(self, stanza: Message | Presence | Iq, to: JID) -> bool:
        sender = stanza.from_
        if not isinstance(stanza, Presence) or sender is None or sender.domain != self.host.domain:
            return False
        if sender.local is None:
            return False
        return await self.blocks(sender, to)

    def _inbound_message(self, event: MessageToAccount) -> bool | Awaitable[bool]:
        if self._cached(event.to) == _NOTHING:
            return False
        return self._inbound_message_checked(event)

    async def _inbound_message_checked(self, event: MessageToAccount) -> bool:
        if not await self.blocks(event.to, event.stanza.from_):
            return False
        await self._refuse(event.stanza)
        return True

    async def _inbound_presence(self, event: PresenceToAccount) -> bool:
        # Both ways: from a JID the recipient blocks, and the local sender's own presence to a JID it blocks.
        return await self.blocks(event.to, event.stanza.from_) or await self._server_presence_to_blocked(
            event.stanza, event.to
        )

    def _inbound_iq(self, event: IqToAccount) -> bool | Awaitable[bool]:
        if self._cached(event.to) == _NOTHING:
            return False
        return self._inbound_iq_checked(event)

    async def _inbound_iq_checked(self, event: IqToAccount) -> bool:
        iq = event.stanza
        if not await self.blocks(event.to, iq.from_):
            return False
        if iq.is_request:
            await self._refuse(iq)
        return True

    async def _refuse(self, stanza: Message | Iq) -> None:
        """Answer as if the user were not there (§3.3: ``service-unavailable``); errors get no answer."""
        if stanza.is_error:
            return
        await self.host.route(stanza.error_reply(StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)))

    async def _forget(self, event: AccountRemoved) -> None:
        owner = _owner(event.account)
        await self.host.storage.map.clear(owner, STORE)
        self._cache.pop(owner, None)
        await self.host.hooks.fire(SharedStateChanged(STORE, owner))

    @staticmethod
    def session_gets_pushes(session: Session) -> bool:
        """Whether ``session`` retrieved the blocklist (and so gets block and unblock pushes)."""
        return bool(session.data.get(BlockingModule))
