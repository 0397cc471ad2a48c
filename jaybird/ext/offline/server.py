"""Offline messages (XEP-0160): keep what could not be delivered, deliver it at the next available presence.

Stored: ``chat`` and ``normal`` messages with a body, or with a XEP-0334 ``<store/>`` hint, and no
``<no-store/>`` hint (XEP-0160 §3). ``error``, ``groupchat`` and ``headline`` messages, and those without
content, go to the core's default. Over ``limits.offline_max_per_user`` the module declines, so the core's
default answers ``service-unavailable`` (XEP-0160 §3, RFC 6121 §8.5.2.2).

Messages sit in the archive store (owner = the account's bare JID, store ``offline``), so they survive a
restart. They are delivered, each with a XEP-0203 ``<delay/>`` carrying the time it was stored, to a session
whose initial presence has a non-negative priority (XEP-0160 §4, RFC 6121 §8.5.2.1.1), then deleted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, ClassVar

from jaybird.errors import RemoteProtocolError
from jaybird.ext.offline.wire import MSGOFFLINE, NO_STORE_HINT, STORE_HINT, Delay
from jaybird.server.api import Host, ServerModule, Session
from jaybird.server.events import MessageUndelivered, SessionAvailable
from jaybird.server.storage import ArchiveItem, ArchiveQuery
from jaybird.stanza import Message, MessageType
from jaybird.xml.element import Element
from jaybird.xml.parser import ElementReceived, XMLStreamParser
from jaybird.xml.serializer import serialize

if TYPE_CHECKING:
    from jaybird.server.config import ModuleOptions

log = logging.getLogger("jaybird.ext.offline")

STORE = "offline"
#: Messages read from the store at a time while delivering.
BATCH = 100
_STORABLE = frozenset({MessageType.CHAT, MessageType.NORMAL})


def should_store(message: Message) -> bool:
    """XEP-0160 §3 and XEP-0334 §4: what an offline store keeps."""
    if message.type not in _STORABLE or message.find(NO_STORE_HINT) is not None:
        return False
    return message.body is not None or message.find(STORE_HINT) is not None


def encode(message: Message) -> str:
    return serialize(message.element)


def decode(value: str | bytes) -> Message:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    try:
        events = XMLStreamParser(root=None).feed(raw)
    except RemoteProtocolError as exc:
        raise ValueError(f"a stored offline message is not well-formed: {exc}") from None
    if len(events) != 1 or not isinstance(events[0], ElementReceived):
        raise ValueError("a stored offline message is not one element")
    return Message(events[0].element)


def stamped(item: ArchiveItem, domain: str) -> Message:
    """The stored message with a ``<delay/>`` saying when and where it was stored (XEP-0203 §3)."""
    message = decode(item.value)
    element: Element = message.element
    element.append(Delay(item.when, from_=domain, reason="Offline Storage").to_element())
    return Message(element)


class OfflineModule(ServerModule):
    name: ClassVar[str] = "offline"
    implements: ClassVar[tuple[str, ...]] = ("XEP-0160", "XEP-0203")

    def __init__(self, host: Host, options: ModuleOptions) -> None:
        super().__init__(host, options)
        # one account's store is counted, appended to and drained by one coroutine at a time
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        self.limit = self.host.server_config.limits.offline_max_per_user
        self.feature(MSGOFFLINE)
        self.on(MessageUndelivered, self._on_undelivered)
        self.on(SessionAvailable, self._on_available)

    async def _on_undelivered(self, event: MessageUndelivered) -> bool:
        if not should_store(event.stanza):
            return False
        owner = str(event.to.bare)
        archive = self.host.storage.archive
        async with self._lock:
            if await archive.count(owner, STORE) >= self.limit:
                log.info("offline store of %s is full (%d)", owner, self.limit)
                return False
            sender = event.stanza.from_
            await archive.append(owner, STORE, encode(event.stanza), with_jid=str(sender) if sender else None)
        return True

    async def _on_available(self, event: SessionAvailable) -> None:
        if event.session.priority >= 0:
            await self.deliver(event.session)

    async def deliver(self, session: Session) -> int:
        """Send the account's stored messages to ``session`` oldest first, deleting each batch once sent."""
        owner = str(session.jid.bare)
        archive = self.host.storage.archive
        sent = 0
        async with self._lock:
            while True:
                page = await archive.query(owner, STORE, ArchiveQuery(limit=BATCH))
                for item in page.items:
                    try:
                        message = stamped(item, self.host.domain)
                    except ValueError:
                        log.warning("dropping unreadable offline message %s of %s", item.id, owner)
                        continue
                    await session.send(message)
                    sent += 1
                await archive.delete(owner, STORE, [item.id for item in page.items])
                if page.complete or not page.items:
                    return sent
