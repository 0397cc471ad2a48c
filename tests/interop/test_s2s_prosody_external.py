"""jaybird and Prosody 0.12 federating with SASL EXTERNAL (XEP-0178) both ways, then presence subscriptions
(RFC 6121 §3) and IQs (XEP-0092, XEP-0199) across the two servers in both directions.

Each side's certificate comes from a CA of its own, and both trust a bundle of the two CAs. Prosody runs with
``s2s_secure_auth = true``, so it accepts no stream that its certificate check did not authenticate: dialback
cannot stand in for EXTERNAL. DNS and routes as in :mod:`tests.interop.test_s2s_prosody`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from jaybird.client import Client
from jaybird.ext.ping.client import answer_pings, ping
from jaybird.ext.roster.client import get_roster
from jaybird.ext.version.wire import SoftwareVersion
from jaybird.jid import JID
from jaybird.server.app import Server
from jaybird.stanza import Iq, IqType, Message, Presence, PresenceType
from tests.interop.s2s_dns import TestDNS
from tests.interop.test_s2s_prosody import JAYBIRD, PROSODY, FederatingProsody
from tests.peers import require_binary
from tests.peers.certs import IssuedCertificate, ca_and_leaf
from tests.peers.ports import free_port
from tests.server.conftest import RunningServer, server_config

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

WAIT = 15.0
Stanza = Message | Presence | Iq


class SecureProsody(FederatingProsody):
    """Prosody trusting ``bundle`` (its own CA and jaybird's) and requiring certificate authentication."""

    def __init__(self, workdir: Path, *, dns_port: int, peer_ca: Path, bundle: Path) -> None:
        super().__init__(workdir, dns_port=dns_port)
        self._peer_ca, self._bundle = peer_ca, bundle

    def _config(self, cert: Path, key: Path) -> str:
        # start() made our certificate (and CA) before asking for the config: the bundle is complete now.
        self._bundle.write_bytes(self.ca_file.read_bytes() + self._peer_ca.read_bytes())
        text = super()._config(cert, key).replace("s2s_secure_auth = false", "s2s_secure_auth = true")
        return text.replace("ssl = { ", f'ssl = {{ ["cafile"] = {json.dumps(str(self._bundle))}; ', 1)


@dataclass
class Federation:
    jaybird: RunningServer
    prosody: SecureProsody
    bundle: Path


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[Federation]:
    require_binary("prosody")
    s2s_port = free_port()
    ours: IssuedCertificate = ca_and_leaf(tmp_path / "jaybird-certs", [JAYBIRD], stem=JAYBIRD)
    bundle = tmp_path / "cas.pem"
    with TestDNS({JAYBIRD: s2s_port}) as dns:
        prosody = SecureProsody(tmp_path / "prosody", dns_port=dns.port, peer_ca=ours.ca_cert, bundle=bundle)
        await asyncio.to_thread(prosody.start)
        try:
            toml = (
                f'[listeners.s2s]\nenabled = true\nport = {s2s_port}\ninterfaces = ["127.0.0.1"]\n'
                f"[s2s]\nnegotiation_timeout_s = 15.0\nca_file = {json.dumps(str(bundle))}\n"
                f'[[s2s.peers]]\ndomain = "{PROSODY}"\nhost = "127.0.0.1"\nport = {prosody.s2s_port}\n'
                f"[tls]\ncert_file = {json.dumps(str(ours.cert))}\nkey_file = {json.dumps(str(ours.key))}\n"
            )
            # modules=None: the default set (roster, presence, ping, version, ...).
            config, port, tls_port = server_config(tmp_path / "jaybird", domains=[JAYBIRD], modules=None, toml=toml)
            server = Server(config)
            await server.start()
            try:
                yield Federation(RunningServer(server, config, port, tls_port, JAYBIRD), prosody, bundle)
            finally:
                await server.stop()
        finally:
            await asyncio.to_thread(prosody.stop)


class Inbox:
    """Every stanza a client receives, from the moment it is made, waited for by predicate."""

    def __init__(self, client: Client) -> None:
        self._queue: asyncio.Queue[Stanza] = asyncio.Queue()
        self._seen: list[Stanza] = []
        self._task = asyncio.ensure_future(self._pump(client))

    async def _pump(self, client: Client) -> None:
        async for stanza in client.stanzas():
            await self._queue.put(stanza)

    async def wait_for(self, what: str, predicate: Callable[[Stanza], bool], timeout: float = WAIT) -> Stanza:
        for stanza in self._seen:
            if predicate(stanza):
                self._seen.remove(stanza)
                return stanza
        try:
            async with asyncio.timeout(timeout):
                while True:
                    stanza = await self._queue.get()
                    if predicate(stanza):
                        return stanza
                    self._seen.append(stanza)
        except TimeoutError:
            raise AssertionError(f"no {what} within {timeout} s; got {self._seen!r}") from None

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _presence(kind: PresenceType, sender: JID) -> Callable[[Stanza], bool]:
    def match(stanza: Stanza) -> bool:
        return (
            isinstance(stanza, Presence)
            and stanza.type is kind
            and stanza.from_ is not None
            and stanza.from_.bare == sender.bare
        )

    return match


async def _subscribe(asker: Client, asker_inbox: Inbox, contact: Client, contact_inbox: Inbox) -> None:
    """RFC 6121 §3.1: ``asker`` subscribes to ``contact``, who approves; the asker then sees the contact online."""
    await asker.send(Presence.build(contact.jid.bare, type=PresenceType.SUBSCRIBE))
    await contact_inbox.wait_for("subscription request", _presence(PresenceType.SUBSCRIBE, asker.jid))
    await contact.send(Presence.build(asker.jid.bare, type=PresenceType.SUBSCRIBED))
    await asker_inbox.wait_for("subscription approval", _presence(PresenceType.SUBSCRIBED, contact.jid))
    # §3.1.5/§4.3: once subscribed, the contact's server sends its current presence (answering a probe).
    await asker_inbox.wait_for("the contact's presence", _presence(PresenceType.AVAILABLE, contact.jid))


async def test_external_both_ways_subscriptions_and_iqs(
    federation: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jaybird.server.s2s")
    juliet_jid = await federation.jaybird.add_user("juliet", "secret")
    await asyncio.to_thread(federation.prosody.add_user, "romeo", "secret")
    prosody = federation.prosody
    romeo_client = Client(
        f"romeo@{PROSODY}",
        "secret",
        host=prosody.host,
        port=prosody.c2s_port,
        ca_file=str(federation.bundle),
        reconnect=False,
        iq_timeout=WAIT,
    )
    async with (
        federation.jaybird.client(juliet_jid, "secret", ca_file=str(federation.bundle), iq_timeout=WAIT) as juliet,
        romeo_client as romeo,
    ):
        answer_pings(romeo)
        answer_pings(juliet)
        juliet_inbox, romeo_inbox = Inbox(juliet), Inbox(romeo)
        try:
            # Roster first, then presence: "interested resources" (RFC 6121 §1.3), the only ones Prosody sends
            # subscription approvals to.
            for client in (juliet, romeo):
                await get_roster(client)
                await client.send(Presence.build())
            await _subscribe(juliet, juliet_inbox, romeo, romeo_inbox)
            await _subscribe(romeo, romeo_inbox, juliet, juliet_inbox)

            # XEP-0092 to the other server, both ways.
            answer = await juliet.iq(Iq.build(IqType.GET, SoftwareVersion(), to=PROSODY))
            assert answer.from_ == JID(PROSODY)
            theirs = SoftwareVersion.from_element(answer.element.children[0])  # type: ignore[arg-type]
            assert theirs.software is not None and "prosody" in theirs.software.lower()
            answer = await romeo.iq(Iq.build(IqType.GET, SoftwareVersion(), to=JAYBIRD))
            ours = SoftwareVersion.from_element(answer.element.children[0])  # type: ignore[arg-type]
            assert ours.software is not None and "jaybird" in ours.software.lower()

            # XEP-0199 from a user on one side to a user (full JID) on the other, both ways.
            assert await ping(juliet, romeo.jid, timeout=WAIT) < WAIT
            assert await ping(romeo, juliet.jid, timeout=WAIT) < WAIT
        finally:
            await juliet_inbox.close()
            await romeo_inbox.close()
    # XEP-0178 both ways: Prosody accepted our EXTERNAL and we accepted Prosody's; no dialback was asked for.
    assert f"accepted by {PROSODY} (EXTERNAL)" in caplog.text
    assert f"authenticated as {PROSODY} (EXTERNAL)" in caplog.text
    assert "dialback for" not in caplog.text
    log = prosody.log_text()
    assert "SASL EXTERNAL with jaybird.example succeeded" in log
