"""The WebSocket endpoint (RFC 7395) on the wire: subprotocol, framing rules, close and redirect."""

from __future__ import annotations

import aiohttp
import pytest

from jaybird import ns
from jaybird.xml import parser
from jaybird.xml.element import Element
from tests.server.conftest import ServerFactory
from tests.web.support import WebServer, start_web_server

OPEN = f"<open xmlns='{ns.FRAMING}' to='localhost' version='1.0'/>"


def element(data: str) -> Element:
    events = parser.XMLStreamParser(root=None).feed(data.encode())
    assert len(events) == 1 and isinstance(events[0], parser.ElementReceived)
    return events[0].element


async def receive(ws: aiohttp.ClientWebSocketResponse) -> Element:
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return element(str(msg.data))


async def stream_error(ws: aiohttp.ClientWebSocketResponse) -> str:
    """Read up to the stream error; returns its condition, and checks the <close/> that follows."""
    while (got := await receive(ws)).name != f"{{{ns.STREAM}}}error":
        pass
    condition = next(child.local for child in got.elements() if child.name.startswith(f"{{{ns.STREAMS}}}"))
    assert (await receive(ws)).name == f"{{{ns.FRAMING}}}close"
    return condition


@pytest.fixture
async def web(start_server: ServerFactory) -> WebServer:
    return await start_web_server(start_server)


async def test_xmpp_subprotocol_is_required(web: WebServer) -> None:
    # RFC 7395 §3.2
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(web.websocket_url)
        assert info.value.status == 400
        async with http.ws_connect(web.websocket_url, protocols=("xmpp",)) as ws:
            assert ws.protocol == "xmpp"


async def test_open_features_and_close(web: WebServer) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(web.websocket_url, protocols=("xmpp",)) as ws:
        await ws.send_str(OPEN)
        opened = await receive(ws)  # §3.3.2: <open/> with from, id and version
        assert opened.name == f"{{{ns.FRAMING}}}open" and opened.get("from") == "localhost"
        assert opened.get("id") and opened.get("version") == "1.0"
        features = await receive(ws)
        assert features.name == f"{{{ns.STREAM}}}features"
        assert features.find(f"{{{ns.TLS}}}starttls") is None  # §3.7: TLS is the WebSocket's business
        await ws.send_str(f"<close xmlns='{ns.FRAMING}'/>")
        assert (await receive(ws)).name == f"{{{ns.FRAMING}}}close"  # §3.6: answered by <close/>
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


@pytest.mark.parametrize(
    ("frame", "condition"),
    [
        ("<message xmlns='jabber:client'><body>half", "not-well-formed"),  # part of an element
        (f"{OPEN}{OPEN}", "bad-format"),  # two elements in one message
        ("not xml at all", "bad-format"),  # text where an element must be
    ],
)
async def test_one_complete_element_per_message(web: WebServer, frame: str, condition: str) -> None:
    # RFC 7395 §3.3.3: every message is exactly one complete element.
    async with aiohttp.ClientSession() as http, http.ws_connect(web.websocket_url, protocols=("xmpp",)) as ws:
        await ws.send_str(frame)
        assert await stream_error(ws) == condition


async def test_see_other_uri(start_server: ServerFactory) -> None:
    # RFC 7395 §3.6.1: a redirect is a <close/> carrying see-other-uri.
    target = "wss://other.example/xmpp-websocket"
    web = await start_web_server(start_server, http_toml=f'websocket_redirect = "{target}"\n')
    async with aiohttp.ClientSession() as http, http.ws_connect(web.websocket_url, protocols=("xmpp",)) as ws:
        await ws.send_str(OPEN)
        assert (await receive(ws)).name == f"{{{ns.FRAMING}}}open"
        close = await receive(ws)
        assert close.name == f"{{{ns.FRAMING}}}close" and close.get("see-other-uri") == target
