"""jaybird's BOSH and WebSocket clients through an HTTP forward proxy (``Client(proxy=...)``) to the server's
HTTPS endpoints: the proxy only relays a CONNECT tunnel (RFC 9110 §9.3.6), so TLS, and the certificate check
against the URL's host, stay end to end (XEP-0206 §8, RFC 7395 §3.7)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jaybird.client import Client
from jaybird.stanza import Message, MessageType
from jaybird.transport.errors import CertificateProblem
from tests.peers.certs import IssuedCertificate, ca_and_leaf
from tests.server.conftest import ServerFactory
from tests.server.helpers import watch
from tests.server.test_http_tls import certificate_problem, secure_urls, tls_toml
from tests.web.support import WebServer, start_web_server

pytestmark = pytest.mark.timeout(60)

PASSWORD = "secret"
_HEAD_LIMIT = 8192


@dataclass
class ConnectProxy:
    """A forward proxy on loopback that serves CONNECT only (what a client needs for https:// and wss://).

    Written on asyncio streams rather than aiohttp's server: after answering CONNECT the connection stops being
    HTTP, and aiohttp's server has no supported way to hand the raw socket over.
    """

    refuse: bool = False
    tunnels: list[str] = field(default_factory=list)
    port: int = 0
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > _HEAD_LIMIT:
                return
            method, target, _version = head.split(b"\r\n", 1)[0].decode("ascii").split(" ", 2)
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nAllow: CONNECT\r\nContent-Length: 0\r\n\r\n")
                return
            if self.refuse:
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            host, _, port = target.rpartition(":")
            # The test servers listen on IPv4 loopback only; a name is resolved here, as a proxy would.
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1" if host == "localhost" else host, int(port)
            )
            self._writers.add(upstream_writer)
            self.tunnels.append(target)
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except OSError:
        pass
    finally:
        sink.close()


@pytest.fixture
def certs(tmp_path: Path) -> IssuedCertificate:
    return ca_and_leaf(tmp_path / "certs", ["localhost"], stem="localhost")


@pytest.fixture
async def web(start_server: ServerFactory, certs: IssuedCertificate) -> WebServer:
    return await start_web_server(start_server, toml=tls_toml(certs))


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    running = ConnectProxy()
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def proxied_client(jid: str, url: str, proxy: ConnectProxy, ca_file: Path) -> Client:
    return Client(jid, PASSWORD, url=url, proxy=proxy.url, ca_file=str(ca_file), reconnect=False,
                  negotiation_timeout=10.0, iq_timeout=5.0, connect_timeout=5.0)  # fmt: skip


@pytest.mark.parametrize("transport", ["bosh", "websocket"])
async def test_login_and_messages_through_the_proxy(
    web: WebServer, proxy: ConnectProxy, certs: IssuedCertificate, transport: str
) -> None:
    juliet = await web.add_user("juliet", PASSWORD)
    romeo = await web.add_user("romeo", PASSWORD)
    url = secure_urls(web)[transport]
    async with (
        web.running.client(romeo, PASSWORD, ca_file=str(certs.ca_cert)) as tcp,
        proxied_client(str(juliet), url, proxy, certs.ca_cert) as client,
    ):
        assert client.jid.bare == juliet
        got = watch(tcp.stanzas())
        await client.send(Message.build(tcp.jid, f"through the proxy over {transport}", type=MessageType.CHAT))
        message = await got
        assert isinstance(message, Message) and message.body == f"through the proxy over {transport}"
        back = watch(client.stanzas())
        await tcp.send(Message.build(client.jid, "reply", type=MessageType.CHAT))
        answer = await back
        assert isinstance(answer, Message) and answer.body == "reply"
    # Every connection went through a tunnel to the HTTPS port, named as in the URL (the proxy resolves it).
    assert proxy.tunnels and set(proxy.tunnels) == {f"localhost:{web.https_port}"}
    if transport == "bosh":
        # A session is several HTTP requests, on at most `requests` (hold + 1) pooled connections.
        assert len(proxy.tunnels) <= 3
    else:
        assert len(proxy.tunnels) == 1
    assert not web.running.server.http.connections


@pytest.mark.parametrize("transport", ["bosh", "websocket"])
async def test_certificate_is_checked_end_to_end(
    web: WebServer, proxy: ConnectProxy, certs: IssuedCertificate, transport: str
) -> None:
    # The tunnel reaches the server, but the URL names 127.0.0.1, which the certificate does not.
    juliet = await web.add_user("juliet", PASSWORD)
    url = secure_urls(web, "127.0.0.1")[transport]
    with pytest.raises(Exception) as info:
        async with proxied_client(str(juliet), url, proxy, certs.ca_cert):
            pass
    assert certificate_problem(info.value) is CertificateProblem.NAME_MISMATCH, info.value
    assert proxy.tunnels
    assert not web.running.server.http.connections


@pytest.mark.parametrize("transport", ["bosh", "websocket"])
async def test_a_refusing_proxy_fails_the_login(
    web: WebServer, proxy: ConnectProxy, certs: IssuedCertificate, transport: str
) -> None:
    proxy.refuse = True
    juliet = await web.add_user("juliet", PASSWORD)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(Exception) as info:
        async with proxied_client(str(juliet), secure_urls(web)[transport], proxy, certs.ca_cert):
            pass
    assert "403" in repr(info.value) or "403" in str(info.value.__cause__), info.value
    assert loop.time() - began < 15
    assert not proxy.tunnels and not web.running.server.http.connections
