"""Offline messages against an in-process server (XEP-0160 §4, XEP-0203), across a restart too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jaybird.errors import StanzaErrorCondition
from jaybird.ext.offline.server import STORE
from jaybird.ext.offline.wire import DELAY, Delay
from jaybird.jid import JID
from jaybird.stanza import Message, MessageType, Presence
from tests.ext.disco.live import WAIT, eventually, messages_after
from tests.server.conftest import RunningServer, ServerFactory


async def _stored(running: RunningServer, account: JID, count: int) -> None:
    async def done() -> bool:
        return await running.server.storage.archive.count(str(account), STORE) >= count

    await eventually(done)


async def _login_and_collect(running: RunningServer, account: JID, password: str, count: int) -> list[Message]:
    async with running.client(account, password) as client:

        async def initial_presence() -> None:
            await client.send(Presence.build())

        return await messages_after(client, initial_presence, count)


def _assert_delayed(message: Message, domain: str, stored_at: datetime) -> None:
    element = message.find(DELAY)
    assert element is not None, "XEP-0203 delay stamp missing"
    delay = Delay.from_element(element)
    assert delay.from_ == domain
    assert abs(delay.stamp - stored_at) < timedelta(seconds=WAIT)


# Alone, the core's own presence tracking signals availability; with the default modules, the presence module does.
MODULE_SETS = pytest.mark.parametrize("modules", [["offline"], None], ids=["offline-alone", "default-modules"])


@MODULE_SETS
async def test_a_message_to_an_offline_user_arrives_at_login_with_its_delay(
    start_server: ServerFactory, modules: list[str] | None
) -> None:
    running = await start_server(modules=modules)
    juliet = await running.add_user("juliet", "balcony")
    romeo = await running.add_user("romeo", "wherefore")
    stored_at = datetime.now(UTC)
    async with running.client(romeo, "wherefore") as sender:
        await sender.send(Message.build(juliet, "Wherefore art thou?", type=MessageType.CHAT))
        await _stored(running, juliet, 1)
    got = await _login_and_collect(running, juliet, "balcony", 1)
    assert got[0].body == "Wherefore art thou?" and got[0].from_ is not None and got[0].from_.bare == romeo
    _assert_delayed(got[0], running.domain, stored_at)
    assert await running.server.storage.archive.count(str(juliet), STORE) == 0


@MODULE_SETS
async def test_offline_messages_survive_a_restart(
    start_server: ServerFactory, tmp_path: Path, modules: list[str] | None
) -> None:
    url = f"sqlite:///{tmp_path / 'offline.sqlite3'}"
    first = await start_server(modules=modules, storage=url)
    juliet = await first.add_user("juliet", "balcony")
    romeo = await first.add_user("romeo", "wherefore")
    stored_at = datetime.now(UTC)
    async with first.client(romeo, "wherefore") as sender:
        await sender.send(Message.build(juliet, "Still there?", type=MessageType.CHAT))
        await _stored(first, juliet, 1)
    await first.server.stop()

    second = await start_server(modules=modules, storage=url)
    got = await _login_and_collect(second, juliet, "balcony", 1)
    assert got[0].body == "Still there?"
    _assert_delayed(got[0], second.domain, stored_at)


async def test_the_per_user_limit_bounces_with_service_unavailable(start_server: ServerFactory) -> None:
    """XEP-0160 §3: over the limit the sender gets service-unavailable."""
    running = await start_server(modules=["offline"], toml="[limits]\noffline_max_per_user = 2\n")
    juliet = await running.add_user("juliet", "balcony")
    romeo = await running.add_user("romeo", "wherefore")
    async with running.client(romeo, "wherefore") as sender:
        for body in ("one", "two"):
            await sender.send(Message.build(juliet, body, type=MessageType.CHAT))
        await _stored(running, juliet, 2)

        async def third() -> None:
            await sender.send(Message.build(juliet, "three", type=MessageType.CHAT))

        bounced = await messages_after(sender, third, 1)
        assert bounced[0].is_error
        error = bounced[0].error
        assert error is not None and error.condition is StanzaErrorCondition.SERVICE_UNAVAILABLE
    got = await _login_and_collect(running, juliet, "balcony", 2)
    assert [m.body for m in got] == ["one", "two"]


async def test_negative_priority_login_gets_nothing_yet(start_server: ServerFactory) -> None:
    """RFC 6121 §8.5.2.1.1: a resource with negative priority does not receive offline messages."""
    running = await start_server(modules=["offline"])
    juliet = await running.add_user("juliet", "balcony")
    romeo = await running.add_user("romeo", "wherefore")
    async with running.client(romeo, "wherefore") as sender:
        await sender.send(Message.build(juliet, "later", type=MessageType.CHAT))
        await _stored(running, juliet, 1)
    async with running.client(juliet, "balcony") as client:

        async def hidden_presence() -> None:
            await client.send(Presence.build(priority=-1))

        with pytest.raises(TimeoutError):
            await messages_after(client, hidden_presence, 1, timeout=0.5)
    assert await running.server.storage.archive.count(str(juliet), STORE) == 1
