"""The client's behaviour over a connection that fails: reconnect with backoff, IQ timeouts, a console that
never shows credentials, and the graceful close handshake (RFC 6120 §4.4) — all against a real Prosody."""

from __future__ import annotations

import asyncio
import base64

import pytest

from jaybird import ns
from jaybird.client import Client, ConnectionLost
from jaybird.dispatch import IqTimeout
from jaybird.ext.ping.client import ping
from jaybird.stanza import Iq, IqType, Message, MessageType
from jaybird.xml.element import Element
from tests.peers.prosody import ProsodyWithAccounts
from tests.peers.proxy import TCPProxy

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_reconnects_after_the_connection_drops(prosody: ProsodyWithAccounts) -> None:
    server, juliet, romeo = prosody.server, prosody.juliet, prosody.romeo
    async with TCPProxy(server.host, server.c2s_port) as proxy:
        client = Client(
            juliet.jid,
            juliet.password,
            host="127.0.0.1",
            port=proxy.port,
            ca_file=str(server.ca_file),
            resource="phone",
            reconnect_delay=(0.05, 0.2),
        )
        sessions: list[str] = []
        client.on_session_started(lambda c: sessions.append(str(c.jid)))
        async with (
            client,
            Client(
                romeo.jid,
                romeo.password,
                host=server.host,
                port=server.c2s_port,
                ca_file=str(server.ca_file),
                reconnect=False,
            ) as rc,
        ):
            received: list[Message] = []

            async def collect() -> None:
                async for stanza in client.stanzas():
                    if isinstance(stanza, Message) and stanza.body:
                        received.append(stanza)

            reader = asyncio.create_task(collect())
            proxy.cut()
            await wait_for(lambda: len(sessions) == 2 and client.is_connected)
            assert proxy.accepted == 2
            assert await ping(client, timeout=10) >= 0
            # The same stanzas() iteration goes on across the reconnection.
            await rc.send(Message.build(client.jid, "still there?", type=MessageType.CHAT))
            await wait_for(lambda: received)
            assert received[0].body == "still there?"
        await asyncio.wait_for(reader, 5)  # close() ends the iteration
    assert sessions == [f"{juliet.jid}/phone"] * 2


async def test_iq_timeout_and_lost_connection_without_reconnect(prosody: ProsodyWithAccounts) -> None:
    server, juliet = prosody.server, prosody.juliet
    async with TCPProxy(server.host, server.c2s_port) as proxy:
        client = Client(
            juliet.jid, juliet.password, host="127.0.0.1", port=proxy.port, ca_file=str(server.ca_file), reconnect=False
        )
        async with client:
            proxy.stall()
            with pytest.raises(IqTimeout):
                await client.iq(Iq.build(IqType.GET, Element(ns.clark(ns.PING, "ping")), to="localhost"), timeout=0.3)
            # Still stalled: a request in flight when the connection goes ...
            pending = asyncio.create_task(
                client.iq(Iq.build(IqType.GET, Element(ns.clark(ns.PING, "ping")), to="localhost"), timeout=30)
            )
            await asyncio.sleep(0.05)
            proxy.cut()
            # ... fails at once with the connection, not at its timeout.
            with pytest.raises(ConnectionLost):
                await asyncio.wait_for(pending, 5)
            await wait_for(lambda: not client.is_connected)
            with pytest.raises(ConnectionLost):
                await client.send(Message.build("romeo@localhost", "x"))


async def test_console_redacts_credentials_and_shows_the_close_handshake(prosody: ProsodyWithAccounts) -> None:
    server, juliet = prosody.server, prosody.juliet
    lines: list[tuple[str, str]] = []
    client = Client(
        juliet.jid,
        juliet.password,
        host=server.host,
        port=server.c2s_port,
        ca_file=str(server.ca_file),
        mechanisms=["PLAIN"],
        reconnect=False,
        console=lambda d, t: lines.append((d, t)),
    )
    async with client:
        pass
    text = "".join(t for _, t in lines)
    secret = base64.b64encode(f"\0juliet\0{juliet.password}".encode()).decode()
    assert secret not in text and juliet.password not in text
    assert "<auth" in text and "[redacted]" in text
    # RFC 6120 §4.4: we close, then the server closes its stream too, before the TCP connection goes.
    outgoing = [t for d, t in lines if d == "out"]
    assert outgoing[-1].endswith("</stream:stream>")
    assert any(d == "in" and "</stream:stream>" in t for d, t in lines[-3:])
