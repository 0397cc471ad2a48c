"""RFC 6121 §2 and §3 for clients: read and change the roster, follow its pushes, manage subscriptions."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable

from jaybird.client import Client
from jaybird.dispatch import IqPattern
from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.roster.wire import QUERY, RosterItem, RosterQuery, Subscription
from jaybird.jid import JID
from jaybird.stanza import Iq, IqType, Presence, PresenceType

__all__ = [
    "approve",
    "deny",
    "get_roster",
    "handle_pushes",
    "remove_item",
    "set_item",
    "subscribe",
    "unsubscribe",
]

PushCallback = Callable[[RosterItem, str | None], Awaitable[None] | None]


async def get_roster(client: Client, *, ver: str | None = None, timeout: float | None = None) -> RosterQuery | None:
    """The roster (RFC 6121 §2.2). With ``ver`` (XEP-0237), None means the cached copy of that version is
    current and changes will come as pushes (§2.6.3)."""
    result = await client.iq(Iq.build(IqType.GET, RosterQuery(ver=ver)), timeout=timeout)
    query = result.find(QUERY)
    return None if query is None else RosterQuery.from_element(query)


async def set_item(
    client: Client, jid: JID | str, *, name: str | None = None, groups: Iterable[str] = (), timeout: float | None = None
) -> None:
    """Add or update a roster item (RFC 6121 §2.3, §2.4); raises StanzaError when the server refuses it."""
    item = RosterItem(jid=JID(str(jid)), name=name, groups=tuple(groups))
    await client.iq(Iq.build(IqType.SET, RosterQuery(items=(item,))), timeout=timeout)


async def remove_item(client: Client, jid: JID | str, *, timeout: float | None = None) -> None:
    """Remove a roster item and cancel the subscriptions with it (RFC 6121 §2.5)."""
    item = RosterItem(jid=JID(str(jid)), subscription=Subscription.REMOVE)
    await client.iq(Iq.build(IqType.SET, RosterQuery(items=(item,))), timeout=timeout)


async def _presence(client: Client, jid: JID | str, type_: PresenceType, status: str | None = None) -> None:
    await client.send(Presence.build(JID(str(jid)).bare, type=type_, status=status))


async def subscribe(client: Client, jid: JID | str, *, status: str | None = None) -> None:
    """Ask for a contact's presence (RFC 6121 §3.1.1)."""
    await _presence(client, jid, PresenceType.SUBSCRIBE, status)


async def approve(client: Client, jid: JID | str) -> None:
    """Approve a subscription request, or pre-approve one not yet made (RFC 6121 §3.1.4, §3.4)."""
    await _presence(client, jid, PresenceType.SUBSCRIBED)


async def deny(client: Client, jid: JID | str) -> None:
    """Refuse a request or cancel a contact's subscription to us (RFC 6121 §3.1.4, §3.2)."""
    await _presence(client, jid, PresenceType.UNSUBSCRIBED)


async def unsubscribe(client: Client, jid: JID | str) -> None:
    """Stop receiving a contact's presence (RFC 6121 §3.3)."""
    await _presence(client, jid, PresenceType.UNSUBSCRIBE)


def handle_pushes(client: Client, callback: PushCallback) -> IqPattern:
    """Answer roster pushes and pass each item (and the new ``ver``) to ``callback`` (RFC 6121 §2.1.6).

    A push from anyone but our own account is refused as if we did not take pushes (§2.1.6: the client MUST
    ignore it), so another entity cannot rewrite the roster the client shows.
    """

    async def on_push(iq: Iq) -> None:
        sender = iq.from_
        if sender is not None and sender != client.jid.bare:
            raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)
        payload = iq.find(QUERY)
        assert payload is not None
        query = RosterQuery.from_element(payload)
        if len(query.items) != 1:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, text="a push holds one item (RFC 6121 §2.1.6)")
        result = callback(query.items[0], query.ver)
        if inspect.isawaitable(result):
            await result

    return client.mux.handle_iq(IqType.SET, QUERY, on_push)
