"""Federation between jaybird and ejabberd 23.01 on loopback (RFC 6120 s2s, XEP-0220 dialback).

Neither domain exists in DNS. jaybird reaches ejabberd through a ``[[s2s.peers]]`` route. ejabberd resolves
with Erlang's own resolver (``inet_res``), which reads an inet configuration file named by ``ERL_INETRC``: it
is pointed at the test DNS server (:mod:`tests.interop.s2s_dns`), which answers the SRV record of jaybird's
domain with jaybird's s2s port. Nothing system-wide is touched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.rdatatype
import dns.rrset
import pytest

from jaybird.client import Client
from jaybird.server.app import Server
from jaybird.stanza import Message, MessageType
from tests.interop.s2s_dns import TestDNS
from tests.peers import require_binary, running_in_ci
from tests.peers.ejabberd import DEFAULT_MODULES, EjabberdServer, installed
from tests.peers.ports import free_port
from tests.server.conftest import RunningServer, server_config
from tests.server.helpers import watch

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

JAYBIRD = "jaybird.example"
EJABBERD = "ejabberd.example"


def _require_ejabberd() -> None:
    require_binary("erl")
    if not installed():
        reason = "ejabberd is not installed (scripts/install-peers.sh installs it, as root)"
        if running_in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def _inetrc(path: Path, dns_port: int) -> Path:
    # Erlang terms (erts "inet configuration"): no system resolv.conf nor hosts file, only our DNS server.
    # Order matters: setting resolv_conf clears the name servers set before it.
    path.write_text(
        '{resolv_conf, ""}.\n'
        '{hosts_file, ""}.\n'
        f"{{nameserver, {{127,0,0,1}}, {dns_port}}}.\n"
        "{lookup, [dns]}.\n"
        "{timeout, 1000}.\n"
        "{retry, 2}.\n"
    )
    return path


class _LiteralTargetDNS(TestDNS):
    """SRV records whose target is the address itself: ejabberd then connects without an A lookup (its
    address lookup goes through ``inet:gethostbyname``, which ejabberd's own resolver setup bypasses)."""

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = super()._answer(query)
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.SRV:
                port = next(iter(rrset)).port
                response.answer = [dns.rrset.from_text(rrset.name, 60, "IN", "SRV", f"0 0 {port} 127.0.0.1.")]
        return response


@dataclass
class Federation:
    jaybird: RunningServer
    ejabberd: EjabberdServer


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[Federation]:
    _require_ejabberd()
    s2s_port = free_port()
    with _LiteralTargetDNS({JAYBIRD: s2s_port}) as resolver:
        workdir = tmp_path / "ejabberd"
        workdir.mkdir()
        ejabberd = EjabberdServer(
            workdir,
            domain=EJABBERD,
            s2s=True,
            direct_tls=False,
            modules={**DEFAULT_MODULES, "mod_s2s_dialback": {}},
            extra_options={"s2s_dns_timeout": 3, "s2s_dns_retries": 1},
            env={"ERL_INETRC": str(_inetrc(tmp_path / "inetrc", resolver.port))},
        )
        await asyncio.to_thread(ejabberd.start)
        try:
            toml = (
                f'[listeners.s2s]\nenabled = true\nport = {s2s_port}\ninterfaces = ["127.0.0.1"]\n'
                "[s2s]\nnegotiation_timeout_s = 15.0\nrequest_client_certificates = false\n"
                f'[[s2s.peers]]\ndomain = "{EJABBERD}"\nhost = "127.0.0.1"\nport = {ejabberd.s2s_port}\n'
            )
            config, port, tls_port = server_config(tmp_path / "jaybird", domains=[JAYBIRD], toml=toml)
            server = Server(config)
            await server.start()
            try:
                yield Federation(RunningServer(server, config, port, tls_port, JAYBIRD), ejabberd)
            finally:
                await server.stop()
        finally:
            await asyncio.to_thread(ejabberd.stop)


def _ejabberd_client(ejabberd: EjabberdServer, jid: str, password: str) -> Client:
    return Client(
        jid, password, host=ejabberd.host, port=ejabberd.c2s_port, ca_file=str(ejabberd.ca_file), reconnect=False
    )


async def test_dialback_messages_both_ways(federation: Federation, caplog: pytest.LogCaptureFixture) -> None:
    """jaybird -> ejabberd over jaybird's route, ejabberd -> jaybird found by SRV; both streams by dialback
    (neither trusts the other's certificate)."""
    caplog.set_level(logging.INFO, logger="jaybird.server.s2s")
    juliet = await federation.jaybird.add_user("juliet", "secret")
    romeo = await asyncio.to_thread(federation.ejabberd.add_user, "romeo", "secret")
    async with (
        federation.jaybird.client(juliet, "secret") as cj,
        _ejabberd_client(federation.ejabberd, romeo.jid, "secret") as cr,
    ):
        to_romeo = watch(cr.stanzas(), 30.0)
        await cj.send(Message.build(cr.jid, "hello ejabberd", type=MessageType.CHAT))
        got = await to_romeo
        assert isinstance(got, Message) and got.body == "hello ejabberd"
        assert got.from_ is not None and got.from_.bare == juliet
        to_juliet = watch(cj.stanzas(), 30.0)
        await cr.send(Message.build(cj.jid, "hello jaybird", type=MessageType.CHAT))
        back = await to_juliet
        assert isinstance(back, Message) and back.body == "hello jaybird"
        assert back.from_ is not None and str(back.from_.bare) == romeo.jid
    # Our stream to ejabberd and ejabberd's to us were both accepted by dialback (XEP-0220): ejabberd asked us
    # over a connection of its own (db:verify), we asked it.
    assert f"dialback for {JAYBIRD} -> {EJABBERD} accepted" in caplog.text
    assert f"dialback for {EJABBERD} -> {JAYBIRD} valid" in caplog.text
