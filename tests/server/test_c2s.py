"""Client connections against an in-process server: TLS, SASL, binding, limits (RFC 6120 §5-§7, §13)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref

import pytest

from jaybird.client import ConnectionLost
from jaybird.errors import AuthenticationError, SASLCondition
from jaybird.server import c2s
from jaybird.stanza import Message, MessageType
from tests.server.conftest import ServerFactory
from tests.server.helpers import barrier, next_stanza, watch

PASSWORD = "balcony-at-midnight"


@pytest.mark.parametrize(
    ("mechanism", "direct_tls"),
    [
        ("SCRAM-SHA-256", False),
        ("SCRAM-SHA-1", False),
        ("PLAIN", False),
        ("SCRAM-SHA-256-PLUS", False),
        ("SCRAM-SHA-1-PLUS", True),
        ("SCRAM-SHA-256", True),
    ],
)
async def test_login_with_each_mechanism(start_server: ServerFactory, mechanism: str, direct_tls: bool) -> None:
    # RFC 6120 §6 SASL over STARTTLS (§5) or XEP-0368 direct TLS; -PLUS binds to tls-server-end-point (RFC 5929).
    running = await start_server()
    juliet = await running.add_user("juliet", PASSWORD)
    async with running.client(juliet, PASSWORD, mechanisms=[mechanism], direct_tls=direct_tls) as client:
        assert client.sasl_mechanism == mechanism
        assert client.jid.bare == juliet and client.jid.resource


async def test_wrong_password_is_not_authorized(start_server: ServerFactory) -> None:
    running = await start_server()
    juliet = await running.add_user("juliet", PASSWORD)
    with pytest.raises(AuthenticationError) as info:
        async with running.client(juliet, "wrong"):
            pass
    assert info.value.condition is SASLCondition.NOT_AUTHORIZED


async def test_unknown_account_is_not_authorized(start_server: ServerFactory) -> None:
    running = await start_server()
    with pytest.raises(AuthenticationError):
        async with running.client("nobody@localhost", PASSWORD):
            pass


async def test_failed_login_throttle_refuses_even_the_right_password(start_server: ServerFactory) -> None:
    running = await start_server(toml="[auth.failed_login_throttle]\nlimit = 1\nperiod_s = 60.0\n")
    juliet = await running.add_user("juliet", PASSWORD)
    with pytest.raises(AuthenticationError):
        async with running.client(juliet, "wrong"):
            pass
    with pytest.raises(AuthenticationError):
        async with running.client(juliet, PASSWORD):
            pass


async def test_requested_resource_is_bound(start_server: ServerFactory) -> None:
    running = await start_server()
    juliet = await running.add_user("juliet", PASSWORD)
    async with running.client(juliet, PASSWORD, resource="balcony") as client:
        assert client.jid.resource == "balcony"


async def test_resource_conflict_new_session_wins(start_server: ServerFactory) -> None:
    # RFC 6120 §7.7.2.2: our policy is that the new session wins; the old one gets <conflict/>.
    running = await start_server()
    juliet = await running.add_user("juliet", PASSWORD)
    async with running.client(juliet, PASSWORD, resource="balcony") as old:
        pending = watch(old.stanzas())
        await asyncio.sleep(0.05)
        async with running.client(juliet, PASSWORD, resource="balcony") as new:
            with pytest.raises(ConnectionLost, match="conflict"):
                await pending
            assert new.jid == old.account.with_resource("balcony")
            # the new session is the one bound: it is routed to
            await barrier(new)
            sessions = running.server.hosts["localhost"].sessions.of(juliet)
            assert len(sessions) == 1


async def test_tls_is_required_before_authentication(start_server: ServerFactory) -> None:
    # RFC 6120 §5.3.1: only STARTTLS is offered until TLS is up; a client that will not do TLS gets nowhere.
    running = await start_server()
    juliet = await running.add_user("juliet", PASSWORD)
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        writer.write(
            b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
            b"xmlns:stream='http://etherx.jabber.org/streams'>"
        )
        data = await _read_until(reader, b"</stream:features>")
        assert b"starttls" in data and b"<required" in data and b"mechanisms" not in data
        writer.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABw</auth>")
        rest = await _read_until(reader, b"</stream:stream>")
        assert b"not-authorized" in rest or b"policy-violation" in rest or b"encryption-required" in rest
    finally:
        writer.close()
    assert juliet


async def test_plain_on_loopback_when_allowed(start_server: ServerFactory) -> None:
    running = await start_server(toml="[tls]\nrequire_c2s = true\nallow_plain_on_loopback = true\n")
    juliet = await running.add_user("juliet", PASSWORD)
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        writer.write(
            b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
            b"xmlns:stream='http://etherx.jabber.org/streams'>"
        )
        data = await _read_until(reader, b"</stream:features>")
        # SCRAM offered without TLS; PLAIN (which reveals the password) is not.
        assert b"<mechanism>SCRAM-SHA-256</mechanism>" in data and b"PLAIN" not in data
    finally:
        writer.close()
    assert juliet


async def _read_until(reader: asyncio.StreamReader, marker: bytes, timeout: float = 5.0) -> bytes:
    data = b""
    async with asyncio.timeout(timeout):
        while marker not in data:
            chunk = await reader.read(4096)
            if not chunk:
                break
            data += chunk
    return data


async def test_connections_per_ip_limit(start_server: ServerFactory) -> None:
    running = await start_server(toml="[limits]\nmax_connections_per_ip = 2\n")
    opened = [await asyncio.open_connection("127.0.0.1", running.port) for _ in range(2)]
    await asyncio.sleep(0.1)
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        data = await _read_until(reader, b"</stream:stream>")
        assert b"policy-violation" in data
    finally:
        writer.close()
        for _, w in opened:
            w.close()


async def test_idle_timeout_closes_with_connection_timeout(start_server: ServerFactory) -> None:
    running = await start_server(toml="[limits]\nidle_timeout_s = 0.5\n")
    juliet = await running.add_user("juliet", PASSWORD)
    async with running.client(juliet, PASSWORD) as client:
        with pytest.raises(ConnectionLost, match="connection-timeout"):
            await next_stanza(client.stanzas(), timeout=5.0)


async def test_handshake_timeout(start_server: ServerFactory) -> None:
    running = await start_server(toml="[limits]\nhandshake_timeout_s = 0.3\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        writer.write(
            b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
            b"xmlns:stream='http://etherx.jabber.org/streams'>"
        )
        data = await _read_until(reader, b"</stream:stream>")
        assert b"connection-timeout" in data
    finally:
        writer.close()


async def test_unknown_host_is_host_unknown(start_server: ServerFactory) -> None:
    running = await start_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        writer.write(
            b"<?xml version='1.0'?><stream:stream to='elsewhere.example' version='1.0' xmlns='jabber:client' "
            b"xmlns:stream='http://etherx.jabber.org/streams'>"
        )
        assert b"host-unknown" in await _read_until(reader, b"</stream:stream>")
    finally:
        writer.close()


async def test_spoofed_from_is_invalid_from(start_server: ServerFactory) -> None:
    # RFC 6120 §8.1.2.1: a client may name only itself in 'from'.
    running = await start_server()
    juliet = await running.add_user("juliet", PASSWORD)
    await running.add_user("romeo", PASSWORD)
    async with running.client(juliet, PASSWORD) as client:
        pending = watch(client.stanzas())
        await asyncio.sleep(0.05)
        await client.send(Message.build("romeo@localhost", "hi", from_="romeo@localhost/x"))
        with pytest.raises(ConnectionLost, match="invalid-from"):
            await pending


async def test_own_bare_from_is_accepted(start_server: ServerFactory) -> None:
    running = await start_server()
    juliet = await running.add_user("juliet", PASSWORD)
    async with running.client(juliet, PASSWORD) as client:
        pending = watch(client.stanzas())
        await asyncio.sleep(0.05)
        await client.send(Message.build("nobody@localhost", "hi", type=MessageType.CHAT, from_=juliet))
        reply = await pending
        assert isinstance(reply, Message) and reply.is_error


async def test_too_large_stanza_is_policy_violation(start_server: ServerFactory) -> None:
    # RFC 6120 §13.12: the server sets a stanza size limit; beyond it, policy-violation.
    running = await start_server(toml="[limits]\nmax_stanza_bytes = 10000\n")
    juliet = await running.add_user("juliet", PASSWORD)
    async with running.client(juliet, PASSWORD) as client:
        pending = watch(client.stanzas())
        await asyncio.sleep(0.05)
        await client.send(Message.build("juliet@localhost", "x" * 20000))
        with pytest.raises(ConnectionLost, match="policy-violation"):
            await pending


async def test_graceful_shutdown_sends_system_shutdown(start_server: ServerFactory) -> None:
    running = await start_server()
    juliet = await running.add_user("juliet", PASSWORD)
    async with running.client(juliet, PASSWORD) as client:
        pending = watch(client.stanzas())
        await asyncio.sleep(0.05)
        await running.server.stop()
        with pytest.raises(ConnectionLost, match="system-shutdown"):
            await pending
    assert not running.server.hosts["localhost"].sessions.all()


async def test_an_idle_clients_parser_is_released_and_rebuilt(
    start_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client quiet for PARSER_RELEASE_AFTER_S has its XML parser freed; its next stanza is read by a new one
    that knows the stream's namespaces (its content namespace maps to jabber:client as before)."""
    monkeypatch.setattr(c2s, "PARSER_RELEASE_AFTER_S", 0.2)
    running = await start_server()
    juliet = await running.add_user("juliet", PASSWORD)
    romeo = await running.add_user("romeo", PASSWORD)
    async with running.client(juliet, PASSWORD) as alice, running.client(romeo, PASSWORD) as bob:
        sessions = running.server.hosts["localhost"].sessions
        (session,) = sessions.of(juliet)
        assert isinstance(session, c2s.C2SConnection)
        for _ in range(50):  # bounded: 5 s
            if not session._stream.holding_parser:
                break
            await asyncio.sleep(0.1)
        assert not session._stream.holding_parser
        inbox = bob.stanzas()
        await alice.send(Message.build(bob.jid, "still here", type=MessageType.CHAT))
        received = await next_stanza(inbox, timeout=5.0)
        assert isinstance(received, Message) and received.body == "still here" and received.from_ == alice.jid
        assert session._stream.holding_parser


async def test_a_client_that_does_not_read_is_closed_and_the_server_goes_on(
    start_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes go out directly while the socket takes them; once it is full the writer task waits on it and the
    rest queues, up to the backlog limit: then the stream ends (resource-constraint, RFC 6120 §4.9.3.17, which
    the client could only read after all it left unread), the connection is dropped at once and the session
    removed, and nothing else on the server stalls."""
    from bench.loadgen import LoginOptions, Target, login

    monkeypatch.setattr(c2s, "MAX_BACKLOG", 512 * 1024)
    running = await start_server(
        toml="[tls]\nrequire_c2s = true\nallow_plain_on_loopback = true\n\n"
        "[limits]\nc2s_rate_bytes_per_s = 1073741824\n"  # the sender at full speed
    )
    romeo = await running.add_user("romeo", PASSWORD)
    juliet = await running.add_user("juliet", PASSWORD)
    silent = await login(
        Target("127.0.0.1", running.port, "localhost"), "romeo", PASSWORD, LoginOptions(presence=False)
    )
    host = running.server.hosts["localhost"]
    try:
        async with running.client(juliet, PASSWORD) as client:
            body = "x" * 100_000
            async with asyncio.timeout(20):
                for _ in range(300):  # up to 30 MB: more than both sockets' buffers and the backlog limit
                    await client.send(Message.build(to=silent.jid, type=MessageType.CHAT, body=body))
                    if not host.sessions.of(romeo):
                        break
                while host.sessions.of(romeo):
                    await asyncio.sleep(0.05)
            async with asyncio.timeout(5):
                await barrier(client)  # the server still answers everyone else
        # Dropped, not left to drain: what the client finally reads ends in EOF or a reset, within seconds.
        with contextlib.suppress(ConnectionResetError):
            async with asyncio.timeout(5):
                while await silent.reader.read(1 << 20):
                    pass
    finally:
        silent.writer.close()


async def test_a_closed_connection_is_freed_without_the_garbage_collector(start_server: ServerFactory) -> None:
    # Nothing of a finished connection may form a reference cycle: each one would wait for a collection pass,
    # and those passes walked every connection's objects (several per cent of a login's CPU).
    running = await start_server()
    juliet = await running.add_user("juliet", PASSWORD)
    gc.collect()
    gc.disable()
    try:
        async with running.client(juliet, PASSWORD):
            (session,) = running.server.hosts["localhost"].sessions.of(juliet)
            assert isinstance(session, c2s.C2SConnection)
            connection = weakref.ref(session)
            del session
        for _ in range(100):  # bounded: 5 s
            if connection() is None:
                break
            await asyncio.sleep(0.05)
        assert connection() is None
    finally:
        gc.enable()
