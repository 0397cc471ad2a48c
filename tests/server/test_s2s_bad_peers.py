"""Misbehaving servers against the in-process jaybird s2s listener, on the wire (RFC 6120 §4.9.3, XEP-0220,
XEP-0178): forged senders, garbage, stalling, endless stanzas, certificates the policy refuses, failed dialback,
idle streams, a remote that never answers. Each bad peer costs one warning line and bounded memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jaybird.errors import StanzaError, StanzaErrorCondition, StreamErrorCondition
from jaybird.jid import JID
from jaybird.server.app import Server
from jaybird.server.storage.api import AccountExistsError
from jaybird.stanza import Iq, IqType, Message, MessageType
from jaybird.stream import events as ev
from jaybird.stream.features.dialback import dialback_feature
from jaybird.stream.features.s2s import s2s_features, sasl_external_feature
from jaybird.xml.element import Element
from tests.peers.certs import ca_and_leaf, self_signed
from tests.peers.ports import free_port
from tests.server.conftest import RunningServer, server_config
from tests.server.helpers import watch
from tests.server.s2s_raw import RawPeer

pytestmark = pytest.mark.timeout(60)

B, C = "b.test", "c.test"
HEADER = (
    b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
    b"xmlns:db='jabber:server:dialback' from='c.test' to='b.test' version='1.0'>"
)
LOGGER = "jaybird.server.s2s"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


def _toml(port: int, *, s2s: str = "", peers: str = "", extra: str = "") -> str:
    return f'[listeners.s2s]\nenabled = true\nport = {port}\ninterfaces = ["127.0.0.1"]\n[s2s]\n{s2s}{peers}{extra}'


def _tls(cert: Path, key: Path) -> str:
    return f"[tls]\ncert_file = {json.dumps(str(cert))}\nkey_file = {json.dumps(str(key))}\n"


@dataclass
class Listener:
    running: RunningServer
    port: int
    peer_cert: Path  # c.test's certificate, from a CA the server trusts
    peer_key: Path
    bundle: Path  # both CAs: what a client of the server trusts


async def _start(tmp_path: Path, *, s2s: str = "", peers: str = "", extra: str = "") -> AsyncIterator[Listener]:
    port = free_port()
    ours = ca_and_leaf(tmp_path / "b-certs", [B], stem=B)
    theirs = ca_and_leaf(tmp_path / "c-certs", [C], stem=C)
    bundle = tmp_path / "cas.pem"
    bundle.write_bytes(ours.ca_cert.read_bytes() + theirs.ca_cert.read_bytes())
    s2s = f"ca_file = {json.dumps(str(bundle))}\n{s2s}"
    toml = _toml(port, s2s=s2s, peers=peers, extra=extra) + _tls(ours.cert, ours.key)
    config, c2s, tls_port = server_config(tmp_path / "data", domains=[B], toml=toml)
    server = Server(config)
    await server.start()
    try:
        yield Listener(RunningServer(server, config, c2s, tls_port, B), port, theirs.cert, theirs.key, bundle)
    finally:
        await server.stop()


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[Listener]:
    async for running in _start(tmp_path, s2s="negotiation_timeout_s = 1.0\n"):
        yield running


async def _raw(port: int, data: bytes, *, wait: float = 5.0) -> bytes:
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


def _external_peer(listener: Listener) -> RawPeer:
    features = s2s_features(dialback=None, external=sasl_external_feature(use=True))
    return RawPeer(C, B, listener.port, features, cert=listener.peer_cert, key=listener.peer_key)


# -- forged senders on an authenticated stream (RFC 6120 §4.9.3.9, §4.9.3.6) ---------------------------------------
async def test_external_then_forged_from_is_invalid_from(listener: Listener, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with _external_peer(listener) as peer:
        await peer.negotiate()
        assert any(isinstance(e, ev.Authenticated) and e.mechanism == "EXTERNAL" for e in peer.events)
        peer.send(Message.build("romeo@b.test", "forged", type=MessageType.CHAT, from_="x@evil.example").element)
        got = await peer.read_to_end()
    assert b"<invalid-from xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" in got.replace(b'"', b"'")
    assert got.endswith(b"</stream:stream>")
    assert len(_warnings(caplog)) == 1


async def test_stanza_to_a_domain_not_served_is_host_unknown(listener: Listener) -> None:
    async with _external_peer(listener) as peer:
        await peer.negotiate()
        peer.send(Message.build("romeo@elsewhere.test", "hi", from_="x@c.test").element)
        got = await peer.read_to_end()
    assert b"host-unknown" in got


# -- garbage, stalling, endless stanzas ---------------------------------------------------------------------------
async def test_garbage_is_not_well_formed_and_logged_once(listener: Listener, caplog: pytest.LogCaptureFixture) -> None:
    got = await _raw(listener.port, HEADER + b"<<<garbage")
    assert b"not-well-formed" in got and got.endswith(b"</stream:stream>")
    assert len(_warnings(caplog)) == 1


async def test_stalled_negotiation_is_connection_timeout_and_logged_once(
    listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    """negotiation_timeout_s = 1: a peer that opens its stream and then says nothing (RFC 6120 §4.9.3.4)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    got = await _raw(listener.port, HEADER, wait=5.0)
    assert b"connection-timeout" in got
    assert 0.9 <= loop.time() - started < 3.0
    assert len(_warnings(caplog)) == 1


async def test_endless_stanza_is_cut_at_max_stanza_bytes(tmp_path: Path) -> None:
    """A stanza that never ends is refused once it passes limits.max_stanza_bytes (RFC 6120 §13.12 item 4)."""
    async for listener in _start(tmp_path, extra="[limits]\nmax_stanza_bytes = 10000\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        sent = 0
        got = b""
        try:
            writer.write(HEADER + b"<message from='x@c.test' to='romeo@b.test'><body>")
            chunk = b"a" * 4096
            async with asyncio.timeout(5.0):
                while sent < 1024 * 1024:
                    writer.write(chunk)
                    sent += len(chunk)
                    try:
                        await writer.drain()
                        got += await asyncio.wait_for(reader.read(65536), 0.01)
                    except TimeoutError:
                        continue
                    except ConnectionError:
                        break
                    if b"</stream:stream>" in got:
                        break
                while b"</stream:stream>" not in got and (more := await reader.read(65536)):
                    got += more
        finally:
            writer.close()
        assert b"policy-violation" in got
        assert sent < 200 * 1024  # cut early, not after reading everything


# -- certificates and dialback --------------------------------------------------------------------------------------
async def test_untrusted_certificate_refused_when_policy_requires_a_valid_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """[[s2s.peers]] require_valid_certificate: no EXTERNAL for a certificate we do not trust, and no dialback
    either, so the stream ends with not-authorized (XEP-0220 §2.4) without asking c.test anything."""
    peers = f'[[s2s.peers]]\ndomain = "{C}"\nrequire_valid_certificate = true\n'
    async for listener in _start(tmp_path, s2s="request_client_certificates = false\n", peers=peers):
        caplog.set_level(logging.INFO, logger=LOGGER)
        untrusted = self_signed(tmp_path / "untrusted", [C], stem=C)
        features = s2s_features(
            dialback=dialback_feature(secret="s", local_domains=[C]), external=sasl_external_feature(use=True)
        )
        async with RawPeer(C, B, listener.port, features, cert=untrusted.cert, key=untrusted.key) as peer:
            refused = await peer.negotiate(until=(ev.StreamErrorReceived,))
            got = peer.received + await peer.read_to_end()
        assert isinstance(refused, ev.StreamErrorReceived)
        assert refused.error.condition is StreamErrorCondition.NOT_AUTHORIZED
        assert any(isinstance(e, ev.DialbackResult) and not e.valid for e in peer.events)
        assert b"EXTERNAL" not in got  # never offered
        assert b"type='invalid'" in got.replace(b'"', b"'") and b"not-authorized" in got
        assert "cannot reach" not in caplog.text  # refused by policy, not by asking
        assert len(_warnings(caplog)) == 1


async def test_failed_dialback_is_not_authorized_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The authoritative server of the claimed domain cannot be reached, so the key is not verified: db:result
    type='invalid' and not-authorized (XEP-0220 §2.4, RFC 6120 §4.9.3.12)."""
    peers = f'[[s2s.peers]]\ndomain = "{C}"\nhost = "127.0.0.1"\nport = {free_port()}\n'
    async for listener in _start(tmp_path, s2s="request_client_certificates = false\n", peers=peers):
        features = s2s_features(dialback=dialback_feature(secret="forged", local_domains=[C]))
        async with RawPeer(C, B, listener.port, features) as peer:
            refused = await peer.negotiate(until=(ev.StreamErrorReceived,))
            got = peer.received + await peer.read_to_end()
        assert isinstance(refused, ev.StreamErrorReceived)
        assert refused.error.condition is StreamErrorCondition.NOT_AUTHORIZED
        assert any(isinstance(e, ev.DialbackResult) and not e.valid for e in peer.events)
        assert b"type='invalid'" in got.replace(b'"', b"'") and b"not-authorized" in got
        assert len(_warnings(caplog)) == 1


# -- many bad peers: bounded memory and one line each ---------------------------------------------------------------
def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_two_hundred_bad_peers_bounded_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """N = 200 at once: half stall after their header (half-open, cut by the negotiation timeout), half send
    garbage. Every connection is closed, each logged once, and the process grows by a bounded amount."""
    n = 200
    async for listener in _start(tmp_path, s2s="negotiation_timeout_s = 1.0\n"):
        caplog.set_level(logging.WARNING, logger=LOGGER)
        before = _rss_bytes()
        payloads = [HEADER if i % 2 else HEADER + b"<garbage" * 8 + b"<<" for i in range(n)]
        replies = await asyncio.gather(*(_raw(listener.port, p, wait=10.0) for p in payloads))
        grown = _rss_bytes() - before
        assert sum(b"connection-timeout" in r for r in replies) == n // 2
        assert sum(b"not-well-formed" in r for r in replies) == n // 2
        assert not listener.running.server.s2s.incoming  # nothing left half-open
        assert len(_warnings(caplog)) == n
        print(f"RSS growth for {n} bad peers: {grown / 1e6:.1f} MB")
        assert grown < 40 * 1024 * 1024, f"RSS grew by {grown / 1e6:.1f} MB for {n} bad peers"


# -- two jaybird servers: policy both ways, idle streams ------------------------------------------------------------
@dataclass
class Pair:
    a: RunningServer
    b: RunningServer


async def _pair(tmp_path: Path, *, a_s2s: str = "", b_s2s: str = "", b_peer: str = "") -> AsyncIterator[Pair]:
    """a.test and b.test with self-signed certificates neither trusts: dialback is their only way in."""
    a_port, b_port = free_port(), free_port()
    base = "request_client_certificates = false\nnegotiation_timeout_s = 5.0\n"
    toml_a = _toml(
        a_port, s2s=base + a_s2s, peers=f'[[s2s.peers]]\ndomain = "{B}"\nhost = "127.0.0.1"\nport = {b_port}\n'
    )
    toml_b = _toml(
        b_port,
        s2s=base + b_s2s,
        peers=f'[[s2s.peers]]\ndomain = "a.test"\nhost = "127.0.0.1"\nport = {a_port}\n{b_peer}',
    )
    running: list[RunningServer] = []
    try:
        for name, domain, toml in (("a", "a.test", toml_a), ("b", B, toml_b)):
            config, port, tls_port = server_config(tmp_path / name, domains=[domain], toml=toml)
            server = Server(config)
            await server.start()
            running.append(RunningServer(server, config, port, tls_port, domain))
        yield Pair(running[0], running[1])
    finally:
        for each in running:
            await each.server.stop()


async def _send_across(pair: Pair, body: str) -> Message | StanzaError:
    """juliet@a.test -> romeo@b.test: what romeo receives, or the error juliet gets back."""
    juliet, romeo = JID("juliet@a.test"), JID("romeo@b.test")
    for running, jid in ((pair.a, juliet), (pair.b, romeo)):
        with contextlib.suppress(AccountExistsError):
            await running.add_user(jid.local or "", "secret")
    async with pair.a.client(juliet, "secret") as cj, pair.b.client(romeo, "secret") as cr:
        to_romeo, to_juliet = watch(cr.stanzas(), 8.0), watch(cj.stanzas(), 8.0)
        await cj.send(Message.build(cr.jid, body, type=MessageType.CHAT))
        done, _ = await asyncio.wait({to_romeo, to_juliet}, return_when=asyncio.FIRST_COMPLETED)
        for task in (to_romeo, to_juliet):
            if task not in done:
                task.cancel()
        got = done.pop().result()
        if got.to is not None and got.to.bare == juliet:
            assert isinstance(got, Message) and got.error is not None
            return got.error
        assert isinstance(got, Message)
        return got


@pytest.mark.parametrize("require_valid", [False, True])
async def test_untrusted_certificate_dialback_fallback_by_policy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, require_valid: bool
) -> None:
    """a.test's certificate is not trusted by b.test. By default b.test lets a.test fall back to dialback
    (XEP-0178 §3 last step) and the message arrives; with require_valid_certificate for a.test, b.test refuses
    and a.test bounces the message (RFC 6120 §10.4.3)."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    b_peer = "require_valid_certificate = true\n" if require_valid else ""
    async for pair in _pair(tmp_path, b_peer=b_peer):
        outcome = await _send_across(pair, "through?")
    if require_valid:
        assert isinstance(outcome, StanzaError)
        assert outcome.condition is StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND
        assert "dialback for a.test -> b.test refused" in caplog.text
    else:
        assert isinstance(outcome, Message) and outcome.body == "through?"
        assert "dialback for a.test -> b.test valid" in caplog.text


async def test_idle_streams_are_closed_and_reopened(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    async for pair in _pair(tmp_path, a_s2s="idle_timeout_s = 0.5\n", b_s2s="idle_timeout_s = 0.5\n"):
        first = await _send_across(pair, "one")
        assert isinstance(first, Message)
        async with asyncio.timeout(5.0):
            while pair.a.server.s2s.links() or pair.b.server.s2s.links():
                await asyncio.sleep(0.05)
        assert "idle; closing" in caplog.text
        again = await _send_across(pair, "two")  # a fresh stream
        assert isinstance(again, Message) and again.body == "two"


async def test_remote_that_never_answers_bounces_remote_server_timeout(tmp_path: Path) -> None:
    """A listener that accepts and says nothing: the queued stanza comes back as remote-server-timeout once
    negotiation_timeout_s passes (RFC 6120 §10.4.3)."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    mute = await asyncio.start_server(silent, "127.0.0.1", 0)
    mute_port = mute.sockets[0].getsockname()[1]
    peers = f'[[s2s.peers]]\ndomain = "{C}"\nhost = "127.0.0.1"\nport = {mute_port}\n'
    try:
        async for listener in _start(tmp_path, s2s="negotiation_timeout_s = 1.0\n", peers=peers):
            juliet = await listener.running.add_user("juliet", "secret")
            async with listener.running.client(juliet, "secret", ca_file=str(listener.bundle)) as cj:
                with pytest.raises(StanzaError) as info:
                    await cj.iq(Iq.build(IqType.GET, Element("{urn:xmpp:ping}ping"), to=C), timeout=8.0)
            assert info.value.condition is StanzaErrorCondition.REMOTE_SERVER_TIMEOUT
            assert accepted  # it did connect
    finally:
        for writer in accepted:
            writer.close()
        mute.close()
        await mute.wait_closed()
