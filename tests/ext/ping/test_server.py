"""The ping module: answers to the server, and idle-connection pings (XEP-0199 §4.1, §4.2)."""

from __future__ import annotations

from dataclasses import replace

from jaybird import ns
from jaybird.errors import StreamErrorCondition
from jaybird.ext.ping.server import PingModule
from jaybird.ext.ping.wire import NAME, Ping
from jaybird.server.api import IqScope
from jaybird.server.config import LimitsConfig
from jaybird.server.events import StanzaFromClient
from jaybird.stanza import Iq, IqType
from tests.ext.disco.harness import DOMAIN, make_harness, unload

LIMITS = replace(LimitsConfig(), ping_interval_s=30.0)


async def test_a_ping_to_the_server_gets_an_empty_result() -> None:
    harness, modules = await make_harness([PingModule])
    assert ns.PING in harness.host.features()
    assert await harness.ask(harness.get(Ping().to_element(), sender="juliet@example.com/r"), IqScope.HOST) is None
    await unload(modules)


async def test_a_silent_session_is_pinged_then_closed_without_an_answer() -> None:
    harness, modules = await make_harness([PingModule], limits=LIMITS, options={"ping": {"timeout_s": 10.0}})
    ping = modules[0]
    assert isinstance(ping, PingModule)
    session = harness.session("juliet@example.com/balcony")
    start = session.last_received

    await ping.sweep(start + 29.0)  # not silent long enough
    assert session.sent == []
    await ping.sweep(start + 30.0)
    assert len(session.sent) == 1
    sent = Iq(session.sent[0])
    assert sent.to == session.jid and str(sent.from_) == DOMAIN and sent.payload is not None
    assert sent.payload.name == NAME
    await ping.sweep(start + 35.0)  # waiting for the answer: neither a second ping nor a close
    assert len(session.sent) == 1 and session.closed == []
    await ping.sweep(start + 40.0)
    assert len(session.closed) == 1
    error = session.closed[0]
    assert error is not None and error.condition is StreamErrorCondition.CONNECTION_TIMEOUT
    await unload(modules)


async def test_any_data_counts_as_the_answer_and_the_result_is_not_routed() -> None:
    harness, modules = await make_harness([PingModule], limits=LIMITS, options={"ping": {"timeout_s": 10.0}})
    ping = modules[0]
    assert isinstance(ping, PingModule)
    session = harness.session("juliet@example.com/balcony")
    start = session.last_received
    await ping.sweep(start + 30.0)
    request = Iq(session.sent[0])
    session.last_received = start + 31.0
    reply = request.result()
    reply.from_ = session.jid  # stamped by the core
    assert await harness.host.hooks.fire(StanzaFromClient(session, reply)) is True
    # an unrelated result is not ours to swallow
    other = Iq.build(IqType.GET, Ping(), to=DOMAIN, from_=session.jid).result()
    assert await harness.host.hooks.fire(StanzaFromClient(session, other)) is False
    await ping.sweep(start + 45.0)
    assert session.closed == []
    assert len(session.sent) == 1  # 14 s of silence since the answer: not yet due again
    await ping.sweep(start + 61.0)
    assert len(session.sent) == 2
    await unload(modules)


async def test_busy_sessions_are_never_pinged() -> None:
    harness, modules = await make_harness([PingModule], limits=LIMITS)
    ping = modules[0]
    assert isinstance(ping, PingModule)
    session = harness.session("juliet@example.com/balcony")
    for _ in range(1, 10):
        session.last_received += 20.0
        await ping.sweep(session.last_received + 1.0)
    assert session.sent == [] and session.closed == []
    await unload(modules)


async def test_unload_stops_the_sweep_task() -> None:
    harness, modules = await make_harness([PingModule])
    ping = modules[0]
    assert isinstance(ping, PingModule)
    task = ping._task
    assert task is not None and not task.done()
    await ping.unload()
    assert task.done()
    assert ns.PING not in harness.host.features()
