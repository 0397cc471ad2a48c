"""XEP-0012 on the server: uptime (§5) and an account's last logout (§4)."""

from __future__ import annotations

import json
import time

import pytest

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.last.server import STORE, LastActivityModule
from jaybird.ext.last.wire import LAST, LastActivity
from jaybird.server.api import IqScope
from jaybird.server.events import SessionEnded, StanzaFromClient
from jaybird.stanza import Presence, PresenceType
from tests.ext.disco.harness import Harness, make_harness, unload

JULIET = "juliet@example.com"


async def _last(harness: Harness, *, sender: str, to: str) -> LastActivity:
    scope = IqScope.ACCOUNT if "@" in to else IqScope.HOST
    result = await harness.ask(harness.get(LastActivity().to_element(), sender=sender, to=to), scope)
    assert result is not None
    return LastActivity.from_element(result)


async def test_server_uptime() -> None:
    harness, modules = await make_harness([LastActivityModule])
    assert LAST in harness.host.features()
    module = modules[0]
    assert isinstance(module, LastActivityModule)
    module.started -= 42  # as if loaded 42 s ago
    answer = await _last(harness, sender=f"{JULIET}/r", to="example.com")
    assert answer.seconds is not None and 42 <= answer.seconds <= 43
    await unload(modules)


async def test_logout_is_recorded_with_the_status_of_the_unavailable_presence() -> None:
    harness, modules = await make_harness([LastActivityModule])
    with pytest.raises(StanzaError) as caught:
        await _last(harness, sender=f"{JULIET}/phone", to=JULIET)
    assert caught.value.condition is StanzaErrorCondition.ITEM_NOT_FOUND  # never logged out yet

    session = harness.session(f"{JULIET}/balcony", available=True)
    assert (await _last(harness, sender=f"{JULIET}/phone", to=JULIET)).seconds == 0  # online: 0 (§4)
    goodbye = Presence.build(type=PresenceType.UNAVAILABLE, status="Gone to bed", from_=session.jid)
    assert await harness.host.hooks.fire(StanzaFromClient(session, goodbye)) is False  # only observed
    session.available = False
    harness.host.sessions.remove(session)
    await harness.host.hooks.fire(SessionEnded(session, None))
    assert await _last(harness, sender=f"{JULIET}/phone", to=JULIET) == LastActivity(0, "Gone to bed")

    # as if it had happened 300 s ago
    raw = await harness.host.storage.kv.get(JULIET, STORE)
    assert raw is not None
    record = json.loads(raw)
    record["when"] -= 300
    await harness.host.storage.kv.set(JULIET, STORE, json.dumps(record))
    answer = await _last(harness, sender=f"{JULIET}/phone", to=JULIET)
    assert answer.seconds is not None and 300 <= answer.seconds <= 301
    await unload(modules)


async def test_a_session_ending_while_another_is_online_records_nothing() -> None:
    harness, modules = await make_harness([LastActivityModule])
    harness.session(f"{JULIET}/balcony", available=True)
    phone = harness.session(f"{JULIET}/phone", available=True)
    harness.host.sessions.remove(phone)
    await harness.host.hooks.fire(SessionEnded(phone, None))
    assert await harness.host.storage.kv.get(JULIET, STORE) is None
    await unload(modules)


async def test_strangers_are_forbidden() -> None:
    """XEP-0012 §4: no presence subscription, no last activity."""
    harness, modules = await make_harness([LastActivityModule])
    await harness.host.storage.kv.set(JULIET, STORE, json.dumps({"when": time.time(), "status": None}))
    with pytest.raises(StanzaError) as caught:
        await _last(harness, sender="tybalt@example.com/street", to=JULIET)
    assert caught.value.condition is StanzaErrorCondition.FORBIDDEN
    await unload(modules)


def test_wire() -> None:
    assert LastActivity().to_element().attrs == {}
    answer = LastActivity(903, "Heading Home")
    assert LastActivity.from_element(answer.to_element()) == answer
