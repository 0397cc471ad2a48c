"""A jaybird Component (XEP-0114) on a real Prosody's component port, with jaybird and slixmpp clients talking
to it through Prosody: the handshake, a refused secret, IQs both ways, messages, disco#info and the mux's
service-unavailable answer, the console and reconnection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from jaybird import ns
from jaybird.client import Client
from jaybird.component import Component
from jaybird.dispatch import IqTimeout
from jaybird.errors import StanzaError, StanzaErrorCondition, StreamError, StreamErrorCondition
from jaybird.ext.disco.wire import INFO, DiscoIdentity, DiscoInfo
from jaybird.ext.ping.client import answer_pings
from jaybird.ext.version.wire import SoftwareVersion
from jaybird.jid import JID
from jaybird.stanza import Iq, IqType, Message, MessageType
from jaybird.xml.element import Element
from tests.conftest import JULIET_PASSWORD
from tests.peers import Account, require_binary
from tests.peers.prosody import ProsodyServer
from tests.peers.proxy import TCPProxy

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

GATEWAY = "gateway.localhost"
SECRET = "gateway-shared-secret"
PING = ns.clark(ns.PING, "ping")


@pytest.fixture(scope="module")
def prosody_components(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProsodyServer, Account]]:
    require_binary("prosody")
    require_binary("prosodyctl")
    with ProsodyServer(tmp_path_factory.mktemp("prosody-component"), components={GATEWAY: SECRET}) as server:
        yield server, server.add_user("juliet", JULIET_PASSWORD)


def component_for(server: ProsodyServer, secret: str = SECRET, **options: object) -> Component:
    options.setdefault("reconnect", False)
    return Component(GATEWAY, secret, host=server.host, port=server.component_port, **options)  # type: ignore[arg-type]


def juliet_client(server: ProsodyServer, juliet: Account) -> Client:
    return Client(
        juliet.jid,
        juliet.password,
        host=server.host,
        port=server.c2s_port,
        ca_file=str(server.ca_file),
        reconnect=False,
    )


@contextlib.asynccontextmanager
async def collecting(session: Client | Component) -> AsyncIterator[asyncio.Queue[Message]]:
    """Messages with a body, as they arrive on ``session``."""
    queue: asyncio.Queue[Message] = asyncio.Queue()

    async def collect() -> None:
        async for stanza in session.stanzas():
            if isinstance(stanza, Message) and stanza.body:
                queue.put_nowait(stanza)

    task = asyncio.create_task(collect())
    await asyncio.sleep(0)  # subscribed before anything is sent
    try:
        yield queue
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_handshake_and_console(prosody_components: tuple[ProsodyServer, Account]) -> None:
    server, _ = prosody_components
    lines: list[tuple[str, str]] = []
    async with component_for(server, console=lambda d, t: lines.append((d, t))) as comp:
        assert comp.jid == JID(GATEWAY) and comp.is_connected
    out = "".join(t for d, t in lines if d == "out")
    # XEP-0114 §3: the secret itself never goes on the wire, only the digest.
    assert SECRET not in out and "<handshake>" in out and f"to='{GATEWAY}'" in out
    assert any(d == "in" and "<handshake/>" in t for d, t in lines)
    assert "External component successfully authenticated" in server.log_text()  # Prosody agrees


async def test_wrong_secret_is_refused_not_authorized(prosody_components: tuple[ProsodyServer, Account]) -> None:
    server, _ = prosody_components
    # Reconnection on: a refused handshake is still final, not retried.
    with pytest.raises(StreamError) as raised:
        async with component_for(server, "not-the-secret", reconnect=True):
            pass
    assert raised.value.condition is StreamErrorCondition.NOT_AUTHORIZED


async def test_unknown_component_domain_is_host_unknown(prosody_components: tuple[ProsodyServer, Account]) -> None:
    server, _ = prosody_components
    with pytest.raises(StreamError) as raised:
        async with Component("nobody.localhost", SECRET, host=server.host, port=server.component_port, reconnect=False):
            pass
    assert raised.value.condition is StreamErrorCondition.HOST_UNKNOWN


async def test_iq_message_disco_and_unhandled(prosody_components: tuple[ProsodyServer, Account]) -> None:
    server, juliet = prosody_components
    comp = component_for(server)
    seen_from: list[JID | None] = []

    def version(iq: Iq) -> SoftwareVersion:
        seen_from.append(iq.from_)
        return SoftwareVersion("jaybird-gateway", "1.0")

    comp.mux.handle_iq(IqType.GET, SoftwareVersion.name, version)
    comp.mux.handle_iq(
        IqType.GET,
        INFO,
        lambda iq: DiscoInfo(
            identities=(DiscoIdentity("gateway", "xmpp", "Test gateway"),), features=tuple(sorted(comp.mux.features()))
        ),
    )
    async with comp, juliet_client(server, juliet) as jc:
        # XEP-0092 through Prosody: client -> server -> component -> server -> client.
        answer = await jc.iq(Iq.build(IqType.GET, SoftwareVersion(), to=GATEWAY), timeout=10)
        payload = answer.payload
        assert payload is not None
        assert SoftwareVersion.from_element(payload) == SoftwareVersion("jaybird-gateway", "1.0")
        assert answer.from_ == JID(GATEWAY)
        assert seen_from == [jc.jid]

        # XEP-0030: the identity the handler gives, and features derived from the registered handlers.
        answer = await jc.iq(Iq.build(IqType.GET, DiscoInfo(), to=f"bot@{GATEWAY}"), timeout=10)
        assert answer.payload is not None
        info = DiscoInfo.from_element(answer.payload)
        assert info.identities == (DiscoIdentity("gateway", "xmpp", "Test gateway"),)
        assert set(info.features) == {ns.VERSION, ns.DISCO_INFO}

        # RFC 6120 §8.4: an IQ nobody handles is answered service-unavailable by the component's mux.
        with pytest.raises(StanzaError) as raised:
            await jc.iq(Iq.build(IqType.GET, Element("{urn:example:unknown}q"), to=GATEWAY), timeout=10)
        assert raised.value.condition is StanzaErrorCondition.SERVICE_UNAVAILABLE

        # A message from any address in the component's domain (XEP-0114 §3) reaches juliet.
        async with collecting(jc) as inbox:
            await comp.send(Message.build(jc.jid, "from the gateway", type=MessageType.CHAT, from_=f"bot@{GATEWAY}"))
            message = await asyncio.wait_for(inbox.get(), 10)
        assert message.body == "from the gateway" and message.from_ == JID(f"bot@{GATEWAY}")

        # And the other way: juliet writes to a user of the gateway.
        async with collecting(comp) as inbox:
            await jc.send(Message.build(f"bot@{GATEWAY}", "to the gateway", type=MessageType.CHAT))
            message = await asyncio.wait_for(inbox.get(), 10)
        assert message.body == "to the gateway" and message.from_ == jc.jid

        # The component's own iq(): a ping to juliet's client, answered through Prosody.
        answer_pings(jc)
        pong = await comp.iq(Iq.build(IqType.GET, Element(PING), to=jc.jid, from_=GATEWAY), timeout=10)
        assert pong.type is IqType.RESULT and pong.from_ == jc.jid


async def test_iq_timeout_and_reconnect(prosody_components: tuple[ProsodyServer, Account]) -> None:
    server, juliet = prosody_components
    async with TCPProxy(server.host, server.component_port) as proxy:
        comp = Component(GATEWAY, SECRET, host="127.0.0.1", port=proxy.port, reconnect_delay=(0.05, 0.2))
        sessions: list[JID] = []
        comp.on_session_started(lambda c: sessions.append(c.jid))
        async with comp, juliet_client(server, juliet) as jc:
            proxy.stall()
            with pytest.raises(IqTimeout):
                await comp.iq(Iq.build(IqType.GET, Element(PING), to="localhost", from_=GATEWAY), timeout=0.3)
            proxy.resume()  # new connections flow again; the stalled one is cut
            proxy.cut()
            async with asyncio.timeout(10):
                while not (len(sessions) == 2 and comp.is_connected):
                    await asyncio.sleep(0.02)
            assert proxy.accepted == 2
            async with collecting(jc) as inbox:
                await comp.send(Message.build(jc.jid, "back again", from_=GATEWAY))
                assert (await asyncio.wait_for(inbox.get(), 10)).body == "back again"
    assert sessions == [JID(GATEWAY)] * 2


async def test_slixmpp_client_talks_to_the_jaybird_component(
    prosody_components: tuple[ProsodyServer, Account],
) -> None:
    """A third-party client (slixmpp) asks the jaybird component for its version through Prosody."""
    slixmpp = pytest.importorskip("slixmpp")
    server, juliet = prosody_components
    comp = component_for(server)
    comp.mux.handle_iq(IqType.GET, SoftwareVersion.name, lambda iq: SoftwareVersion("jaybird-gateway", "2.0"))
    async with comp:
        xmpp = slixmpp.ClientXMPP(juliet.jid, juliet.password)
        xmpp.register_plugin("xep_0092")
        xmpp.ca_certs = server.ca_file
        xmpp.enable_plaintext = False
        xmpp.enable_direct_tls = False
        xmpp.enable_starttls = True
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_session_start(_event: object) -> None:
            if not ready.done():
                ready.set_result(None)

        xmpp.add_event_handler("session_start", on_session_start)
        try:
            xmpp.connect(host=server.host, port=server.c2s_port)
            await asyncio.wait_for(ready, 15)
            answer = await xmpp.plugin["xep_0092"].get_version(GATEWAY, timeout=10)
            assert answer["software_version"]["name"] == "jaybird-gateway"
            assert answer["software_version"]["version"] == "2.0"
        finally:
            xmpp.cancel_connection_attempt()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(xmpp.disconnect(wait=1.0), 10)
            xmpp.abort()
