"""Connections (jaybird.transport.tcp) against local asyncio servers on 127.0.0.1 with test certificates."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from jaybird.errors import LocalProtocolError
from jaybird.transport.dns import Target
from jaybird.transport.errors import CertificateError, CertificateProblem, ConnectError
from jaybird.transport.tcp import Connection, open_connection
from jaybird.transport.tls import ALPN_CLIENT, client_context, server_context
from tests.peers.certs import IssuedCertificate, ca_and_leaf
from tests.peers.ports import free_port

DOMAIN = "example.test"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serve(handler: Handler, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """A server on a free loopback port; every connection it accepted is ended when the block exits."""
    tasks: set[asyncio.Future[object]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        writers.append(writer)
        transport = writer.transport
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        except AttributeError:
            # The client hung up during the server's start_tls (python/cpython#105993 on Python 3.11).
            pass
        finally:
            transport.abort()

    server = await asyncio.start_server(run, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:  # a handler waiting for data sees the end of the connection and returns
            if writer.transport is not None:
                writer.transport.abort()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        await asyncio.wait_for(server.wait_closed(), 5)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()


def starttls_echo(context: ssl.SSLContext) -> Handler:
    """A toy STARTTLS exchange: ``starttls`` -> ``proceed``, TLS in place, then echo."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readline() == b"starttls\n"
        writer.write(b"proceed\n")
        await writer.drain()
        await writer.start_tls(context)
        await echo(reader, writer)

    return handler


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # accepts, never answers (not even a TLS ServerHello)


async def roundtrip(conn: Connection, data: bytes = b"<presence/>") -> bytes:
    conn.write(data)
    await conn.drain()
    received = b""
    async with asyncio.timeout(5):
        while len(received) < len(data):
            chunk = await conn.read()
            assert chunk, "connection closed early"
            received += chunk
    return received


@pytest.fixture
def issued(tmp_path: Path) -> IssuedCertificate:
    return ca_and_leaf(tmp_path, [DOMAIN])


async def test_plain_connection_through_overrides() -> None:
    async with serve(echo) as port:
        target = Target("127.0.0.1", port, False)
        conn = await open_connection(DOMAIN, overrides={DOMAIN: [target]})
        async with conn:
            assert conn.target == target and conn.peer == ("127.0.0.1", port)
            assert not conn.is_secure and conn.ssl_object is None
            assert await roundtrip(conn) == b"<presence/>"
        assert conn.is_closing
        with pytest.raises(LocalProtocolError):
            conn.write(b"late")


async def test_host_and_port_skip_dns() -> None:
    async with serve(echo) as port, await open_connection(DOMAIN, host="127.0.0.1", port=port) as conn:
        assert await roundtrip(conn, b"x" * 100_000) == b"x" * 100_000


async def test_read_returns_empty_bytes_at_eof() -> None:
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with serve(close_at_once) as port, await open_connection(DOMAIN, host="127.0.0.1", port=port) as conn:
        assert await asyncio.wait_for(conn.read(), 5) == b""


async def test_starttls_upgrades_in_place(issued: IssuedCertificate) -> None:
    handler = starttls_echo(server_context(issued.cert, issued.key))
    async with serve(handler) as port, await open_connection(DOMAIN, host="127.0.0.1", port=port) as conn:
        conn.write(b"starttls\n")
        assert await asyncio.wait_for(conn.read(), 5) == b"proceed\n"
        # Checked against the XMPP domain although the socket goes to 127.0.0.1 (RFC 6125 §6.2.1).
        await conn.start_tls(client_context(ca_file=issued.ca_cert))
        assert conn.is_secure and conn.ssl_object is not None
        assert await roundtrip(conn) == b"<presence/>"
        with pytest.raises(LocalProtocolError):  # XEP-0368 §3 rule 5: no STARTTLS over TLS
            await conn.start_tls()


# The test server's own start_tls trips over python/cpython#105993 when the client hangs up; its writer then
# complains when collected. That is the server's side of the test, not the code under test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_starttls_name_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    issued = ca_and_leaf(tmp_path, ["other.test"])
    async with serve(starttls_echo(server_context(issued.cert, issued.key))) as port:
        conn = await open_connection(DOMAIN, host="127.0.0.1", port=port)
        conn.write(b"starttls\n")
        assert await asyncio.wait_for(conn.read(), 5) == b"proceed\n"
        with pytest.raises(CertificateError) as caught:
            await conn.start_tls(client_context(ca_file=issued.ca_cert))
        assert caught.value.problem is CertificateProblem.NAME_MISMATCH
        assert "example.test" in str(caught.value)
        assert conn.is_closing
        await conn.aclose()


async def test_direct_tls_with_ca_file_and_alpn(issued: IssuedCertificate) -> None:
    tls = server_context(issued.cert, issued.key, alpn=[ALPN_CLIENT])
    async with serve(echo, tls=tls) as port:
        conn = await open_connection(
            DOMAIN,
            overrides={DOMAIN: [Target("127.0.0.1", port, True)]},
            ssl_context=client_context(ca_file=issued.ca_cert, alpn=[ALPN_CLIENT]),
        )
        async with conn:
            assert conn.is_secure and conn.alpn_protocol == ALPN_CLIENT
            assert await roundtrip(conn) == b"<presence/>"


async def test_direct_tls_unknown_ca_is_reported_per_target(issued: IssuedCertificate) -> None:
    async with serve(echo, tls=server_context(issued.cert, issued.key)) as port:
        with pytest.raises(ConnectError) as caught:
            await open_connection(DOMAIN, host="127.0.0.1", port=port, direct_tls=True)  # system CAs only
    (error,) = caught.value.certificate_errors
    assert error.problem is CertificateProblem.UNKNOWN_CA
    assert f"127.0.0.1:{port} (direct TLS): TLS certificate of example.test refused" in str(caught.value)
    assert "unknown certificate authority" in str(caught.value)


async def test_refused_targets_are_all_listed() -> None:
    first, second = free_port(), free_port()
    targets = [Target("127.0.0.1", first, False), Target("127.0.0.1", second, True)]
    with pytest.raises(ConnectError) as caught:
        await open_connection(DOMAIN, overrides={DOMAIN: targets}, connect_timeout=5)
    message = str(caught.value)
    assert message.startswith("could not connect to example.test; tried ")
    assert f"127.0.0.1:{first} (TCP)" in message and f"127.0.0.1:{second} (direct TLS)" in message
    assert [type(a.error) for a in caught.value.attempts] == [ConnectionRefusedError] * 2


async def test_timeout_moves_on_to_the_next_target() -> None:
    async with serve(silent) as slow, serve(echo) as good:
        targets = [Target("127.0.0.1", slow, True), Target("127.0.0.1", good, False)]
        started = time.monotonic()
        async with await open_connection(DOMAIN, overrides={DOMAIN: targets}, connect_timeout=0.3) as conn:
            assert time.monotonic() - started < 3
            assert conn.target == targets[1]
            assert await roundtrip(conn) == b"<presence/>"


async def test_timeout_of_every_target_is_reported() -> None:
    async with serve(silent) as slow:
        with pytest.raises(ConnectError, match=rf"127\.0\.0\.1:{slow} \(direct TLS\): timed out after 0\.2 s"):
            await open_connection(DOMAIN, host="127.0.0.1", port=slow, direct_tls=True, connect_timeout=0.2)


async def test_direct_tls_filter_without_such_targets() -> None:
    with pytest.raises(ConnectError, match="no direct TLS targets"):
        await open_connection(DOMAIN, overrides={DOMAIN: [Target("127.0.0.1", 1, False)]}, direct_tls=True)
    with pytest.raises(ValueError, match="port"):  # no standard direct TLS port to guess
        await open_connection(DOMAIN, host="127.0.0.1", direct_tls=True)


async def test_aclose_on_a_dead_connection_does_not_raise() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    async with serve(reset) as port:
        conn = await open_connection(DOMAIN, host="127.0.0.1", port=port)
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(conn.read(), 5) == b""
        conn.write(b"into the void")
        with contextlib.suppress(ConnectionError):
            await conn.drain()
        await conn.aclose()
        await conn.aclose()  # twice is fine


class MemoryTLSServer:
    """A TLS server driven by hand over a plain socket, to see exactly what the client sends when closing."""

    def __init__(self, context: ssl.SSLContext, *, answer_close_notify: bool) -> None:
        self.context = context
        self.answer_close_notify = answer_close_notify
        self.events: list[str] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.context.wrap_bio(incoming, outgoing, server_side=True)

        async def flush() -> None:
            if outgoing.pending:
                writer.write(outgoing.read())
                await writer.drain()

        async def feed() -> bool:
            await flush()
            data = await reader.read(65536)
            incoming.write(data) if data else incoming.write_eof()
            return bool(data)

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if not await feed():
                    return
        await flush()
        while True:
            try:
                data = tls.read(65536)
            except ssl.SSLWantReadError:
                if not await feed():
                    self.events.append("eof")
                    return
                continue
            except ssl.SSLError:  # the TCP connection ended without close_notify
                self.events.append("eof")
                return
            if not data:  # SSLObject.read gives b"" once the peer's close_notify arrived
                self.events.append("close_notify")
                break
            self.events.append(data.decode())
        if self.answer_close_notify:
            with contextlib.suppress(ssl.SSLError):
                tls.unwrap()
            await flush()
        else:
            await reader.read()  # keep the socket open, silently, until the client gives up


@pytest.mark.parametrize("answer", [True, False])
async def test_aclose_sends_close_notify_and_is_bounded(issued: IssuedCertificate, answer: bool) -> None:
    server = MemoryTLSServer(server_context(issued.cert, issued.key), answer_close_notify=answer)
    async with serve(server) as port:
        conn = await open_connection(
            DOMAIN,
            host="127.0.0.1",
            port=port,
            direct_tls=True,
            ssl_context=client_context(ca_file=issued.ca_cert),
        )
        conn.write(b"bye")
        await conn.drain()
        started = time.monotonic()
        await conn.aclose(timeout=0.5)
        elapsed = time.monotonic() - started
        async with asyncio.timeout(5):
            while "close_notify" not in server.events and "eof" not in server.events:
                await asyncio.sleep(0.01)
    assert "".join(e for e in server.events if e not in ("close_notify", "eof")) == "bye"
    assert "close_notify" in server.events
    assert elapsed < (0.4 if answer else 1.5)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # see the name-mismatch test
async def test_peer_hanging_up_during_starttls_is_a_connection_error() -> None:
    async def proceed_and_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"proceed\n")
        await writer.drain()
        await reader.read(1)  # the ClientHello arrives; hang up instead of answering
        writer.transport.abort()

    async with serve(proceed_and_hang_up) as port:
        conn = await open_connection(DOMAIN, host="127.0.0.1", port=port)
        conn.write(b"starttls\n")
        assert await asyncio.wait_for(conn.read(), 5) == b"proceed\n"
        with pytest.raises(ConnectionError):
            await conn.start_tls(client_context(verify=False), timeout=5)
        assert conn.is_closing and not conn.is_secure
        await asyncio.wait_for(conn.aclose(), 5)


async def test_domain_without_xmpp_service_is_a_connect_error() -> None:
    class DotResolver:
        async def resolve(self, qname: str, rdtype: str) -> list[object]:
            return [type("SRV", (), {"priority": 0, "weight": 0, "port": 0, "target": "."})()]

    with pytest.raises(ConnectError, match=r"could not connect to example\.test: .*no xmpp-client XMPP service"):
        await open_connection(DOMAIN, resolver=DotResolver())
