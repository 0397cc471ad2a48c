"""The Blocking Command on a running server, over TCP with the jaybird client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.blocking.wire import BLOCKED, Block, BlockList, Unblock
from jaybird.ext.vcard.wire import VCard
from jaybird.stanza import Iq, IqType, Message, MessageType, Presence
from jaybird.xml.element import Element
from tests.server.conftest import ServerFactory


async def next_message(stream: AsyncIterator[Message | Presence | Iq], timeout: float = 5.0) -> Message:
    async def first() -> Message:
        async for stanza in stream:
            if isinstance(stanza, Message):
                return stanza
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(first(), timeout)


async def test_blocking_stops_messages_both_ways_and_pushes(start_server: ServerFactory) -> None:
    running = await start_server(modules=["blocking"])
    juliet = await running.add_user("juliet", "balcony")
    romeo = await running.add_user("romeo", "wherefore")
    async with (
        running.client(juliet.with_resource("chamber"), "balcony") as chamber,
        running.client(juliet.with_resource("balcony"), "balcony") as balcony,
        running.client(romeo, "wherefore") as r,
    ):
        for client in (chamber, balcony, r):
            await client.send(Presence.build())
        pushes: asyncio.Queue[Iq] = asyncio.Queue()

        def on_push(iq: Iq) -> None:
            pushes.put_nowait(iq)

        balcony.mux.handle_iq(IqType.SET, Block.name, on_push)
        listed = await balcony.iq(Iq.build(IqType.GET, BlockList()))
        assert listed.get(BlockList) == BlockList()
        j_stream, r_stream = chamber.stanzas(), r.stanzas()

        await chamber.iq(Iq.build(IqType.SET, Block((romeo,))))
        push = await asyncio.wait_for(pushes.get(), 5.0)  # to the resource that retrieved the list
        assert push.get(Block) == Block((romeo,))

        # romeo -> juliet: bounced as if she were offline
        await r.send(Message.build(juliet, "hello?", type=MessageType.CHAT))
        bounce = await next_message(r_stream)
        assert bounce.error is not None and bounce.error.condition is StanzaErrorCondition.SERVICE_UNAVAILABLE
        # juliet -> romeo: refused with <blocked/>
        await chamber.send(Message.build(romeo, "go away", type=MessageType.CHAT))
        refused = await next_message(j_stream)
        assert refused.error is not None and refused.error.condition is StanzaErrorCondition.NOT_ACCEPTABLE
        assert refused.error.app_condition == Element(BLOCKED)

        await chamber.iq(Iq.build(IqType.SET, Unblock()))
        await r.send(Message.build(juliet, "now?", type=MessageType.CHAT))
        delivered = await next_message(j_stream)
        assert delivered.body == "now?" and not delivered.is_error


async def test_iq_from_a_blocked_user_is_refused(start_server: ServerFactory) -> None:
    running = await start_server(modules=["blocking", "vcard"])
    juliet = await running.add_user("juliet", "balcony")
    romeo = await running.add_user("romeo", "wherefore")
    async with running.client(juliet, "balcony") as j, running.client(romeo, "wherefore") as r:
        await j.iq(Iq.build(IqType.SET, Block((romeo,))))
        with pytest.raises(StanzaError) as refused:  # even the server's answer for her account
            await r.iq(Iq.build(IqType.GET, VCard(), to=juliet))
        assert refused.value.condition is StanzaErrorCondition.SERVICE_UNAVAILABLE
