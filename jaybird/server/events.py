"""The events the server core fires on a host's :class:`~jaybird.server.hooks.HookBus`.

Each is a fact, named as one. A handler returning True has handled it: the core's default (written on each
class) then does not run. Stanzas in events are never mutated by handlers: make a copy to change one
(``stanza.element.copy()``), the core has already stamped ``from``.
"""

from __future__ import annotations

from dataclasses import dataclass

from jaybird.errors import StreamError
from jaybird.jid import JID
from jaybird.server.api import Session
from jaybird.stanza import Iq, Message, Presence
from jaybird.xml.element import Element

__all__ = [
    "AccountRemoved",
    "IqToAccount",
    "MessageForHost",
    "MessageToAccount",
    "MessageUndelivered",
    "PresenceForHost",
    "PresenceToAccount",
    "RemoteStanza",
    "SessionAvailable",
    "SessionEnded",
    "SessionStarted",
    "SharedStateChanged",
    "StanzaFromClient",
]


@dataclass(frozen=True, slots=True)
class AccountRemoved:
    """A local account was deleted (in-band, XEP-0077 §3.2), after its sessions were closed. Every module that
    stores data for accounts deletes the account's own here (vCard, private XML, blocklist, roster, ...), so a
    later account of the same name starts empty. No default.
    """

    account: JID


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """A client bound a resource and its stream is ready (no presence sent yet)."""

    session: Session


@dataclass(frozen=True, slots=True)
class SessionAvailable:
    """A session became available: its initial presence (RFC 6121 §4.2) was processed, ``session.available``
    and ``session.priority`` are set and the presence was broadcast. Fired by the presence module, once per
    transition from unavailable to available (not for later presence updates).

    Listeners: offline messages are delivered here (XEP-0160 §4, RFC 6121 §8.5.2.1.1). No default.
    """

    session: Session
    presence: Presence


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """A client session is gone (closed, lost, replaced by a resource conflict, shut down).

    Fired once, after the session left the registry; ``session.available`` still tells whether it had sent
    available presence (the presence module then broadcasts unavailable on its behalf, RFC 6121 §4.5.1).
    """

    session: Session
    error: StreamError | None


@dataclass(frozen=True, slots=True)
class StanzaFromClient:
    """A stanza from a local client, ``from`` stamped with its full JID, before routing.

    Handled: the core does not route it (the presence module takes presence without ``to``: RFC 6121 §4.2
    initial presence and broadcast; blocking drops outgoing stanzas to blocked JIDs).
    Default: route it by its ``to`` (RFC 6120 §10).
    """

    session: Session
    stanza: Message | Presence | Iq


@dataclass(frozen=True, slots=True)
class MessageToAccount:
    """A message for a local account (``to`` is its bare or a full JID) that exists.

    Default: RFC 6121 §8.5.2 / §8.5.3 delivery (bare: to the available resources with the highest non-negative
    priority, every such resource for ``chat`` per §8.5.2.1.1; full: to that resource, else as if to the bare
    JID for normal/chat/headline); when no resource can take it, :class:`MessageUndelivered` is fired.
    """

    stanza: Message
    to: JID
    origin: Session | None


@dataclass(frozen=True, slots=True)
class MessageUndelivered:
    """No session could take a message for an existing local account.

    Handled: stored (offline messages). Default: ``type='error'`` and ``groupchat`` are dropped silently,
    ``headline`` dropped, others answered ``service-unavailable`` (RFC 6121 §8.5.2.2).
    """

    stanza: Message
    to: JID


@dataclass(frozen=True, slots=True)
class PresenceToAccount:
    """A presence for a local account that exists (subscriptions, probes, directed presence).

    Default: to a full JID, deliver to that session if it exists; to a bare JID, deliver to every available
    resource (RFC 6121 §8.5.2.1.2); subscription types without a handler are dropped.
    """

    stanza: Presence
    to: JID
    origin: Session | None


@dataclass(frozen=True, slots=True)
class IqToAccount:
    """An IQ for a local account that exists, addressed to its bare JID (answered by the server on the
    account's behalf, RFC 6121 §8.5.2.1.3) or to one of its full JIDs, before the core answers or delivers it.
    Not fired for an IQ without ``to`` (the account's own request, RFC 6120 §10.3.3).

    Handled: the core does nothing more (the handler answered or dropped it; blocking answers IQs from a
    blocked JID ``service-unavailable``, XEP-0191 §3.3). Default: to the bare JID, the ACCOUNT-scope handler;
    to a full JID, delivery to that session (``service-unavailable`` when there is none, §8.5.3.2.1).
    """

    stanza: Iq
    to: JID
    origin: Session | None


@dataclass(frozen=True, slots=True)
class MessageForHost:
    """A message addressed to the server's own domain (or a JID at it with no account). Default: dropped
    (an error reply for types that may get one)."""

    stanza: Message
    origin: Session | None


@dataclass(frozen=True, slots=True)
class PresenceForHost:
    """A presence addressed to the server's own domain. Default: dropped."""

    stanza: Presence
    origin: Session | None


@dataclass(frozen=True, slots=True)
class RemoteStanza:
    """A stanza for a domain this server does not host. Handled: sent (s2s). Default:
    ``remote-server-not-found`` (RFC 6120 §10.4.3)."""

    stanza: Message | Presence | Iq
    to: JID
    origin: Session | None


@dataclass(frozen=True, slots=True)
class SharedStateChanged:
    """A module changed stored state that the other worker processes (``workers`` > 1) may hold a copy of.

    The module fires it on its host (``remote`` False); every other worker then fires it on its own host with
    ``remote`` True, where the module drops its copy of ``key``'s ``kind`` of state (its store's name, say) and,
    given a ``payload``, does for its own sessions what the change calls for (a push). No default: with one
    process there is no other copy.
    """

    kind: str
    key: str
    payload: Element | None = None
    remote: bool = False
