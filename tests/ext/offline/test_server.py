"""Offline messages (XEP-0160) on a real host with fake sessions; delay stamps (XEP-0203)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from jaybird.ext.offline.server import STORE, OfflineModule, decode, encode, should_store
from jaybird.ext.offline.wire import DELAY, MSGOFFLINE, NO_STORE_HINT, STORE_HINT, Delay
from jaybird.jid import JID
from jaybird.server.config import LimitsConfig
from jaybird.server.events import MessageUndelivered, SessionAvailable
from jaybird.server.storage import open_storage
from jaybird.stanza import Message, MessageType, Presence
from jaybird.xml.element import Element
from tests.ext.disco.harness import DOMAIN, Harness, make_harness, unload

JULIET = "juliet@example.com"
ROMEO = "romeo@example.com/orchard"


def _message(body: str | None = "hi", type: MessageType = MessageType.CHAT, *hints: str) -> Message:
    message = Message.build(JULIET, body, type=type, from_=ROMEO)
    for hint in hints:
        message.add(Element(hint))
    return message


@pytest.mark.parametrize(
    ("message", "stored"),
    [
        (_message(), True),
        (_message(type=MessageType.NORMAL), True),
        (_message(type=MessageType.GROUPCHAT), False),  # XEP-0160 §3
        (_message(type=MessageType.HEADLINE), False),
        (_message(type=MessageType.ERROR), False),
        (_message(None), False),  # e.g. a chat state alone
        (_message(None, MessageType.CHAT, STORE_HINT), True),  # XEP-0334 §4.3
        (_message("hi", MessageType.CHAT, NO_STORE_HINT), False),  # XEP-0334 §4.2
    ],
)
def test_what_is_stored(message: Message, stored: bool) -> None:
    assert should_store(message) is stored


def test_encoding_round_trips() -> None:
    message = _message("<b>&</b>")
    assert decode(encode(message)) == message
    with pytest.raises(ValueError):
        decode("<message xmlns='jabber:client'>")


async def _undelivered(harness: Harness, message: Message) -> bool:
    return await harness.host.hooks.fire(MessageUndelivered(message, JID(JULIET)))


async def _available(harness: Harness, priority: int = 0) -> list[Element]:
    session = harness.session(f"{JULIET}/balcony", available=True, priority=priority)
    await harness.host.hooks.fire(SessionAvailable(session, Presence.build(priority=priority)))
    harness.host.sessions.remove(session)
    return session.sent


async def test_stored_then_delivered_with_a_delay_stamp_then_deleted() -> None:
    harness, modules = await make_harness([OfflineModule])
    assert MSGOFFLINE in harness.host.features()
    first, second = _message("one"), _message("two")
    stored_at = datetime.now(UTC)
    assert await _undelivered(harness, first) is True
    assert await _undelivered(harness, second) is True
    assert await harness.host.storage.archive.count(JULIET, STORE) == 2

    sent = [Message(element) for element in await _available(harness)]
    assert [m.body for m in sent] == ["one", "two"]  # oldest first
    for message in sent:
        assert message.id in (first.id, second.id) and message.from_ == JID(ROMEO)
        delay_element = message.find(DELAY)
        assert delay_element is not None
        delay = Delay.from_element(delay_element)
        assert delay.from_ == DOMAIN
        assert abs(delay.stamp - stored_at) < timedelta(seconds=5)
        assert delay_element.attrs["stamp"].endswith("Z")
    assert await harness.host.storage.archive.count(JULIET, STORE) == 0
    assert await _available(harness) == []  # delivered once only
    await unload(modules)


async def test_negative_priority_gets_nothing() -> None:
    """RFC 6121 §8.5.2.1.1 / XEP-0160 §4: only a non-negative priority receives offline messages."""
    harness, modules = await make_harness([OfflineModule])
    await _undelivered(harness, _message())
    assert await _available(harness, priority=-1) == []
    assert await harness.host.storage.archive.count(JULIET, STORE) == 1
    assert len(await _available(harness, priority=1)) == 1
    await unload(modules)


async def test_types_that_are_not_stored_go_to_the_default() -> None:
    harness, modules = await make_harness([OfflineModule])
    for message in (_message(type=MessageType.GROUPCHAT), _message(type=MessageType.HEADLINE), _message(None)):
        assert await _undelivered(harness, message) is False
    assert await harness.host.storage.archive.count(JULIET, STORE) == 0
    await unload(modules)


async def test_the_per_user_limit_declines_so_the_core_answers_service_unavailable() -> None:
    limits = replace(LimitsConfig(), offline_max_per_user=2)
    harness, modules = await make_harness([OfflineModule], limits=limits)
    assert [await _undelivered(harness, _message(str(i))) for i in range(3)] == [True, True, False]
    assert await harness.host.storage.archive.count(JULIET, STORE) == 2
    # another account has its own quota
    assert await harness.host.hooks.fire(MessageUndelivered(_message(), JID(ROMEO).bare)) is True
    await unload(modules)


async def test_zero_limit_stores_nothing() -> None:
    harness, modules = await make_harness([OfflineModule], limits=replace(LimitsConfig(), offline_max_per_user=0))
    assert await _undelivered(harness, _message()) is False
    await unload(modules)


async def test_more_than_one_batch_is_delivered_in_order_and_survives_a_module_reload() -> None:
    storage = await open_storage("memory://")
    harness, modules = await make_harness([OfflineModule], storage=storage)
    for i in range(250):
        await _undelivered(harness, _message(str(i)))
    await unload(modules)
    harness, modules = await make_harness([OfflineModule], storage=storage)
    sent = await _available(harness)
    assert [Message(e).body for e in sent] == [str(i) for i in range(250)]
    assert await storage.archive.count(JULIET, STORE) == 0
    await unload(modules)
