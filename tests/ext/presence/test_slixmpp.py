"""A stock client (slixmpp) subscribes and exchanges presence through the roster and presence modules.

slixmpp behaves as many clients do: it fetches the roster, approves requests and asks back on its own
(``auto_authorize``/``auto_subscribe``), and keeps its roster from the server's pushes (RFC 6121 §2.1.6).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
import slixmpp

from jaybird.ext.roster.client import approve, get_roster, subscribe
from jaybird.ext.roster.wire import Subscription
from jaybird.jid import JID
from jaybird.stanza import Presence, PresenceType
from tests.ext.roster.harness import PASSWORD, Cast

pytestmark = pytest.mark.interop

WAIT = 10.0


@asynccontextmanager
async def slixmpp_online(im: Cast, local: str) -> AsyncIterator[slixmpp.ClientXMPP]:
    """Logged in with slixmpp, roster fetched, initial presence echoed back (RFC 6121 §4.2.2)."""
    account = await im.account(local)
    client = slixmpp.ClientXMPP(f"{account}/slix", PASSWORD)
    client.ca_certs = im.running.cert_file
    client.enable_plaintext = False
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def start(_: Any) -> None:
        await client.get_roster()
        client.send_presence()

    def echoed(presence: Any) -> None:
        if presence["from"] == client.boundjid and not ready.done():
            ready.set_result(None)

    client.add_event_handler("session_start", start)
    client.add_event_handler("presence_available", echoed)
    try:
        client.connect(host="127.0.0.1", port=im.running.port)
        await asyncio.wait_for(ready, WAIT)
        yield client
    finally:
        client.cancel_connection_attempt()
        with suppress(TimeoutError):
            await asyncio.wait_for(client.disconnect(wait=1.0), WAIT)
        client.abort()


async def eventually(check: Any, what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not check():
            await asyncio.sleep(0.05)


async def test_slixmpp_approves_and_subscribes_back(im: Cast) -> None:
    juliet = await im.connect(await im.account("juliet"), "balcony")
    await get_roster(juliet.client)
    await juliet.client.send(Presence.build(status="on the balcony"))
    await juliet.expect_presence(juliet.jid)
    async with slixmpp_online(im, "romeo") as romeo:
        romeo_bare = JID(str(romeo.boundjid.bare))
        await subscribe(juliet.client, romeo_bare)
        await juliet.expect_push(romeo_bare, Subscription.NONE, ask=True)
        # slixmpp approves (§3.1.4) and asks back (§3.1.1).
        await juliet.expect_push(romeo_bare, Subscription.TO)
        await juliet.expect_presence(romeo_bare, PresenceType.SUBSCRIBE)
        await approve(juliet.client, romeo_bare)
        await juliet.expect_push(romeo_bare, Subscription.BOTH)

        # slixmpp's roster, kept from our pushes, agrees; and it saw Juliet's presence (§3.1.5).
        item = romeo.client_roster[str(juliet.jid.bare)]
        await eventually(lambda: item["subscription"] == "both", "slixmpp roster at 'both'")
        await eventually(lambda: str(juliet.jid.resource) in item.resources, "slixmpp sees Juliet available")
        assert item.resources[str(juliet.jid.resource)]["status"] == "on the balcony"

        romeo.send_presence(pstatus="in the orchard")
        seen = await juliet.expect(lambda got: isinstance(got, Presence) and got.status == "in the orchard")
        assert isinstance(seen, Presence) and seen.from_ == JID(str(romeo.boundjid))
