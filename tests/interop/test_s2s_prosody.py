"""Federation between jaybird and Prosody 0.12 on loopback (RFC 6120 s2s, XEP-0220 dialback).

Neither domain exists in DNS. jaybird reaches Prosody through a ``[[s2s.peers]]`` route; Prosody reaches jaybird
through libunbound forwarding to a test DNS server (:mod:`tests.interop.s2s_dns`) that answers SRV records for
jaybird's domain with jaybird's s2s port. Nothing system-wide is touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jaybird.client import Client
from jaybird.server.app import Server
from jaybird.stanza import Message, MessageType
from tests.interop.s2s_dns import TestDNS
from tests.peers import require_binary
from tests.peers.ports import free_port
from tests.peers.prosody import ProsodyServer, lua
from tests.server.conftest import RunningServer, server_config

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

# Not under .test: libunbound answers NXDOMAIN for test. itself (a default local zone, RFC 6761).
JAYBIRD = "jaybird.example"
PROSODY = "prosody.example"


class FederatingProsody(ProsodyServer):
    """Prosody with s2s whose DNS goes to a test server (``unbound.forward``)."""

    def __init__(self, workdir: Path, *, dns_port: int) -> None:
        super().__init__(workdir, domain=PROSODY, s2s=True, extra_modules=("dialback",), log_level="debug")
        self._dns_port = dns_port

    def _config(self, cert: Path, key: Path) -> str:
        text = super()._config(cert, key)
        extra = (
            f"unbound = {{ resolvconf = false; hoststxt = false; forward = {lua(f'127.0.0.1@{self._dns_port}')}; "
            '  options = { ["do-not-query-localhost:"] = "no" } }\n'  # our forwarder is on loopback
            "s2s_secure_auth = false\n"
            "s2s_timeout = 20\n"
        )
        cut = text.index("\nVirtualHost")
        return text[:cut] + "\n" + extra + text[cut:]


@dataclass
class Federation:
    jaybird: RunningServer
    prosody: ProsodyServer
    s2s_port: int


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[Federation]:
    require_binary("prosody")
    s2s_port = free_port()
    with TestDNS({JAYBIRD: s2s_port}) as dns:
        prosody = FederatingProsody(tmp_path / "prosody", dns_port=dns.port)
        await asyncio.to_thread(prosody.start)
        try:
            toml = (
                f'[listeners.s2s]\nenabled = true\nport = {s2s_port}\ninterfaces = ["127.0.0.1"]\n'
                "[s2s]\nnegotiation_timeout_s = 15.0\nrequest_client_certificates = false\n"
                f'[[s2s.peers]]\ndomain = "{PROSODY}"\nhost = "127.0.0.1"\nport = {prosody.s2s_port}\n'
            )
            config, port, tls_port = server_config(tmp_path / "jaybird", domains=[JAYBIRD], toml=toml)
            server = Server(config)
            await server.start()
            try:
                yield Federation(RunningServer(server, config, port, tls_port, JAYBIRD), prosody, s2s_port)
            finally:
                await server.stop()
        finally:
            await asyncio.to_thread(prosody.stop)


def _prosody_client(prosody: ProsodyServer, jid: str, password: str) -> Client:
    return Client(
        jid, password, host=prosody.host, port=prosody.c2s_port, ca_file=str(prosody.ca_file), reconnect=False
    )


async def _next(stream: AsyncIterator[object], timeout: float) -> object:
    async with asyncio.timeout(timeout):
        return await anext(stream)


async def test_dialback_messages_both_ways(federation: Federation) -> None:
    juliet = await federation.jaybird.add_user("juliet", "secret")
    await asyncio.to_thread(federation.prosody.add_user, "romeo", "secret")
    async with (
        federation.jaybird.client(juliet, "secret") as cj,
        _prosody_client(federation.prosody, f"romeo@{PROSODY}", "secret") as cr,
    ):
        to_romeo = asyncio.ensure_future(_next(cr.stanzas(), 30.0))
        to_juliet = asyncio.ensure_future(_next(cj.stanzas(), 30.0))
        await asyncio.sleep(0.1)
        await cj.send(Message.build(cr.jid, "hello prosody", type=MessageType.CHAT))
        got = await to_romeo
        assert isinstance(got, Message) and got.body == "hello prosody"
        assert got.from_ is not None and got.from_.bare == juliet
        await cr.send(Message.build(cj.jid, "hello jaybird", type=MessageType.CHAT))
        back = await to_juliet
        assert isinstance(back, Message) and back.body == "hello jaybird"
    log = federation.prosody.log_text()
    assert "dialback" in log.lower()
