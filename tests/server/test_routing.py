"""Routing between sessions and to the server (RFC 6120 §10, RFC 6121 §8.5), with no modules loaded."""

from __future__ import annotations

import asyncio

import pytest

from jaybird.client import Client
from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.server.api import IqRequest, IqScope
from jaybird.stanza import Iq, IqType, Message, MessageType, Presence
from jaybird.xml.element import Element
from tests.server.conftest import RunningServer, ServerFactory
from tests.server.helpers import UNKNOWN_PAYLOAD, barrier, nothing_arrives, watch

PASSWORD = "balcony-at-midnight"
ECHO = "{urn:example:echo}echo"


async def _online(client: Client, priority: int) -> None:
    await client.send(Presence.build(priority=priority))
    await barrier(client)


async def _pair(running: RunningServer) -> None:
    await running.add_user("juliet", PASSWORD)
    await running.add_user("romeo", PASSWORD)


async def test_bare_chat_goes_to_the_highest_priority(start_server: ServerFactory) -> None:
    # RFC 6121 §8.5.2.1.1: to the highest-priority available resource(s), never a negative one.
    running = await start_server()
    await _pair(running)
    async with (
        running.client("juliet@localhost", PASSWORD, resource="high") as high,
        running.client("juliet@localhost", PASSWORD, resource="low") as low,
        running.client("romeo@localhost", PASSWORD) as romeo,
    ):
        await _online(high, 5)
        await _online(low, 1)
        high_stream, low_stream = high.stanzas(), low.stanzas()
        got_high = watch(high_stream)
        await asyncio.sleep(0.05)
        await romeo.send(Message.build("juliet@localhost", "to the top", type=MessageType.CHAT))
        message = await got_high
        assert isinstance(message, Message) and message.body == "to the top"
        assert message.from_ == romeo.jid and message.to is not None and message.to.bare == high.jid.bare
        assert await nothing_arrives(low_stream)


async def test_equal_priorities_all_get_chat(start_server: ServerFactory) -> None:
    running = await start_server()
    await _pair(running)
    async with (
        running.client("juliet@localhost", PASSWORD, resource="a") as a,
        running.client("juliet@localhost", PASSWORD, resource="b") as b,
        running.client("romeo@localhost", PASSWORD) as romeo,
    ):
        await _online(a, 2)
        await _online(b, 2)
        got_a, got_b = watch(a.stanzas()), watch(b.stanzas())
        await asyncio.sleep(0.05)
        await romeo.send(Message.build("juliet@localhost", "both", type=MessageType.CHAT))
        for got in (await got_a, await got_b):
            assert isinstance(got, Message) and got.body == "both"


async def test_full_jid_reaches_that_resource_even_with_lower_priority(start_server: ServerFactory) -> None:
    # RFC 6121 §8.5.3.1: a full JID is delivered to that resource.
    running = await start_server()
    await _pair(running)
    async with (
        running.client("juliet@localhost", PASSWORD, resource="high") as high,
        running.client("juliet@localhost", PASSWORD, resource="low") as low,
        running.client("romeo@localhost", PASSWORD) as romeo,
    ):
        await _online(high, 5)
        await _online(low, -1)
        got_low = watch(low.stanzas())
        await asyncio.sleep(0.05)
        await romeo.send(Message.build(low.jid, "just you", type=MessageType.CHAT))
        message = await got_low
        assert isinstance(message, Message) and message.body == "just you"
        assert await nothing_arrives(high.stanzas())


async def test_no_available_resource_bounces_service_unavailable(start_server: ServerFactory) -> None:
    # RFC 6121 §8.5.2.2 with no offline storage; a negative priority never gets bare-JID messages.
    running = await start_server()
    await _pair(running)
    async with (
        running.client("juliet@localhost", PASSWORD) as juliet,
        running.client("romeo@localhost", PASSWORD) as romeo,
    ):
        await _online(juliet, -1)
        reply = watch(romeo.stanzas())
        await asyncio.sleep(0.05)
        await romeo.send(Message.build("juliet@localhost", "anyone?", type=MessageType.CHAT, id="m1"))
        error = await reply
        assert isinstance(error, Message) and error.id == "m1"
        assert error.error is not None and error.error.condition is StanzaErrorCondition.SERVICE_UNAVAILABLE
        assert error.from_ == juliet.jid.bare


async def test_message_to_missing_account_is_service_unavailable(start_server: ServerFactory) -> None:
    # RFC 6121 §8.5.1
    running = await start_server()
    await _pair(running)
    async with running.client("romeo@localhost", PASSWORD) as romeo:
        reply = watch(romeo.stanzas())
        await asyncio.sleep(0.05)
        await romeo.send(Message.build("nobody@localhost", "hello?", type=MessageType.CHAT))
        error = await reply
        assert error.error is not None and error.error.condition is StanzaErrorCondition.SERVICE_UNAVAILABLE


@pytest.mark.parametrize(
    ("to", "condition"),
    [
        ("localhost", StanzaErrorCondition.SERVICE_UNAVAILABLE),  # RFC 6120 §8.4: no handler
        (None, StanzaErrorCondition.SERVICE_UNAVAILABLE),  # §10.3.3: own account, no handler
        ("juliet@localhost", StanzaErrorCondition.SERVICE_UNAVAILABLE),  # bare JID, no ACCOUNT handler
        ("nobody@localhost", StanzaErrorCondition.SERVICE_UNAVAILABLE),  # RFC 6121 §8.5.1
        ("juliet@localhost/gone", StanzaErrorCondition.SERVICE_UNAVAILABLE),  # §8.5.3.2.1
        ("remote.example", StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND),  # RFC 6120 §10.4.3
        ("someone@remote.example", StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND),
    ],
)
async def test_iq_errors(start_server: ServerFactory, to: str | None, condition: StanzaErrorCondition) -> None:
    running = await start_server()
    await _pair(running)
    async with running.client("romeo@localhost", PASSWORD) as romeo:
        with pytest.raises(StanzaError) as info:
            await romeo.iq(Iq.build(IqType.GET, Element(UNKNOWN_PAYLOAD), to=to))
        assert info.value.condition is condition


async def test_iq_between_full_jids_and_back(start_server: ServerFactory) -> None:
    running = await start_server()
    await _pair(running)
    async with (
        running.client("juliet@localhost", PASSWORD) as juliet,
        running.client("romeo@localhost", PASSWORD) as romeo,
    ):

        async def answer(iq: Iq) -> Element:
            return Element(ECHO, text="pong")

        juliet.mux.handle_iq(IqType.GET, ECHO, answer)
        result = await romeo.iq(Iq.build(IqType.GET, Element(ECHO), to=juliet.jid))
        assert result.from_ == juliet.jid


async def test_iq_handlers_and_their_errors(start_server: ServerFactory) -> None:
    running = await start_server()
    await _pair(running)
    host = running.server.hosts["localhost"]
    seen: list[IqRequest] = []

    async def echo(request: IqRequest) -> Element:
        seen.append(request)
        return Element(ECHO, text=str(request.to))

    def refuse(request: IqRequest) -> None:
        raise StanzaError(StanzaErrorCondition.FORBIDDEN, text="no")

    def crash(request: IqRequest) -> None:
        raise RuntimeError("bug")

    host.register_iq(IqType.GET, ECHO, echo, scope=IqScope.HOST)
    host.register_iq(IqType.GET, ECHO, echo, scope=IqScope.ACCOUNT)
    host.register_iq(IqType.SET, ECHO, refuse, scope=IqScope.HOST)
    host.register_iq(IqType.SET, ECHO, crash, scope=IqScope.ACCOUNT)
    with pytest.raises(ValueError):
        host.register_iq(IqType.GET, ECHO, echo, scope=IqScope.HOST)
    async with running.client("romeo@localhost", PASSWORD) as romeo:
        result = await romeo.iq(Iq.build(IqType.GET, Element(ECHO), to="localhost"))
        assert result.element.find_text(ECHO) == "localhost"
        result = await romeo.iq(Iq.build(IqType.GET, Element(ECHO)))
        assert result.element.find_text(ECHO) == "romeo@localhost"  # RFC 6120 §10.3.3: the sender's account
        await romeo.iq(Iq.build(IqType.GET, Element(ECHO), to="juliet@localhost"))
        assert [str(r.to) for r in seen] == ["localhost", "romeo@localhost", "juliet@localhost"]
        assert seen[-1].sender == romeo.jid and seen[-1].origin is not None
        with pytest.raises(StanzaError) as info:
            await romeo.iq(Iq.build(IqType.SET, Element(ECHO), to="localhost"))
        assert info.value.condition is StanzaErrorCondition.FORBIDDEN and info.value.text == "no"
        with pytest.raises(StanzaError) as info:
            await romeo.iq(Iq.build(IqType.SET, Element(ECHO)))
        assert info.value.condition is StanzaErrorCondition.INTERNAL_SERVER_ERROR


async def test_message_to_remote_domain_is_remote_server_not_found(start_server: ServerFactory) -> None:
    running = await start_server()
    await _pair(running)
    async with running.client("romeo@localhost", PASSWORD) as romeo:
        reply = watch(romeo.stanzas())
        await asyncio.sleep(0.05)
        await romeo.send(Message.build("juliet@remote.example", "far", type=MessageType.CHAT))
        error = await reply
        assert error.error is not None and error.error.condition is StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND


async def test_error_is_never_answered_with_an_error(start_server: ServerFactory) -> None:
    # RFC 6120 §8.3.1 rule 2
    running = await start_server()
    await _pair(running)
    async with running.client("romeo@localhost", PASSWORD) as romeo:
        stream = romeo.stanzas()
        pending = watch(stream, timeout=0.5)
        bad = Message.build("nobody@localhost", type=MessageType.CHAT)
        bad.element.attrs["type"] = "error"
        await romeo.send(bad)
        await romeo.send(Iq.build(IqType.RESULT, to="nobody@localhost"))
        with pytest.raises(TimeoutError):
            await pending


async def test_stamped_from_and_original_untouched(start_server: ServerFactory) -> None:
    # RFC 6120 §8.1.2.1: the server stamps the full JID whatever the client wrote (here nothing).
    running = await start_server()
    await _pair(running)
    async with (
        running.client("juliet@localhost", PASSWORD) as juliet,
        running.client("romeo@localhost", PASSWORD) as romeo,
    ):
        got = watch(juliet.stanzas())
        await asyncio.sleep(0.05)
        await romeo.send(Message.build(juliet.jid, "x", type=MessageType.CHAT))
        message = await got
        assert message.from_ == romeo.jid
