"""WebSocket over TLS (``wss://``, RFC 7395 §3.7) and BOSH over HTTPS (XEP-0206 §8) on the server's
``listeners.http.tls_port``, with a certificate from a test CA and verification on; SCRAM-*-PLUS over ``wss://``;
and the refusal of unencrypted HTTP streams while ``tls.require_c2s`` is set (docs/web.md, "Security decision").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from ssl import SSLContext

import aiohttp
import pytest

from jaybird import ns
from jaybird.client import Client, NegotiationError
from jaybird.sasl import ChannelBinding, ClientMechanism, client_mechanisms
from jaybird.stream import events as ev
from jaybird.stream.config import InitiatingConfig
from jaybird.stream.machine import XMPPStream
from jaybird.transport.errors import CertificateError, CertificateProblem
from jaybird.transport.tls import channel_bindings, client_context
from jaybird.transport.websocket import WebSocketConnection, open_websocket
from jaybird.xml import parser
from jaybird.xml.element import Element
from tests.peers.certs import IssuedCertificate, ca_and_leaf
from tests.server.conftest import ServerFactory
from tests.web.support import WebServer, start_web_server

pytestmark = pytest.mark.timeout(60)

PASSWORD = "secret"
SCRAM_PLUS = ("SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-512-PLUS")


def tls_toml(certs: IssuedCertificate) -> str:
    return f'[tls]\ncert_file = "{certs.cert}"\nkey_file = "{certs.key}"\n'


@pytest.fixture
def certs(tmp_path: Path) -> IssuedCertificate:
    # A leaf for the name "localhost" only: https://127.0.0.1/ is then a name mismatch.
    return ca_and_leaf(tmp_path / "certs", ["localhost"], stem="localhost")


@pytest.fixture
async def web(start_server: ServerFactory, certs: IssuedCertificate) -> WebServer:
    return await start_web_server(start_server, toml=tls_toml(certs))


def secure_urls(web: WebServer, host: str = "localhost") -> dict[str, str]:
    base = f"{host}:{web.https_port}"
    return {"websocket": f"wss://{base}{web.websocket_path}", "bosh": f"https://{base}{web.bosh_path}"}


def tls_client(web: WebServer, jid: str, url: str, ca_file: Path, wire: list[str], **kwargs: object) -> Client:
    # require_tls stays on (the default): the client itself must see the transport as encrypted.
    return Client(
        jid,
        PASSWORD,
        url=url,
        ca_file=str(ca_file),
        reconnect=False,
        negotiation_timeout=10.0,
        iq_timeout=5.0,
        connect_timeout=5.0,
        console=lambda direction, text: wire.append(f"{direction} {text}"),
        **kwargs,  # type: ignore[arg-type]
    )


def offered_mechanisms(wire: list[str]) -> list[str]:
    """The SASL mechanisms of the first features the server sent (read from the client's console)."""
    for line in wire:
        direction, _, text = line.partition(" ")
        if direction == "in" and "<mechanisms" in text:
            start = text.index("<mechanisms")
            end = text.index("</mechanisms>", start) + len("</mechanisms>")
            mechanisms = element(text[start:end])
            return [str(child.text) for child in mechanisms.elements()]
    raise AssertionError(f"no <mechanisms/> in {wire}")


def element(xml: str) -> Element:
    events = parser.XMLStreamParser(root=None).feed(xml.encode())
    assert len(events) == 1 and isinstance(events[0], parser.ElementReceived)
    return events[0].element


@pytest.mark.parametrize("transport", ["websocket", "bosh"])
async def test_login_over_tls_with_verification(web: WebServer, certs: IssuedCertificate, transport: str) -> None:
    juliet = await web.add_user("juliet", PASSWORD)
    wire: list[str] = []
    async with tls_client(web, str(juliet), secure_urls(web)[transport], certs.ca_cert, wire) as client:
        assert client.jid.bare == juliet
        # The client's HTTP transports never hand a channel binding to SASL (jaybird/client.py: an HTTP
        # endpoint usually sits behind a TLS-terminating proxy, where a binding could not match), so it takes
        # the strongest plain SCRAM with the GS2 flag 'n' (RFC 5802 §6). Over wss:// the server offers -PLUS, so
        # a 'y' would be refused there as a downgrade: the login succeeding shows the flag was 'n'.
        assert client.sasl_mechanism == "SCRAM-SHA-256"
        offered = offered_mechanisms(wire)
        assert "SCRAM-SHA-256" in offered and "PLAIN" in offered  # an encrypted stream gets every mechanism
        if transport == "websocket":
            # One TLS connection carries the whole stream: the server can and does offer -PLUS.
            assert "SCRAM-SHA-256-PLUS" in offered
        else:
            # A BOSH session spans many HTTP connections: there is no one channel to bind to.
            assert not any(name in offered for name in SCRAM_PLUS)
    assert not web.running.server.http.connections


@pytest.mark.parametrize("transport", ["websocket", "bosh"])
async def test_name_mismatch_is_refused(web: WebServer, certs: IssuedCertificate, transport: str) -> None:
    # RFC 6125: the certificate names "localhost", the URL's host is 127.0.0.1.
    juliet = await web.add_user("juliet", PASSWORD)
    wire: list[str] = []
    client = tls_client(web, str(juliet), secure_urls(web, "127.0.0.1")[transport], certs.ca_cert, wire)
    with pytest.raises(Exception) as info:
        async with client:
            pass
    problem = certificate_problem(info.value)
    assert problem is CertificateProblem.NAME_MISMATCH, info.value
    # The stream never started: nothing came back, and the server holds no session (for BOSH the client's
    # first body was queued, but the TLS handshake failed before any request went out).
    assert not any(line.startswith("in ") for line in wire)
    assert not web.running.server.http.connections and not web.running.server.http.bosh.sessions


@pytest.mark.parametrize("transport", ["websocket", "bosh"])
async def test_unknown_ca_is_refused(web: WebServer, certs: IssuedCertificate, transport: str, tmp_path: Path) -> None:
    other = ca_and_leaf(tmp_path / "other", ["localhost"], stem="other")
    juliet = await web.add_user("juliet", PASSWORD)
    wire: list[str] = []
    with pytest.raises(Exception) as info:
        async with tls_client(web, str(juliet), secure_urls(web)[transport], other.ca_cert, wire):
            pass
    assert certificate_problem(info.value) is CertificateProblem.UNKNOWN_CA, info.value
    assert not any(line.startswith("in ") for line in wire)
    assert not web.running.server.http.bosh.sessions


def certificate_problem(exc: BaseException) -> CertificateProblem | None:
    """The :class:`CertificateError` somewhere in ``exc``'s chain (or its connect attempts)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, CertificateError):
            return current.problem
        todo += [a.error for a in getattr(current, "attempts", ())]
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return None


# -- SCRAM-*-PLUS over wss:// ----------------------------------------------------------------------------------


def only(name: str, username: str) -> Callable[[ChannelBinding | None], list[ClientMechanism]]:
    def factory(binding: ChannelBinding | None) -> list[ClientMechanism]:
        found = client_mechanisms(username=username, password=PASSWORD, channel_binding=binding)
        return [m for m in found if m.name == name]

    return factory


async def flush(conn: WebSocketConnection, stream: XMPPStream) -> None:
    for frame in stream.frames_to_send():  # RFC 7395 §3.3.3: one element per WebSocket message
        conn.write(frame)
    await conn.drain()


async def test_scram_plus_over_wss_binds_to_the_servers_certificate(web: WebServer, certs: IssuedCertificate) -> None:
    """The server side of -PLUS over wss://: a client that does bind (here the stream machine driven by hand
    over jaybird's WebSocket transport) authenticates with SCRAM-SHA-256-PLUS, since the server computes the
    binding of its own end of the one TLS connection (tls-exporter / tls-server-end-point, RFC 9266 / 5929)."""
    juliet = await web.add_user("juliet", PASSWORD)
    conn = await open_websocket(
        secure_urls(web)["websocket"], domain="localhost", ssl_context=client_context(ca_file=str(certs.ca_cert))
    )
    try:
        assert conn.ssl_object is not None
        bindings = channel_bindings(conn.ssl_object, server_side=False)
        config = InitiatingConfig(
            jid=juliet, password=PASSWORD, already_secure=True, tls_available=False,
            mechanisms=only("SCRAM-SHA-256-PLUS", "juliet"),
        )  # fmt: skip
        stream = XMPPStream(config, channel_binding=bindings, framing=conn.framing)
        authenticated: ev.Authenticated | None = None
        ready = False
        await flush(conn, stream)
        while not ready:
            data = await conn.read()
            assert data, "the server closed the WebSocket during negotiation"
            for event in stream.receive_data(data):
                assert not isinstance(event, ev.AuthenticationFailed | ev.StreamErrorReceived), event
                if isinstance(event, ev.Authenticated):
                    authenticated = event
                ready = ready or isinstance(event, ev.Ready)
            await flush(conn, stream)
        assert authenticated is not None and authenticated.mechanism == "SCRAM-SHA-256-PLUS"
        assert stream.jid is not None and stream.jid.bare == juliet
    finally:
        await conn.aclose()


async def test_client_asked_for_plus_only_over_wss_finds_no_mechanism(web: WebServer, certs: IssuedCertificate) -> None:
    # By design (see above) the client has no binding over HTTP transports, so -PLUS is never a candidate.
    juliet = await web.add_user("juliet", PASSWORD)
    wire: list[str] = []
    url = secure_urls(web)["websocket"]
    client = tls_client(web, str(juliet), url, certs.ca_cert, wire, mechanisms=["SCRAM-SHA-256-PLUS"])
    with pytest.raises(NegotiationError, match="no acceptable SASL mechanism"):
        async with client:
            pass
    assert "SCRAM-SHA-256-PLUS" in offered_mechanisms(wire)
    assert not any("<auth " in line for line in wire if line.startswith("out "))


# -- unencrypted HTTP refused while tls.require_c2s ------------------------------------------------------------

BOSH_CREATE = (
    f"<body xmlns='{ns.HTTPBIND}' xmlns:xmpp='{ns.XBOSH}' rid='1000' to='localhost' wait='5' hold='1' "
    "ver='1.11' xmpp:version='1.0'/>"
).encode()


async def bosh_create(url: str, ca_file: Path | None = None) -> Element:
    ssl: SSLContext | bool = client_context(ca_file=str(ca_file)) if ca_file is not None else False
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=BOSH_CREATE, headers={"Content-Type": "text/xml"}, ssl=ssl) as resp,
    ):
        assert resp.status == 200  # XEP-0124 §17: binding errors travel in an HTTP 200
        return element((await resp.read()).decode())


@pytest.fixture
async def strict(start_server: ServerFactory, certs: IssuedCertificate) -> WebServer:
    """Loopback no longer counts as encrypted, as for a server whose clients reach it directly."""
    return await start_web_server(start_server, http_toml="loopback_is_secure = false\n", toml=tls_toml(certs))


async def test_plain_bosh_is_terminated_with_policy_violation(strict: WebServer, certs: IssuedCertificate) -> None:
    reply = await bosh_create(strict.bosh_url)
    assert reply.get("type") == "terminate" and reply.get("condition") == "policy-violation"
    assert not strict.running.server.http.connections
    # The same request over HTTPS is served.
    secure = await bosh_create(secure_urls(strict)["bosh"], certs.ca_cert)
    assert secure.get("sid") and secure.get("type") is None


async def test_plain_websocket_is_refused_with_403(strict: WebServer, certs: IssuedCertificate) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(strict.websocket_url, protocols=("xmpp",))
        assert info.value.status == 403
        context = client_context(ca_file=str(certs.ca_cert))
        async with http.ws_connect(secure_urls(strict)["websocket"], protocols=("xmpp",), ssl=context) as ws:
            assert ws.protocol == "xmpp"


async def test_plain_http_without_require_c2s_offers_no_plain(
    start_server: ServerFactory, certs: IssuedCertificate
) -> None:
    # Served, but PLAIN (the password itself) is not offered on an unencrypted stream.
    web = await start_web_server(
        start_server, http_toml="loopback_is_secure = false\n", toml=tls_toml(certs) + "require_c2s = false\n"
    )
    reply = await bosh_create(web.bosh_url)
    assert reply.get("sid") and reply.get("type") is None
    mechanisms = [
        str(m.text) for f in reply.elements() for mm in f.elements() if mm.local == "mechanisms" for m in mm.elements()
    ]
    assert "SCRAM-SHA-256" in mechanisms and "PLAIN" not in mechanisms
    secure = await bosh_create(secure_urls(web)["bosh"], certs.ca_cert)
    secure_mechanisms = [
        str(m.text) for f in secure.elements() for mm in f.elements() if mm.local == "mechanisms" for m in mm.elements()
    ]
    assert "PLAIN" in secure_mechanisms
