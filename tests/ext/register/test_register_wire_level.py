"""Password change and account removal (XEP-0077 §3.3, §3.2) on a running server, over TCP."""

from __future__ import annotations

import asyncio

import pytest

from jaybird.client import Client, ConnectionLost, NegotiationError
from jaybird.errors import AuthenticationError
from jaybird.ext.register.wire import RegisterQuery
from jaybird.stanza import Iq, IqType
from tests.server.conftest import ServerFactory


async def test_password_change_then_login(start_server: ServerFactory) -> None:
    running = await start_server(modules=["register"])
    bill = await running.add_user("bill", "old-password")
    async with running.client(bill, "old-password") as client:
        await client.iq(Iq.build(IqType.SET, RegisterQuery(username="bill", password="new-password"), to=bill.domain))
    async with running.client(bill, "new-password") as again:
        assert again.jid.bare == bill
    with pytest.raises((AuthenticationError, NegotiationError)):
        async with running.client(bill, "old-password"):
            pass


async def test_removal_closes_the_session_and_deletes_the_account(start_server: ServerFactory) -> None:
    running = await start_server(modules=["register"])
    bill = await running.add_user("bill", "the-globe")
    client: Client = running.client(bill, "the-globe")
    await client.connect()
    try:
        stream = client.stanzas()
        reply = await client.iq(Iq.build(IqType.SET, RegisterQuery(remove=True)))
        assert reply.type is IqType.RESULT

        async def drain() -> None:
            async for _ in stream:
                pass

        with pytest.raises(ConnectionLost):  # the not-authorized stream error ends the session
            await asyncio.wait_for(drain(), 5.0)
    finally:
        await client.close()
    assert not await running.server.hosts[running.domain].account_exists(bill)
    with pytest.raises((AuthenticationError, NegotiationError)):
        async with running.client(bill, "the-globe"):
            pass
