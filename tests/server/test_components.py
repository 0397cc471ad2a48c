"""External components (XEP-0114) on the in-process server: a jaybird Component serving jaybird and slixmpp
clients, the refusals of the handshake (not-authorized, host-unknown, conflict), what users get while the
component is away, the server's disco#items, and the stream-level checks and timeouts seen on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jaybird import ns
from jaybird.client import Client
from jaybird.component import Component
from jaybird.errors import StanzaError, StanzaErrorCondition, StanzaErrorType, StreamError, StreamErrorCondition
from jaybird.ext.disco.wire import INFO, DiscoIdentity, DiscoInfo, DiscoItem, DiscoItems
from jaybird.ext.ping.client import answer_pings
from jaybird.ext.version.wire import SoftwareVersion
from jaybird.jid import JID
from jaybird.stanza import Iq, IqType, Message, MessageType
from jaybird.stream.features.handshake import handshake_digest
from jaybird.xml.element import Element
from tests.peers.ports import free_port
from tests.server.conftest import RunningServer, ServerFactory

pytestmark = pytest.mark.timeout(60)

GATEWAY = "gateway.localhost"
ELSEWHERE = "bridge.example.org"  # not a subdomain of any host
OTHER_PORT = "other.localhost"  # configured, but on another port
SECRET = "gateway-shared-secret"
PING = ns.clark(ns.PING, "ping")
UNKNOWN = "{urn:example:unknown}q"
WAIT = 5.0
HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept'"
    " xmlns:stream='http://etherx.jabber.org/streams' to='{to}'>"
)
_S = StreamErrorCondition


def components_toml(port: int, other_port: int) -> str:
    return (
        f'[[listeners.components]]\ndomain = "{GATEWAY}"\nsecret = "{SECRET}"\nport = {port}\n'
        f'interfaces = ["127.0.0.1"]\n'
        f'[[listeners.components]]\ndomain = "{ELSEWHERE}"\nsecret = "another-secret"\nport = {port}\n'
        f'interfaces = ["127.0.0.1"]\n'
        f'[[listeners.components]]\ndomain = "{OTHER_PORT}"\nsecret = "{SECRET}"\nport = {other_port}\n'
        f'interfaces = ["127.0.0.1"]\n'
    )


class Setup:
    def __init__(self, running: RunningServer, port: int) -> None:
        self.running = running
        self.port = port

    def component(self, domain: str = GATEWAY, secret: str = SECRET, **options: Any) -> Component:
        options.setdefault("reconnect", False)
        options.setdefault("iq_timeout", WAIT)
        options.setdefault("negotiation_timeout", WAIT)
        return Component(domain, secret, host="127.0.0.1", port=self.port, **options)


@pytest.fixture
async def setup(start_server: ServerFactory) -> Setup:
    port = free_port()
    running = await start_server(modules=["disco"], toml=components_toml(port, free_port()))
    return Setup(running, port)


@contextlib.asynccontextmanager
async def inbox(session: Client | Component) -> AsyncIterator[asyncio.Queue[Message]]:
    """Messages as they arrive on ``session`` (subscribed before the caller sends anything)."""
    queue: asyncio.Queue[Message] = asyncio.Queue()

    async def collect() -> None:
        async for stanza in session.stanzas():
            if isinstance(stanza, Message):
                queue.put_nowait(stanza)

    task = asyncio.create_task(collect())
    await asyncio.sleep(0)
    try:
        yield queue
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def gateway_handlers(comp: Component, seen: list[JID | None]) -> None:
    def version(iq: Iq) -> SoftwareVersion:
        seen.append(iq.from_)
        return SoftwareVersion("jaybird-gateway", "1.0")

    comp.mux.handle_iq(IqType.GET, SoftwareVersion.name, version)
    comp.mux.handle_iq(
        IqType.GET, INFO, lambda iq: DiscoInfo(identities=(DiscoIdentity("gateway", "xmpp", "Test gateway"),))
    )


async def test_jaybird_client_and_component_talk_both_ways(setup: Setup) -> None:
    running = setup.running
    juliet = await running.add_user("juliet", "balcony")
    seen: list[JID | None] = []
    comp = setup.component()
    gateway_handlers(comp, seen)
    async with comp, running.client(juliet, "balcony") as jc:
        # client -> server -> component -> server -> client, for the domain and for a JID in it (XEP-0114 §1).
        answer = await jc.iq(Iq.build(IqType.GET, SoftwareVersion(), to=GATEWAY), timeout=WAIT)
        assert answer.payload is not None and answer.from_ == JID(GATEWAY)
        assert SoftwareVersion.from_element(answer.payload) == SoftwareVersion("jaybird-gateway", "1.0")
        assert seen == [jc.jid]  # the server stamped the client's full JID (RFC 6120 §8.1.2.1)
        answer = await jc.iq(Iq.build(IqType.GET, DiscoInfo(), to=f"room@{GATEWAY}/nick"), timeout=WAIT)
        assert answer.payload is not None
        assert DiscoInfo.from_element(answer.payload).identities == (DiscoIdentity("gateway", "xmpp", "Test gateway"),)

        # RFC 6120 §8.4: what the component's mux does not handle, it answers service-unavailable.
        with pytest.raises(StanzaError) as raised:
            await jc.iq(Iq.build(IqType.GET, Element(UNKNOWN), to=GATEWAY), timeout=WAIT)
        assert raised.value.condition is StanzaErrorCondition.SERVICE_UNAVAILABLE
        assert raised.value.text is None  # the component's own answer, not one made up by the server

        # The component writes to the user from any address in its domain (XEP-0114 §3).
        async with inbox(jc) as messages:
            await comp.send(Message.build(jc.jid, "from the gateway", type=MessageType.CHAT, from_=f"bot@{GATEWAY}"))
            message = await asyncio.wait_for(messages.get(), WAIT)
        assert message.body == "from the gateway" and message.from_ == JID(f"bot@{GATEWAY}")

        # The user writes to a user of the gateway.
        async with inbox(comp) as messages:
            await jc.send(Message.build(f"bot@{GATEWAY}", "to the gateway", type=MessageType.CHAT))
            message = await asyncio.wait_for(messages.get(), WAIT)
        assert message.body == "to the gateway" and message.from_ == jc.jid and message.to == JID(f"bot@{GATEWAY}")

        # An IQ from the component to the user's full JID, and the user's result back to the component.
        answer_pings(jc)
        pong = await comp.iq(Iq.build(IqType.GET, Element(PING), to=jc.jid, from_=GATEWAY), timeout=WAIT)
        assert pong.type is IqType.RESULT and pong.from_ == jc.jid

        # An IQ to the server itself, answered by its disco module: the component finds itself listed.
        items = await comp.iq(Iq.build(IqType.GET, DiscoItems(), to=running.domain, from_=GATEWAY), timeout=WAIT)
        assert items.payload is not None
        assert DiscoItem(GATEWAY, name=GATEWAY) in DiscoItems.from_element(items.payload).items

        # To the bare JID of an account the server answers on its behalf (RFC 6121 §8.5.2.1.3): no handler.
        with pytest.raises(StanzaError) as raised:
            await comp.iq(Iq.build(IqType.GET, Element(UNKNOWN), to=juliet, from_=GATEWAY), timeout=WAIT)
        assert raised.value.condition is StanzaErrorCondition.SERVICE_UNAVAILABLE


async def test_slixmpp_client_uses_the_component(setup: Setup) -> None:
    """A third-party client (slixmpp) asks the component for its version and gets its messages."""
    slixmpp = pytest.importorskip("slixmpp")
    running = setup.running
    romeo = await running.add_user("romeo", "wherefore")
    comp = setup.component()
    comp.mux.handle_iq(IqType.GET, SoftwareVersion.name, lambda iq: SoftwareVersion("jaybird-gateway", "2.0"))
    async with comp:
        xmpp = slixmpp.ClientXMPP(str(romeo), "wherefore")
        xmpp.register_plugin("xep_0092")
        xmpp.ca_certs = str(running.cert_file)
        xmpp.enable_plaintext = False
        xmpp.enable_direct_tls = False
        xmpp.enable_starttls = True
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        received: asyncio.Queue[Any] = asyncio.Queue()

        def on_session_start(_event: object) -> None:
            if not ready.done():
                ready.set_result(None)

        xmpp.add_event_handler("session_start", on_session_start)
        xmpp.add_event_handler("message", received.put_nowait)
        try:
            xmpp.connect(host="127.0.0.1", port=running.port)
            await asyncio.wait_for(ready, 15)
            answer = await xmpp.plugin["xep_0092"].get_version(GATEWAY, timeout=WAIT)
            assert answer["software_version"]["name"] == "jaybird-gateway"
            assert answer["software_version"]["version"] == "2.0"
            full = JID(str(xmpp.boundjid.full))
            await comp.send(Message.build(full, "hello slixmpp", type=MessageType.CHAT, from_=f"echo@{GATEWAY}"))
            message = await asyncio.wait_for(received.get(), WAIT)
            assert message["body"] == "hello slixmpp" and str(message["from"]) == f"echo@{GATEWAY}"
        finally:
            xmpp.cancel_connection_attempt()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(xmpp.disconnect(wait=1.0), WAIT)
            xmpp.abort()


async def test_wrong_secret_is_not_authorized(setup: Setup) -> None:
    """XEP-0114 §3: a handshake that does not match the secret closes the stream with not-authorized."""
    with pytest.raises(StreamError) as raised:
        async with setup.component(secret="not-the-secret", reconnect=True):
            pass
    assert raised.value.condition is _S.NOT_AUTHORIZED
    # The secret of another component does not open this one either.
    with pytest.raises(StreamError) as raised:
        async with setup.component(ELSEWHERE, SECRET):
            pass
    assert raised.value.condition is _S.NOT_AUTHORIZED


@pytest.mark.parametrize("domain", ["nobody.localhost", OTHER_PORT])
async def test_unknown_domain_is_host_unknown(setup: Setup, domain: str) -> None:
    """A domain not configured on this port (nowhere, or on another port) is host-unknown (XEP-0114 §3)."""
    with pytest.raises(StreamError) as raised:
        async with setup.component(domain):
            pass
    assert raised.value.condition is _S.HOST_UNKNOWN


async def test_second_connection_is_conflict_and_the_first_keeps_the_domain(setup: Setup) -> None:
    """RFC 6120 §4.9.3.3 (the refusing form), as Prosody's default ``kick_new``."""
    running = setup.running
    juliet = await running.add_user("juliet", "balcony")
    first = setup.component()
    first.mux.handle_iq(IqType.GET, SoftwareVersion.name, lambda iq: SoftwareVersion("first", "1"))
    lines: list[tuple[str, str]] = []
    async with first, running.client(juliet, "balcony") as jc:
        second = setup.component(console=lambda direction, text: lines.append((direction, text)))
        with pytest.raises(StreamError) as raised:
            async with second:
                pass
        assert raised.value.condition is _S.CONFLICT
        # The newcomer was never told its handshake succeeded.
        assert not any(direction == "in" and "<handshake/>" in text for direction, text in lines)
        assert first.is_connected
        answer = await jc.iq(Iq.build(IqType.GET, SoftwareVersion(), to=GATEWAY), timeout=WAIT)
        assert answer.payload is not None and SoftwareVersion.from_element(answer.payload).software == "first"
    # Once the first has gone, the domain is free again.
    async with setup.component() as again:
        assert again.is_connected


async def test_component_not_connected(setup: Setup) -> None:
    """A configured component that is not connected: remote-server-timeout, type wait (RFC 6120 §8.3.3.16),
    as Prosody 0.12 answers; the same once a connected component has gone."""
    running = setup.running
    juliet = await running.add_user("juliet", "balcony")
    async with running.client(juliet, "balcony") as jc:
        for round in ("never connected", "gone"):
            with pytest.raises(StanzaError) as raised:
                await jc.iq(Iq.build(IqType.GET, SoftwareVersion(), to=GATEWAY), timeout=WAIT)
            assert raised.value.condition is StanzaErrorCondition.REMOTE_SERVER_TIMEOUT, round
            assert raised.value.type is StanzaErrorType.WAIT
            async with inbox(jc) as messages:
                await jc.send(Message.build(f"bot@{GATEWAY}", "anyone?", type=MessageType.CHAT, id="m1"))
                bounced = await asyncio.wait_for(messages.get(), WAIT)
            assert bounced.is_error and bounced.from_ == JID(f"bot@{GATEWAY}") and bounced.id == "m1"
            async with setup.component() as comp:
                assert comp.is_connected
        # A domain no component is configured for is not a component's business: remote-server-not-found.
        with pytest.raises(StanzaError) as raised:
            await jc.iq(Iq.build(IqType.GET, SoftwareVersion(), to="nothing.example.org"), timeout=WAIT)
        assert raised.value.condition is StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND


async def test_server_disco_items_list_the_components(start_server: ServerFactory) -> None:
    """XEP-0030 §4: a component is an item of each host it is a subdomain of; one under no host, of every host."""
    port = free_port()
    running = await start_server(
        domains=("localhost", "example.net"), modules=["disco"], toml=components_toml(port, free_port())
    )
    user = await running.add_user("juliet", "balcony")
    other = await running.add_user("romeo", "wherefore", domain="example.net")
    async with running.client(user, "balcony") as jc:
        answer = await jc.iq(Iq.build(IqType.GET, DiscoItems(), to="localhost"), timeout=WAIT)
        assert answer.payload is not None
        assert set(DiscoItems.from_element(answer.payload).items) == {
            DiscoItem(GATEWAY, name=GATEWAY),
            DiscoItem(OTHER_PORT, name=OTHER_PORT),
            DiscoItem(ELSEWHERE, name=ELSEWHERE),
        }
    other_cert = running.config.certificate_for(running.config.hosts[1]).cert_file
    async with running.client(other, "wherefore", ca_file=str(other_cert)) as rc:
        answer = await rc.iq(Iq.build(IqType.GET, DiscoItems(), to="example.net"), timeout=WAIT)
        assert answer.payload is not None
        assert DiscoItems.from_element(answer.payload).items == (DiscoItem(ELSEWHERE, name=ELSEWHERE),)
    # Listed while configured, whether connected or not; gone from disco#items once the server stops.
    await running.server.stop()
    assert running.server.hosts["localhost"].items() == ()


# -- on the wire ---------------------------------------------------------------------------------------------------


async def read_until(reader: asyncio.StreamReader, marker: bytes, timeout: float = WAIT) -> bytes:
    data = b""
    async with asyncio.timeout(timeout):
        while marker not in data:
            chunk = await reader.read(65536)
            if not chunk:
                break
            data += chunk
    return data


async def raw_component(port: int, domain: str = GATEWAY) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A hand-written component, handshake done."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HEADER.format(to=domain).encode())
    header = await read_until(reader, b">")
    found = re.search(rb"id='([^']+)'", header)
    assert found is not None, header
    writer.write(f"<handshake>{handshake_digest(found.group(1).decode(), SECRET)}</handshake>".encode())
    assert b"<handshake/>" in await read_until(reader, b"<handshake/>")
    return reader, writer


async def test_from_outside_the_domain_is_invalid_from(setup: Setup) -> None:
    """XEP-0114 §3: a component speaks only for its own domain; anything else closes its stream."""
    reader, writer = await raw_component(setup.port)
    try:
        writer.write(b"<message from='juliet@localhost' to='romeo@localhost'><body>forged</body></message>")
        data = await read_until(reader, b"</stream:stream>")
        assert b"<invalid-from" in data
        # The domain is free again at once.
        async with setup.component() as comp:
            assert comp.is_connected
    finally:
        writer.close()


async def test_handshake_timeout(start_server: ServerFactory) -> None:
    port = free_port()
    await start_server(modules=[], toml=f"[limits]\nhandshake_timeout_s = 0.3\n{components_toml(port, free_port())}")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(HEADER.format(to=GATEWAY).encode())
        data = await read_until(reader, b"</stream:stream>", timeout=3.0)
        assert b"<connection-timeout" in data
    finally:
        writer.close()


async def test_shutdown_sends_system_shutdown(setup: Setup) -> None:
    reader, writer = await raw_component(setup.port)
    try:
        stopping = asyncio.create_task(setup.running.server.stop())
        data = await read_until(reader, b"</stream:stream>")
        assert b"<system-shutdown" in data
        writer.write(b"</stream:stream>")
        await asyncio.wait_for(stopping, WAIT)
    finally:
        writer.close()
