"""XEP-0199 for clients: ping an entity, and answer pings."""

from __future__ import annotations

import time

from jaybird.client import Client
from jaybird.dispatch import IqPattern
from jaybird.ext.ping.wire import NAME, Ping
from jaybird.jid import JID
from jaybird.stanza import Iq, IqType


async def ping(client: Client, to: JID | str | None = None, *, timeout: float | None = None) -> float:
    """Ping ``to`` (our server when None) and return the round-trip time in seconds.

    Raises :class:`~jaybird.errors.StanzaError` when the entity answers with an error (XEP-0199 §4: a
    ``service-unavailable`` error still proves that it is there) and a timeout error when nothing comes back.
    """
    target = to if to is not None else client.account.domain
    started = time.monotonic()
    await client.iq(Iq.build(IqType.GET, Ping(), to=target), timeout=timeout)
    return time.monotonic() - started


def answer_pings(client: Client) -> IqPattern:
    """Answer pings sent to this client (XEP-0199 §4.2) with an empty result."""

    def on_ping(iq: Iq) -> None:
        return None  # an empty result

    return client.mux.handle_iq(IqType.GET, NAME, on_ping)
