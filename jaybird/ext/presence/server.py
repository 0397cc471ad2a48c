"""The presence module: subscriptions (RFC 6121 §3) and presence exchange (RFC 6121 §4).

It keeps each session's ``available``, ``priority`` and ``presence`` (the core reads them to deliver messages),
turns the subscription state machine's outcomes (:mod:`jaybird.ext.presence.subscription`) into stanzas and
roster pushes, and remembers per session where directed presence went (§4.6).

Pre-approval (§3.4) is supported; its stream feature ``<sub xmlns='urn:xmpp:features:pre-approval'/>`` is a
c2s stream feature, which the module contract cannot add: the core advertises it, or clients find out by trying.

Roster locks are held only while reading and writing the owner's roster and sending its pushes; stanzas to
other accounts are routed after the lock is released, since a local contact's side takes that contact's lock.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field, replace

from jaybird import ns
from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.presence.subscription import SUBSCRIPTION_TYPES, Outcome, inbound, outbound
from jaybird.ext.roster.server import RosterModule
from jaybird.ext.roster.store import RosterEntry
from jaybird.jid import JID
from jaybird.server.api import ServerModule, Session
from jaybird.server.events import PresenceToAccount, SessionAvailable, SessionEnded, StanzaFromClient
from jaybird.stanza import Presence, PresenceType
from jaybird.stream.feature import StreamFeature, always
from jaybird.stream.state import SessionState
from jaybird.xml.element import Element

__all__ = ["PRE_APPROVAL_FEATURE", "PresenceModule"]

PRE_APPROVAL_FEATURE = "urn:xmpp:features:pre-approval"
#: RFC 6121 §3.4.1: the server supports subscription pre-approval; advertised after authentication.
PRE_APPROVAL = StreamFeature(
    name=ns.clark(PRE_APPROVAL_FEATURE, "sub"),
    necessary=SessionState.AUTHENTICATED,
    advertise=always(Element(ns.clark(PRE_APPROVAL_FEATURE, "sub"))),
)
#: Directed-presence recipients remembered per session (beyond this the oldest are forgotten).
MAX_DIRECTED = 1000


@dataclass
class _SessionPresence:
    """What the module remembers of one session: the entities it sent directed available presence to."""

    directed: dict[JID, None] = field(default_factory=dict)  # ordered set


def _copy(presence: Presence, *, to: JID | None, from_: JID | None = None) -> Presence:
    element = presence.element.copy()
    element.set("to", None if to is None else str(to))
    if from_ is not None:
        element.set("from", str(from_))
    return Presence(element)


class PresenceModule(ServerModule):
    name = "presence"
    implements = ("RFC 6121 §3", "RFC 6121 §4")
    requires = (RosterModule,)

    async def load(self) -> None:
        roster = self.host.module(RosterModule)
        if roster is None:
            raise RuntimeError("the presence module needs the roster module loaded first")
        self.roster = roster
        self.on(StanzaFromClient, self._from_client)
        self.on(PresenceToAccount, self._to_account)
        self.stream_feature(PRE_APPROVAL)
        self.on(SessionEnded, self._session_ended)

    # -- from the account's own clients ----------------------------------------------------------------------
    def _from_client(self, event: StanzaFromClient) -> bool | Awaitable[bool]:
        # Every stanza a client sends passes here: messages and IQs leave without a coroutine.
        if not isinstance(event.stanza, Presence):
            return False
        return self._presence_from_client(event, event.stanza)

    async def _presence_from_client(self, event: StanzaFromClient, stanza: Presence) -> bool:
        session = event.session
        type_ = stanza.type
        if type_ is None:
            await session.send(stanza.error_reply(_bad_request("unknown presence type (RFC 6121 §4.7.1)")))
            return True
        to = stanza.to
        if to is None:
            if type_ is PresenceType.AVAILABLE:
                await self._available(session, stanza)
            elif type_ is PresenceType.UNAVAILABLE:
                await self._unavailable(session, stanza)
            elif type_ is not PresenceType.ERROR:
                reply = _bad_request("a subscription or probe names its recipient (RFC 6121 §3, §4.3)")
                await session.send(stanza.error_reply(reply))
            return True
        if type_ in SUBSCRIPTION_TYPES:
            await self._outbound_subscription(session, stanza, type_, to.bare)
            return True
        if type_ in (PresenceType.AVAILABLE, PresenceType.UNAVAILABLE):
            await self._note_directed(session, to, type_)
        return False  # directed presence, probes and errors are routed by the core

    async def _available(self, session: Session, presence: Presence) -> None:
        """Initial presence (RFC 6121 §4.2) or a presence update (§4.4)."""
        initial = not session.available
        owner = session.jid.bare
        own = _copy(presence, to=None, from_=session.jid)
        session.available = True
        session.priority = presence.priority
        session.presence = own
        entries = await self.roster.entries(owner)
        for entry in entries:
            if entry.state.from_:
                await self.host.route(_copy(own, to=entry.jid), origin=session)
        for other in self.host.sessions.of(owner):
            if other.available:  # every available resource, the sender included (§4.2.2, §4.4.2)
                await other.send(_copy(own, to=other.jid))
        if not initial:
            return
        for entry in entries:
            if entry.state.to:
                await self._probe(session, entry.jid)
        for other in self.host.sessions.of(owner):
            if other is not session and other.available and other.presence is not None:
                await session.send(_copy(other.presence, to=session.jid))
        for entry in entries:
            if entry.state.pending_in:  # §3.1.3: requests that waited for an available resource
                request = Presence.build(
                    to=owner, type=PresenceType.SUBSCRIBE, status=entry.request_status, from_=entry.jid
                )
                await session.send(request)
        # Offline messages and the like wait for this (XEP-0160 §4, RFC 6121 §8.5.2.1.1).
        await self.host.hooks.fire(SessionAvailable(session, own))

    async def _probe(self, session: Session, contact: JID) -> None:
        """Learn a contact's presence for a newly available resource (RFC 6121 §4.3)."""
        if contact.domain != self.host.domain:
            await self.host.route(Presence.build(to=contact, type=PresenceType.PROBE, from_=session.jid.bare))
            return
        # A local contact: its sessions are here, so answer as its server would, without a probe stanza. With no
        # available resource nothing is sent (§4.3.2 lets the server stay silent): the client starts offline.
        owner = session.jid.bare
        theirs = await self.roster.get_entry(contact, owner)
        if theirs is None or not theirs.state.from_:
            await self._answer_probe(contact, owner)  # the two rosters disagree: the contact's side decides
            return
        for other in self.host.sessions.of(contact):
            if other.available and other.presence is not None:
                await session.send(_copy(other.presence, to=session.jid))

    async def _unavailable(self, session: Session, presence: Presence) -> None:
        """Unavailable presence (RFC 6121 §4.5): to subscribers, own resources and directed recipients."""
        own = _copy(presence, to=None, from_=session.jid)
        await self._broadcast_unavailable(session, own, own_resources=True)

    async def _broadcast_unavailable(self, session: Session, own: Presence, *, own_resources: bool) -> None:
        owner = session.jid.bare
        was_available = session.available
        session.available = False
        session.presence = None
        session.priority = 0
        sent: set[JID] = set()
        if was_available:
            for entry in await self.roster.entries(owner):
                if entry.state.from_:
                    sent.add(entry.jid)
                    await self.host.route(_copy(own, to=entry.jid))
            if own_resources:
                for other in self.host.sessions.of(owner):
                    if other.available or other is session:
                        await other.send(_copy(own, to=other.jid))
        state = session.data.pop(PresenceModule, None)
        if isinstance(state, _SessionPresence):
            for target in state.directed:  # §4.6.3: directed presence ends with the session's availability
                if target not in sent:
                    await self.host.route(_copy(own, to=target))

    async def _note_directed(self, session: Session, to: JID, type_: PresenceType) -> None:
        """Remember directed available presence (RFC 6121 §4.6) unless the broadcast reaches ``to`` anyway."""
        state = session.data.get(PresenceModule)
        if type_ is PresenceType.UNAVAILABLE:
            if isinstance(state, _SessionPresence):
                state.directed.pop(to, None)
            return
        entry = await self.roster.get_entry(session.jid, to)
        if entry is not None and entry.state.from_ and to.is_bare:
            return
        if not isinstance(state, _SessionPresence):
            state = session.data[PresenceModule] = _SessionPresence()
        state.directed[to] = None
        if len(state.directed) > MAX_DIRECTED:
            del state.directed[next(iter(state.directed))]

    async def _outbound_subscription(self, session: Session, stanza: Presence, type_: PresenceType, to: JID) -> None:
        """The account's client sent subscribe/subscribed/unsubscribe/unsubscribed (RFC 6121 §3, A.2)."""
        owner = session.jid.bare
        if to == owner:
            return  # a subscription to oneself has no state to keep: every resource sees its siblings anyway
        async with self.roster.lock(owner):
            entry = await self.roster.get_entry(owner, to) or RosterEntry(jid=to, listed=False)
            outcome = outbound(entry.state, type_)
            # Asking, approving or pre-approving puts the contact on the roster (§3.1.2, §3.1.5, §3.4).
            lists = type_ is PresenceType.SUBSCRIBE or (type_ is PresenceType.SUBSCRIBED and outcome.changed)
            updated = replace(entry.with_state(outcome.after), listed=entry.listed or lists)
            await self.roster.update(owner, updated)
        stamped = _copy(stanza, to=to, from_=owner)  # §3.1.2: from the bare JID, to the bare JID
        await self._apply(owner, to, outcome, stamped)

    # -- to the account, from anyone -------------------------------------------------------------------------
    async def _to_account(self, event: PresenceToAccount) -> bool:
        stanza = event.stanza
        sender = stanza.from_
        type_ = stanza.type
        if sender is None or type_ is None:
            return True  # nothing to answer to, or nothing RFC 6121 defines: dropped
        to = event.to
        if type_ in SUBSCRIPTION_TYPES:
            await self._inbound_subscription(to.bare, sender.bare, stanza, type_)
        elif type_ is PresenceType.PROBE:
            await self._answer_probe(to.bare, sender)
        elif to.resource is not None:
            target = self.host.sessions.get(to)
            if target is not None:
                await target.send(stanza)
        else:
            for session in self.host.sessions.of(to):
                if session.available:  # §8.5.2.1.2
                    await session.send(stanza)
        return True

    async def _inbound_subscription(self, owner: JID, contact: JID, stanza: Presence, type_: PresenceType) -> None:
        """A contact's subscribe/subscribed/unsubscribe/unsubscribed for the account (RFC 6121 §3, A.3)."""
        if owner == contact:
            return
        async with self.roster.lock(owner):
            entry = await self.roster.get_entry(owner, contact) or RosterEntry(jid=contact, listed=False)
            outcome = inbound(entry.state, type_)
            updated = entry.with_state(outcome.after)
            if type_ is PresenceType.SUBSCRIBE and outcome.after.pending_in:
                updated = replace(updated, request_status=stanza.status)
            if updated != entry:
                await self.roster.update(owner, updated)
        if outcome.forward:
            delivered = _copy(stanza, to=owner, from_=contact)
            for session in self.host.sessions.of(owner):
                if session.available:
                    await session.send(delivered)
        if outcome.reply is not None:
            await self.host.route(Presence.build(to=contact, type=outcome.reply, from_=owner))
        await self._apply(owner, contact, outcome, None)

    async def _apply(self, owner: JID, contact: JID, outcome: Outcome, routed: Presence | None) -> None:
        """Route the stanza when the outcome says so, and the presence that follows a change of ``from``."""
        if outcome.lost_from:
            # The contact stops receiving our presence: it hears we are gone (§3.2.2, §3.3.3).
            for session in self.host.sessions.of(owner):
                if session.available:
                    unavailable = Presence.build(to=contact, type=PresenceType.UNAVAILABLE, from_=session.jid)
                    await self.host.route(unavailable)
        if routed is not None and outcome.forward:
            await self.host.route(routed)
        if outcome.gained_from:
            # A new subscriber gets the current presence of every available resource (§3.1.5, §3.4).
            for session in self.host.sessions.of(owner):
                if session.available and session.presence is not None:
                    await self.host.route(_copy(session.presence, to=contact))

    async def _answer_probe(self, owner: JID, prober: JID) -> None:
        """RFC 6121 §4.3.2: the account's presence to a subscriber; ``unsubscribed`` to anyone else."""
        entry = await self.roster.get_entry(owner, prober)
        if entry is None or not entry.state.from_:
            # The prober believes it is subscribed: correct it, unless its request is only waiting for an answer
            # (an unsubscribed would then cancel that request, A.3.4).
            if entry is None or not entry.state.pending_in:
                await self.host.route(Presence.build(to=prober, type=PresenceType.UNSUBSCRIBED, from_=owner))
            return
        answered = False
        for session in self.host.sessions.of(owner):
            if session.available and session.presence is not None:
                answered = True
                await self.host.route(_copy(session.presence, to=prober))
        if not answered:
            await self.host.route(Presence.build(to=prober, type=PresenceType.UNAVAILABLE, from_=owner))

    # -- sessions ending ---------------------------------------------------------------------------------------
    async def _session_ended(self, event: SessionEnded) -> None:
        """A session gone without unavailable presence: send it in its name (RFC 6121 §4.5.1)."""
        session = event.session
        if not session.available and PresenceModule not in session.data:
            return
        unavailable = Presence.build(type=PresenceType.UNAVAILABLE, from_=session.jid)
        await self._broadcast_unavailable(session, unavailable, own_resources=True)


def _bad_request(text: str) -> StanzaError:
    return StanzaError(StanzaErrorCondition.BAD_REQUEST, text=text)
