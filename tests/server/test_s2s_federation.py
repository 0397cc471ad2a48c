"""Two jaybird servers federating in-process on loopback (RFC 6120 s2s, XEP-0220 dialback, XEP-0178 EXTERNAL).

Each server knows the other's domain only through a ``[[s2s.peers]]`` route, so no DNS is involved.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.server.app import Server
from jaybird.stanza import Iq, IqType, Message, MessageType
from jaybird.xml.element import Element
from tests.peers.certs import ca_and_leaf
from tests.peers.ports import free_port, free_ports
from tests.server.conftest import PORT_ATTEMPTS, RunningServer, server_config
from tests.server.helpers import watch

A, B = "a.test", "b.test"


@dataclass
class Pair:
    a: RunningServer
    b: RunningServer
    a_s2s: int
    b_s2s: int
    ca: Path | None = None  # what clients trust when the servers use CA-signed certificates


def _s2s_toml(port: int, peer: str, peer_port: int, *, ca: Path | None, extra: str = "") -> str:
    ca_line = f"ca_file = {json.dumps(str(ca))}\n" if ca is not None else ""
    return (
        f'[listeners.s2s]\nenabled = true\nport = {port}\ninterfaces = ["127.0.0.1"]\n'
        f"[s2s]\nnegotiation_timeout_s = 5.0\n{ca_line}{extra}"
        f'[[s2s.peers]]\ndomain = "{peer}"\nhost = "127.0.0.1"\nport = {peer_port}\n'
    )


def _tls_toml(cert: Path, key: Path) -> str:
    return f"[tls]\ncert_file = {json.dumps(str(cert))}\nkey_file = {json.dumps(str(key))}\n"


async def _start_pair(tmp_path: Path, *, external: bool, a_extra: str = "", b_extra: str = "") -> AsyncIterator[Pair]:
    for attempt in range(PORT_ATTEMPTS):
        # The two configurations name each other's s2s port: a port taken meanwhile means choosing both again.
        a_port, b_port = free_ports(2)
        bundle: Path | None = None
        toml_a = _s2s_toml(a_port, B, b_port, ca=None, extra=a_extra)
        toml_b = _s2s_toml(b_port, A, a_port, ca=None, extra=b_extra)
        if external:
            # One CA for both: each side trusts the other's certificate, so SASL EXTERNAL is offered and used.
            ca_a = ca_and_leaf(tmp_path / "certs-a", [A], stem=A)
            leaf_b = ca_and_leaf(tmp_path / "certs-b", [B], stem=B)
            bundle = tmp_path / "cas.pem"
            bundle.write_bytes(ca_a.ca_cert.read_bytes() + leaf_b.ca_cert.read_bytes())
            toml_a = _s2s_toml(a_port, B, b_port, ca=bundle, extra=a_extra) + _tls_toml(ca_a.cert, ca_a.key)
            toml_b = _s2s_toml(b_port, A, a_port, ca=bundle, extra=b_extra) + _tls_toml(leaf_b.cert, leaf_b.key)
        servers: list[Server] = []
        running: list[RunningServer] = []
        try:
            for name, domain, toml in (("a", A, toml_a), ("b", B, toml_b)):
                config, port, tls_port = server_config(tmp_path / f"data-{name}-{attempt}", domains=[domain], toml=toml)
                server = Server(config)
                servers.append(server)
                await server.start()
                running.append(RunningServer(server, config, port, tls_port, domain))
        except OSError as exc:
            for server in servers:
                await server.stop()
            if exc.errno != errno.EADDRINUSE or attempt == PORT_ATTEMPTS - 1:
                raise
            continue
        try:
            yield Pair(running[0], running[1], a_port, b_port, bundle)
        finally:
            for server in servers:
                await server.stop()
        return


@pytest.fixture
async def dialback_pair(tmp_path: Path) -> AsyncIterator[Pair]:
    # Self-signed certificates neither side trusts: only dialback can authenticate (XEP-0220).
    extra = "request_client_certificates = false\n"
    async for pair in _start_pair(tmp_path, external=False, a_extra=extra, b_extra=extra):
        yield pair


@pytest.fixture
async def external_pair(tmp_path: Path) -> AsyncIterator[Pair]:
    async for pair in _start_pair(tmp_path, external=True):
        yield pair


async def _exchange(pair: Pair) -> None:
    juliet = await pair.a.add_user("juliet", "secret")
    romeo = await pair.b.add_user("romeo", "secret")
    ca: dict[str, Any] = {"ca_file": str(pair.ca)} if pair.ca is not None else {}
    async with pair.a.client(juliet, "secret", **ca) as cj, pair.b.client(romeo, "secret", **ca) as cr:
        to_romeo, to_juliet = watch(cr.stanzas(), 15.0), watch(cj.stanzas(), 15.0)
        await cj.send(Message.build(cr.jid, "hello across", type=MessageType.CHAT))
        got = await to_romeo
        assert isinstance(got, Message) and got.body == "hello across"
        assert got.from_ is not None and got.from_.bare == juliet
        await cr.send(Message.build(cj.jid, "and back", type=MessageType.CHAT))
        back = await to_juliet
        assert isinstance(back, Message) and back.body == "and back"


async def test_dialback_message_both_ways(dialback_pair: Pair) -> None:
    await _exchange(dialback_pair)


async def test_external_message_both_ways(external_pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    """XEP-0178: certificates from a CA both trust; SASL EXTERNAL, no dialback."""
    caplog.set_level(logging.INFO, logger="jaybird.server.s2s")
    await _exchange(external_pair)
    assert f"authenticated as {A} (EXTERNAL)" in caplog.text
    assert f"authenticated as {B} (EXTERNAL)" in caplog.text
    assert "dialback for" not in caplog.text


async def test_unreachable_domain_bounces_remote_server_not_found(dialback_pair: Pair) -> None:
    """RFC 6120 §10.4.3: nobody listens at the route; the queued stanza comes back as an error."""
    await dialback_pair.b.server.stop()
    juliet = await dialback_pair.a.add_user("juliet", "secret")
    async with dialback_pair.a.client(juliet, "secret") as cj:
        with pytest.raises(StanzaError) as info:
            await cj.iq(Iq.build(IqType.GET, Element("{urn:xmpp:ping}ping"), to=B), timeout=10.0)
        assert info.value.condition is StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND


async def _raw(port: int, data: bytes, *, wait: float = 3.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        got = b""
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                got += chunk
        return got
    finally:
        writer.close()


async def test_garbage_is_refused_with_not_well_formed(dialback_pair: Pair) -> None:
    got = await _raw(dialback_pair.b_s2s, b"<stream:stream xmlns='jabber:server' <<<garbage")
    assert b"not-well-formed" in got and got.endswith(b"</stream:stream>")


async def test_stanza_before_authentication_is_not_authorized(dialback_pair: Pair) -> None:
    header = (
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        b"xmlns:db='jabber:server:dialback' from='evil.example' to='b.test' version='1.0'>"
    )
    # require_tls: only STARTTLS is on offer; anything else is refused (RFC 6120 §4.9.3.12).
    got = await _raw(dialback_pair.b_s2s, header + b"<message from='x@evil.example' to='romeo@b.test'/>")
    assert b"<starttls" in got and b"not-authorized" in got


async def test_negotiation_timeout(tmp_path: Path) -> None:
    port = free_port()
    toml = (
        f'[listeners.s2s]\nenabled = true\nport = {port}\ninterfaces = ["127.0.0.1"]\n'
        "[s2s]\nnegotiation_timeout_s = 0.5\n"
    )
    config, _, _ = server_config(tmp_path / "data", domains=[B], toml=toml)
    async with Server(config):
        got = await _raw(port, b"<?xml version='1.0'?>", wait=5.0)
    assert b"connection-timeout" in got
