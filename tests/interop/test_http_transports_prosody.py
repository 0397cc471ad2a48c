"""The jaybird client over WebSocket (RFC 7395) and BOSH (XEP-0206) against Prosody's mod_websocket and
mod_bosh: login, a message to and from a TCP client, a ping, a clean close; and XEP-0156 discovery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Literal

import pytest
from aiohttp import web

from jaybird.client import Client
from jaybird.ext.ping.client import ping
from jaybird.jid import JID
from jaybird.stanza import Message, MessageType
from jaybird.stream.framing import Framing
from jaybird.transport.discovery import discover
from tests.conftest import JULIET_PASSWORD, ROMEO_PASSWORD
from tests.peers import require_binary
from tests.peers.prosody import ProsodyServer, ProsodyWithAccounts

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def prosody_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProsodyWithAccounts]:
    require_binary("prosody")
    require_binary("prosodyctl")
    with ProsodyServer(tmp_path_factory.mktemp("prosody-http"), http=True) as server:
        yield ProsodyWithAccounts(
            server=server,
            juliet=server.add_user("juliet", JULIET_PASSWORD),
            romeo=server.add_user("romeo", ROMEO_PASSWORD),
        )


def urls(server: ProsodyServer) -> dict[str, str]:
    base = f"{server.host}:{server.http_port}"
    return {"websocket": f"ws://{base}/xmpp-websocket", "bosh": f"http://{base}/http-bind"}


def web_client(server: ProsodyServer, jid: str, password: str, url: str, **options: object) -> Client:
    # Plain ws:// and http:// on loopback: Prosody is told to consider them secure, the client must be told too.
    return Client(jid, password, url=url, require_tls=False, reconnect=False, **options)  # type: ignore[arg-type]


def tcp_client(server: ProsodyServer, jid: str, password: str) -> Client:
    return Client(jid, password, host=server.host, port=server.c2s_port, ca_file=str(server.ca_file), reconnect=False)


@pytest.mark.parametrize("transport", ["websocket", "bosh"])
async def test_login_message_ping_close(prosody_http: ProsodyWithAccounts, transport: str) -> None:
    server, juliet, romeo = prosody_http.server, prosody_http.juliet, prosody_http.romeo
    wire: list[str] = []
    web_side = web_client(server, juliet.jid, juliet.password, urls(server)[transport], resource="browser")
    web_side.console = lambda direction, text: wire.append(text)
    async with web_side, tcp_client(server, romeo.jid, romeo.password) as tcp_side:
        assert str(web_side.jid) == f"{juliet.jid}/browser"
        assert web_side.sasl_mechanism and web_side.sasl_mechanism.startswith("SCRAM-")
        stream = web_side._stream
        assert stream is not None and stream.framing is Framing(transport)
        if transport == "websocket":
            # RFC 7395 §3.3.1: the opening is <open/> in the framing namespace, never a stream header.
            assert wire[0].startswith("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'")
        else:
            assert wire[0].startswith("<body ") and "xmpp:version='1.0'" in wire[0]

        incoming_tcp = tcp_side.stanzas()
        incoming_web = web_side.stanzas()
        waiter_tcp = asyncio.ensure_future(anext(incoming_tcp))
        waiter_web = asyncio.ensure_future(anext(incoming_web))
        await asyncio.sleep(0)
        await web_side.send(Message.build(to=tcp_side.jid, type=MessageType.CHAT, body=f"over {transport}"))
        got = await asyncio.wait_for(waiter_tcp, 10)
        assert isinstance(got, Message) and got.body == f"over {transport}" and got.from_ == web_side.jid

        await tcp_side.send(Message.build(to=web_side.jid, type=MessageType.CHAT, body="back over TCP"))
        back = await asyncio.wait_for(waiter_web, 10)
        assert isinstance(back, Message) and back.body == "back over TCP" and back.from_ == tcp_side.jid

        rtt = await ping(web_side, timeout=10)
        assert 0 <= rtt < 10
    assert not web_side.is_connected
    if transport == "websocket":
        assert any(text.startswith("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'") for text in wire)
    else:
        assert any("type='terminate'" in text for text in wire if text.startswith("<body"))
    # Prosody saw a clean end of session, not a broken connection.
    log = server.log_text()
    assert "Traceback" not in log


@pytest.fixture
async def host_meta_server(prosody_http: ProsodyWithAccounts) -> AsyncIterator[str]:
    """A tiny web server with XEP-0156 host-meta documents pointing at Prosody; yields its base URL."""
    endpoints = urls(prosody_http.server)
    xrd = (
        "<?xml version='1.0' encoding='utf-8'?>\n"
        "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>"
        f"<Link rel='urn:xmpp:alt-connections:websocket' href='{endpoints['websocket']}'/>"
        "<Link rel='lrdd' href='https://unrelated.example/'/>"
        "</XRD>"
    )
    doc = {"links": [{"rel": "urn:xmpp:alt-connections:xbosh", "href": endpoints["bosh"]}]}

    async def host_meta(_: web.Request) -> web.Response:
        return web.Response(text=xrd, content_type="application/xrd+xml")

    async def host_meta_json(_: web.Request) -> web.Response:
        return web.Response(text=json.dumps(doc), content_type="application/json")

    app = web.Application()
    app.router.add_get("/.well-known/host-meta", host_meta)
    app.router.add_get("/.well-known/host-meta.json", host_meta_json)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_discovery_and_login_through_it(prosody_http: ProsodyWithAccounts, host_meta_server: str) -> None:
    server, juliet = prosody_http.server, prosody_http.juliet
    found = await discover(server.domain, base_url=host_meta_server, timeout=5)
    # XEP-0156 §3: links from both documents, by rel; unrelated links ignored.
    assert found.websocket == (urls(server)["websocket"],)
    assert found.bosh == (urls(server)["bosh"],)
    transports: tuple[Literal["websocket"], Literal["bosh"]] = ("websocket", "bosh")
    for transport in transports:
        client = Client(
            juliet.jid,
            juliet.password,
            transport=transport,
            discovery_base=host_meta_server,
            require_tls=False,
            reconnect=False,
        )
        async with client:
            assert client.jid.bare == JID(juliet.jid)
            assert client._stream is not None and client._stream.framing is Framing(transport)
