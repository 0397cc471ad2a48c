"""The byte pipe under the server's streams (jaybird.transport.pipe): loopback sockets, real TLS handshakes.

A :class:`BytePipe` serves each accepted socket; the far end is a plain asyncio client (what a peer's TLS
stack does on the wire is all that matters).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jaybird.transport.pipe import READ_HIGH_WATER, BytePipe
from jaybird.transport.tls import ALPN_CLIENT, certificate_der, channel_binding, client_context, server_context
from tests.peers.certs import IssuedCertificate, ca_and_leaf

DOMAIN = "pipe.test"
Contexts = tuple[ssl.SSLContext, ssl.SSLContext, IssuedCertificate]


@dataclass
class Listener:
    port: int
    accepted: asyncio.Queue[BytePipe]


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    accepted: asyncio.Queue[BytePipe] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: BytePipe(accepted.put_nowait), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Listener(port, accepted)
    finally:
        server.close()


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> Contexts:
    certs = ca_and_leaf(Path(tmp_path_factory.mktemp("pipe-certs")), [DOMAIN])
    server = server_context(certs.cert, certs.key, alpn=[ALPN_CLIENT])
    client = client_context(ca_file=certs.ca_cert, alpn=[ALPN_CLIENT])
    return server, client, certs


async def connect(listener: Listener) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, BytePipe]:
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    pipe = await asyncio.wait_for(listener.accepted.get(), 5)
    return reader, writer, pipe


async def read_exactly(pipe: BytePipe, size: int) -> bytes:
    got = b""
    async with asyncio.timeout(5):
        while len(got) < size:
            data = await pipe.read()
            assert data, "the pipe ended early"
            got += data
    return got


async def test_plain_bytes_both_ways_and_end_of_stream(listener: Listener) -> None:
    reader, writer, pipe = await connect(listener)
    assert pipe.peer_address is not None and pipe.peer_address[0] == "127.0.0.1"
    assert not pipe.is_secure and pipe.ssl_object is None
    writer.write(b"<stream:stream>")
    assert await read_exactly(pipe, 15) == b"<stream:stream>"
    pipe.writelines([b"<a/>", b"<b/>"])
    pipe.write(b"<c/>")
    await pipe.drain()
    assert await asyncio.wait_for(reader.readexactly(12), 5) == b"<a/><b/><c/>"
    writer.close()
    assert await asyncio.wait_for(pipe.read(), 5) == b""  # the peer closed
    await asyncio.wait_for(pipe.wait_closed(), 5)
    pipe.write(b"dropped")  # after the end: dropped, not an error
    await pipe.wait_closed()


async def test_starttls_keeps_bytes_that_arrived_before_the_call(listener: Listener, contexts: Contexts) -> None:
    """RFC 6120 §5.4.3.3: the client starts TLS as soon as it reads <proceed/>; its ClientHello may reach the
    server before the server begins its handshake, and must not be lost (python/cpython#142352)."""
    server_ctx, client_ctx, certs = contexts
    reader, writer, pipe = await connect(listener)
    writer.write(b"<starttls/>")
    assert await read_exactly(pipe, 11) == b"<starttls/>"
    pipe.write(b"<proceed/>")
    assert await reader.readexactly(10) == b"<proceed/>"
    client_tls = asyncio.ensure_future(writer.start_tls(client_ctx, server_hostname=DOMAIN))
    await asyncio.sleep(0.2)  # the ClientHello is now waiting in the pipe, unread
    await pipe.start_tls(server_ctx, server_side=True, timeout=5)
    await asyncio.wait_for(client_tls, 5)
    assert pipe.is_secure and pipe.ssl_object is not None
    assert pipe.ssl_object.version() in ("TLSv1.2", "TLSv1.3")
    own = certificate_der(certs.cert)
    binding = channel_binding(pipe.ssl_object, server_side=True, own_cert_der=own)
    assert binding is not None and binding.data  # SCRAM-*-PLUS works over the pipe's TLS

    big = bytes(range(256)) * 1024  # 256 KB: many TLS records both ways
    writer.write(big)
    assert await read_exactly(pipe, len(big)) == big
    pipe.writelines([big, b"end"])
    await pipe.drain()
    assert await asyncio.wait_for(reader.readexactly(len(big) + 3), 5) == big + b"end"

    pipe.close()  # close_notify, then the socket closes
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await asyncio.wait_for(pipe.wait_closed(), 5)


async def test_direct_tls_with_alpn_and_the_peers_close_notify(listener: Listener, contexts: Contexts) -> None:
    """XEP-0368: TLS from the first byte; the ALPN protocol the client asked for is selected."""
    server_ctx, client_ctx, _ = contexts
    opened = asyncio.ensure_future(
        asyncio.open_connection("127.0.0.1", listener.port, ssl=client_ctx, server_hostname=DOMAIN)
    )
    pipe = await asyncio.wait_for(listener.accepted.get(), 5)
    await pipe.start_tls(server_ctx, server_side=True, timeout=5)
    _reader, writer = await asyncio.wait_for(opened, 5)
    assert pipe.ssl_object is not None and pipe.ssl_object.selected_alpn_protocol() == ALPN_CLIENT
    writer.write(b"<stream:stream to='pipe.test'>")
    assert await read_exactly(pipe, 30) == b"<stream:stream to='pipe.test'>"
    writer.close()  # sends close_notify
    assert await asyncio.wait_for(pipe.read(), 5) == b""


async def test_a_failed_handshake_raises_and_closes(listener: Listener, contexts: Contexts) -> None:
    server_ctx, _, _ = contexts
    _reader, writer, pipe = await connect(listener)
    writer.write(b"<presence/>" * 20)  # not a ClientHello
    await asyncio.sleep(0.1)
    with pytest.raises(ssl.SSLError):
        await pipe.start_tls(server_ctx, server_side=True, timeout=5)
    assert pipe.is_closing() and not pipe.is_secure
    await asyncio.wait_for(pipe.wait_closed(), 5)
    writer.close()


async def test_a_silent_peer_times_the_handshake_out(listener: Listener, contexts: Contexts) -> None:
    server_ctx, _, _ = contexts
    reader, writer, pipe = await connect(listener)
    with pytest.raises(TimeoutError):
        await pipe.start_tls(server_ctx, server_side=True, timeout=0.3)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # aborted
    writer.close()


async def test_a_peer_leaving_during_the_handshake_is_a_connection_error(
    listener: Listener, contexts: Contexts
) -> None:
    server_ctx, _, _ = contexts
    _reader, writer, pipe = await connect(listener)
    handshake = asyncio.ensure_future(pipe.start_tls(server_ctx, server_side=True, timeout=5))
    await asyncio.sleep(0.1)
    writer.close()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(handshake, 5)


async def test_reading_stops_at_the_high_water_mark_and_resumes(listener: Listener) -> None:
    """A peer that sends faster than the stream is read is held back by TCP, not by memory."""
    _reader, writer, pipe = await connect(listener)
    chunk = b"x" * 65536
    total = 0
    for _ in range(4 * READ_HIGH_WATER // len(chunk)):
        writer.write(chunk)
        total += len(chunk)
    # Without reading, the pipe holds at most about the high-water mark plus one socket read.
    async with asyncio.timeout(5):
        while pipe._buffered <= READ_HIGH_WATER:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert pipe._reading_paused
    assert pipe._buffered < 2 * READ_HIGH_WATER
    assert len(await read_exactly(pipe, total)) == total  # all of it arrives once read
    writer.close()


async def test_drain_waits_for_a_peer_that_does_not_read(listener: Listener) -> None:
    reader, writer, pipe = await connect(listener)
    payload = b"y" * (1 << 20)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            for _ in range(64):  # 64 MB: far beyond any socket buffer
                pipe.write(payload)
                await pipe.drain()
    received = 0
    async with asyncio.timeout(10):
        while received < len(payload):
            received += len(await reader.read(1 << 20))
    writer.close()
    pipe.abort()
    with pytest.raises(ConnectionError):
        async with asyncio.timeout(5):
            await pipe.wait_closed()
            await pipe.drain()
