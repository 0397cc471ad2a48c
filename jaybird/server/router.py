"""Stanza routing: RFC 6120 §10 (server rules) and RFC 6121 §8.5 (local delivery).

Three steps, as in Prosody: a client's stanza gets its ``from`` checked and stamped (the c2s driver and
:meth:`Router.from_client`), then it is delivered locally by the kind of its ``to`` (the host itself, a bare
account JID, a full JID), or handed on as remote. Every decision a module may want to take instead is a hook
(:mod:`jaybird.server.events`); what follows each ``fire`` is the default when no handler took the event.

Stanzas are never changed in place: stamping makes a copy. Errors are never answered with errors (§8.3.1).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Protocol

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.jid import JID, JIDError
from jaybird.server.api import IqRequest, IqScope, Session
from jaybird.server.events import (
    IqToAccount,
    MessageForHost,
    MessageToAccount,
    MessageUndelivered,
    PresenceForHost,
    PresenceToAccount,
    RemoteStanza,
    SessionAvailable,
    StanzaFromClient,
)
from jaybird.server.host import VirtualHost
from jaybird.stanza import Iq, IqType, Message, MessageType, Presence, PresenceType
from jaybird.xml.element import Element

__all__ = ["ComponentRoutes", "RoutedStanza", "Router", "stamped"]

log = logging.getLogger("jaybird.server.router")

RoutedStanza = Message | Presence | Iq
_C = StanzaErrorCondition


def stamped(stanza: RoutedStanza, sender: JID) -> RoutedStanza:
    """A copy of ``stanza`` whose ``from`` is ``sender`` (RFC 6120 §8.1.2.1): the original is not touched."""
    element = stanza.element.shallow_copy()
    element.attrs["from"] = str(sender)
    copy: RoutedStanza = type(stanza)(element)
    return copy


class ComponentRoutes(Protocol):
    """The domains served by external components (XEP-0114); :mod:`jaybird.server.components` keeps them."""

    def serves(self, domain: str) -> bool:
        """A component is configured for ``domain`` (connected or not)."""

    async def deliver(self, domain: str, stanza: RoutedStanza) -> bool:
        """Hand ``stanza`` to the component serving ``domain``; False when none is connected."""


class Router:
    """Routes stanzas between the hosts of one server (and, through :class:`RemoteStanza`, elsewhere)."""

    def __init__(self, hosts: Mapping[str, VirtualHost], components: ComponentRoutes | None = None) -> None:
        self._hosts = hosts
        self.components = components

    # -- entry points ---------------------------------------------------------------------------------------------
    async def from_client(self, session: Session, stanza: RoutedStanza) -> None:
        """A stanza a client sent, ``from`` already checked (§8.1.2.1): stamp it, let modules see it, route it."""
        stanza = stamped(stanza, session.jid)
        host = session.host
        if await host.hooks.fire(StanzaFromClient(session, stanza)):
            return
        if isinstance(stanza, Presence) and stanza.element.attrs.get("to") is None:
            if self._track_presence(session, stanza):
                await host.hooks.fire(SessionAvailable(session, stanza))
            return
        await self.route(stanza, session)

    async def route(self, stanza: RoutedStanza, origin: Session | None = None) -> None:
        """Deliver a stanza whose ``from`` is already right."""
        try:
            to = stanza.to
        except JIDError as exc:
            await self.bounce(stanza, _C.JID_MALFORMED, f"the 'to' address is malformed: {exc}")
            return
        # The sender is parsed only where it is needed (no 'to', or a remote one): not on the busy local path.
        if to is None:
            await self._to_own_account(stanza, stanza.from_, origin)
            return
        if self.components is not None and self.components.serves(to.domain):
            await self._to_component(stanza, to)
            return
        host = self._hosts.get(to.domain)
        if host is None:
            if not await self._host_of(stanza.from_).hooks.fire(RemoteStanza(stanza, to, origin)):
                await self.bounce(stanza, _C.REMOTE_SERVER_NOT_FOUND, f"{to.domain} is not served here")
            return
        if to.local is None:
            if to.resource is None:
                await self._to_host(host, stanza, origin)
            else:
                # A domain with a resource names nothing this core serves (§10.5.4 leaves it to the server).
                await self.bounce(stanza, _C.SERVICE_UNAVAILABLE)
            return
        if not await host.account_exists(to.bare):
            await self._to_missing_account(stanza)
            return
        if to.resource is None:
            await self._to_bare(host, stanza, to, origin)
        else:
            await self._to_full(host, stanza, to, origin)

    # -- by kind of address ---------------------------------------------------------------------------------------
    async def _to_own_account(self, stanza: RoutedStanza, sender: JID | None, origin: Session | None) -> None:
        """No ``to``: RFC 6120 §10.3 — the server handles it on behalf of the sender's account."""
        if sender is None or sender.local is None or sender.domain not in self._hosts:
            await self.bounce(stanza, _C.SERVICE_UNAVAILABLE)
            return
        host = self._hosts[sender.domain]
        if isinstance(stanza, Iq):
            await self._iq(host, stanza, sender.bare, IqScope.ACCOUNT, origin)
        elif isinstance(stanza, Message):
            # §10.3.1: as if addressed to the sender's own bare JID.
            await self._to_bare(host, stanza, sender.bare, origin)
        # §10.3.2: presence without 'to' is a broadcast, the presence module's job; nothing else to do.

    async def _to_host(self, host: VirtualHost, stanza: RoutedStanza, origin: Session | None) -> None:
        if isinstance(stanza, Iq):
            await self._iq(host, stanza, host.jid, IqScope.HOST, origin)
        elif isinstance(stanza, Message):
            if not await host.hooks.fire(MessageForHost(stanza, origin)) and stanza.type in (
                MessageType.NORMAL,
                MessageType.CHAT,
            ):
                await self.bounce(stanza, _C.SERVICE_UNAVAILABLE)
        else:
            await host.hooks.fire(PresenceForHost(stanza, origin))

    async def _to_component(self, stanza: RoutedStanza, to: JID) -> None:
        """XEP-0114: everything addressed to a component's domain, or to any JID in it, goes to its connection.
        Not connected: ``remote-server-timeout`` (type ``wait``, RFC 6120 §8.3.3.16: the service named by the
        address cannot be reached now), as Prosody 0.12's mod_component answers; errors are not answered."""
        assert self.components is not None
        if not await self.components.deliver(to.domain, stanza):
            await self.bounce(stanza, _C.REMOTE_SERVER_TIMEOUT, f"the component {to.domain} is not connected")

    async def _to_missing_account(self, stanza: RoutedStanza) -> None:
        """RFC 6121 §8.5.1: no such account."""
        if isinstance(stanza, Presence):
            return  # silently ignored (§8.5.1 for presence; subscriptions included)
        if isinstance(stanza, Message) and stanza.type is MessageType.HEADLINE:
            return
        await self.bounce(stanza, _C.SERVICE_UNAVAILABLE)

    async def _to_bare(self, host: VirtualHost, stanza: RoutedStanza, to: JID, origin: Session | None) -> None:
        """RFC 6121 §8.5.2 (and §8.5.2.1.3 for IQ: the server answers for the account)."""
        if isinstance(stanza, Iq):
            if not await host.hooks.fire(IqToAccount(stanza, to, origin)):
                await self._iq(host, stanza, to, IqScope.ACCOUNT, origin)
        elif isinstance(stanza, Message):
            if not await host.hooks.fire(MessageToAccount(stanza, to, origin)):
                await self.deliver_message(host, stanza, to)
        elif not await host.hooks.fire(PresenceToAccount(stanza, to, origin)):
            await self._deliver_presence(host, stanza, to)

    async def _to_full(self, host: VirtualHost, stanza: RoutedStanza, to: JID, origin: Session | None) -> None:
        """RFC 6121 §8.5.3."""
        if isinstance(stanza, Iq):
            if await host.hooks.fire(IqToAccount(stanza, to, origin)):
                return
            session = host.sessions.get(to)
            if session is not None:
                await session.send(stanza)
            else:
                await self.bounce(stanza, _C.SERVICE_UNAVAILABLE)  # §8.5.3.2.1 (results and errors dropped)
        elif isinstance(stanza, Message):
            if not await host.hooks.fire(MessageToAccount(stanza, to, origin)):
                await self.deliver_message(host, stanza, to)
        elif not await host.hooks.fire(PresenceToAccount(stanza, to, origin)):
            await self._deliver_presence(host, stanza, to)

    # -- defaults -------------------------------------------------------------------------------------------------
    async def deliver_message(self, host: VirtualHost, message: Message, to: JID) -> None:
        """The default delivery of :class:`MessageToAccount` (RFC 6121 §8.5.2.1.1 and §8.5.3)."""
        mtype = message.type
        if to.resource is not None:
            session = host.sessions.get(to)
            if session is not None:
                await session.send(message)
                return
            if mtype is MessageType.GROUPCHAT or message.is_error:
                # §8.5.3.2.1: groupchat to an absent resource gets an error; an error is dropped.
                await self.bounce(message, _C.SERVICE_UNAVAILABLE)
                return
        elif mtype is MessageType.GROUPCHAT:
            await self.bounce(message, _C.SERVICE_UNAVAILABLE)  # §8.5.2.1.1
            return
        targets = self._message_targets(host, to.bare, mtype)
        if not targets:
            if not await host.hooks.fire(MessageUndelivered(message, to)):
                await self._undelivered(message)
            return
        for session in targets:
            await session.send(message)

    @staticmethod
    def _message_targets(host: VirtualHost, bare: JID, mtype: MessageType) -> list[Session]:
        # §8.5.2.1.1: a negative priority never receives messages for the bare JID.
        candidates = [s for s in host.sessions.of(bare) if s.available and s.priority >= 0]
        if not candidates or mtype is MessageType.HEADLINE:
            return candidates  # headline: every non-negative resource
        top = max(s.priority for s in candidates)
        return [s for s in candidates if s.priority == top]

    async def _undelivered(self, message: Message) -> None:
        """§8.5.2.2 with no offline storage: errors, groupchat and headlines dropped, others bounced."""
        if message.is_error or message.type in (MessageType.GROUPCHAT, MessageType.HEADLINE):
            return
        await self.bounce(message, _C.SERVICE_UNAVAILABLE)

    @staticmethod
    async def _deliver_presence(host: VirtualHost, presence: Presence, to: JID) -> None:
        """The default of :class:`PresenceToAccount`: directed presence and errors reach sessions; the
        subscription types are the presence module's (dropped without it)."""
        if presence.type not in (PresenceType.AVAILABLE, PresenceType.UNAVAILABLE, PresenceType.ERROR):
            return
        if to.resource is not None:
            session = host.sessions.get(to)
            if session is not None:
                await session.send(presence)
            return
        for session in host.sessions.of(to):
            if session.available:
                await session.send(presence)  # §8.5.2.1.2

    @staticmethod
    def _track_presence(session: Session, presence: Presence) -> bool:
        """With no presence module: remember availability and priority so that bare-JID delivery works.
        True when the session just became available (then :class:`SessionAvailable` is fired)."""
        ptype = presence.type
        if ptype is PresenceType.AVAILABLE:
            became = not session.available
            session.available = True
            session.priority = presence.priority
            session.presence = presence
            return became
        if ptype is PresenceType.UNAVAILABLE:
            session.available = False
            session.presence = None
        return False

    # -- IQ -------------------------------------------------------------------------------------------------------
    async def _iq(self, host: VirtualHost, iq: Iq, to: JID, scope: IqScope, origin: Session | None) -> None:
        if iq.type is None:
            await self.bounce(iq, _C.BAD_REQUEST, "an IQ needs the type get, set, result or error")
            return
        if not iq.is_request:
            return  # a result or error for the server or an account: nobody is waiting (§8.2.3)
        iq_type = iq.type
        payload = iq.payload
        handler = host.iq_handler(iq_type, payload.name, scope) if iq_type and payload is not None else None
        if handler is None:
            await self.bounce(iq, _C.SERVICE_UNAVAILABLE)  # RFC 6120 §8.4
            return
        try:
            result = handler(IqRequest(iq, to, origin))
            if inspect.isawaitable(result):
                result = await result
        except StanzaError as error:
            await self._reply(iq.error_reply(error))
            return
        except Exception:
            log.exception("IQ handler for %s %s failed", iq.type_value, payload.name if payload is not None else "")
            await self._reply(iq.error_reply(StanzaError(_C.INTERNAL_SERVER_ERROR)))
            return
        if result is None or isinstance(result, Element):
            await self._reply(iq.result(result))
        else:
            await self._reply(iq.result(result.to_element()))

    # -- errors ---------------------------------------------------------------------------------------------------
    async def bounce(self, stanza: RoutedStanza, condition: StanzaErrorCondition, text: str | None = None) -> None:
        """Answer ``stanza`` with an error, unless it is one, or an IQ response (§8.3.1: never an error for an
        error); the reply comes from the address the stanza was sent to."""
        if stanza.is_error or (isinstance(stanza, Iq) and stanza.type is IqType.RESULT):
            return
        if stanza.element.attrs.get("from") is None:
            return  # nobody to answer
        reply = stanza.error_reply(StanzaError(condition, text=text))
        if "to" not in stanza.element.attrs:
            reply.element.attrs.pop("from", None)
        await self._reply(reply)

    async def _reply(self, reply: RoutedStanza) -> None:
        try:
            await self.route(reply)
        except Exception:
            log.exception("could not route a reply to %s", reply.element.attrs.get("to"))

    def _host_of(self, sender: JID | None) -> VirtualHost:
        if sender is not None and sender.domain in self._hosts:
            return self._hosts[sender.domain]
        return next(iter(self._hosts.values()))
