"""The jaybird client against a real Prosody: every SASL mechanism it offers, STARTTLS and direct TLS, bind,
roster, messages, pings, and clear errors for a wrong password and a certificate for another name."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from jaybird import ns
from jaybird.client import Client
from jaybird.errors import AuthenticationError, SASLCondition, StanzaError, StanzaErrorCondition
from jaybird.ext.ping.client import answer_pings, ping
from jaybird.jid import JID
from jaybird.stanza import Iq, IqType, Message, MessageType
from jaybird.transport.errors import CertificateError, ConnectError
from jaybird.xml.element import Element
from tests.conftest import JULIET_PASSWORD
from tests.peers import require_binary
from tests.peers.prosody import ProsodyServer, ProsodyWithAccounts

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


def client_for(server: ProsodyServer, jid: JID | str, password: str, **options: object) -> Client:
    options.setdefault("port", server.c2s_port)
    return Client(
        jid,
        password,
        host=server.host,
        ca_file=str(server.ca_file),
        reconnect=False,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "PLAIN"])
async def test_login_starttls_with_each_offered_mechanism(prosody: ProsodyWithAccounts, mechanism: str) -> None:
    server, juliet = prosody.server, prosody.juliet
    async with client_for(server, juliet.jid, juliet.password, mechanisms=[mechanism]) as client:
        assert client.sasl_mechanism == mechanism
        assert client.jid.bare == JID(juliet.jid)
        assert client.jid.resource  # RFC 6120 §7.6: the server generated one


async def test_login_direct_tls_with_requested_resource(prosody: ProsodyWithAccounts) -> None:
    server, juliet = prosody.server, prosody.juliet
    client = client_for(
        server, juliet.jid, juliet.password, port=server.c2s_tls_port, direct_tls=True, resource="balcony"
    )
    async with client:
        assert str(client.jid) == f"{juliet.jid}/balcony"
        assert client.sasl_mechanism == "SCRAM-SHA-1"


@pytest.fixture(scope="module")
def prosody_tls12(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProsodyWithAccounts]:
    """Prosody 0.12 binds SCRAM only to tls-unique, which exists up to TLS 1.2 (RFC 9266 §1)."""
    require_binary("prosody")
    with ProsodyServer(tmp_path_factory.mktemp("prosody12"), ssl_protocol="tlsv1_2", password_hash="SHA-256") as s:
        yield ProsodyWithAccounts(s, s.add_user("juliet", JULIET_PASSWORD), s.add_user("romeo", "r"))


@pytest.fixture(scope="module")
def prosody_tls12_sha1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProsodyWithAccounts]:
    require_binary("prosody")
    with ProsodyServer(tmp_path_factory.mktemp("prosody12sha1"), ssl_protocol="tlsv1_2", password_hash="SHA-1") as s:
        yield ProsodyWithAccounts(s, s.add_user("juliet", JULIET_PASSWORD), s.add_user("romeo", "r"))


async def test_login_sha1_plus_over_tls12(prosody_tls12_sha1: ProsodyWithAccounts) -> None:
    # RFC 5802 §6: tls-unique is the default binding; with TLS 1.2 the client offers and uses it.
    server, juliet = prosody_tls12_sha1.server, prosody_tls12_sha1.juliet
    async with client_for(server, juliet.jid, juliet.password) as client:
        assert client.sasl_mechanism == "SCRAM-SHA-1-PLUS"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
async def test_login_sha256_and_plus_over_tls12(prosody_tls12: ProsodyWithAccounts, mechanism: str) -> None:
    server, juliet = prosody_tls12.server, prosody_tls12.juliet
    async with client_for(server, juliet.jid, juliet.password, mechanisms=[mechanism]) as client:
        assert client.sasl_mechanism == mechanism


async def test_default_choice_is_the_strongest_offered(prosody_tls12: ProsodyWithAccounts) -> None:
    server, juliet = prosody_tls12.server, prosody_tls12.juliet
    async with client_for(server, juliet.jid, juliet.password) as client:
        assert client.sasl_mechanism == "SCRAM-SHA-256-PLUS"


async def test_roster_messages_and_pings(prosody: ProsodyWithAccounts) -> None:
    server, juliet, romeo = prosody.server, prosody.juliet, prosody.romeo
    async with (
        client_for(server, juliet.jid, juliet.password) as jc,
        client_for(server, romeo.jid, romeo.password) as rc,
    ):
        # RFC 6121 §2.1.3: roster get
        roster = await jc.iq(Iq.build(IqType.GET, Element(ns.clark(ns.ROSTER, "query"))))
        assert roster.type is IqType.RESULT
        assert roster.find(ns.clark(ns.ROSTER, "query")) is not None

        # XEP-0199 client-to-server ping
        assert await ping(jc) >= 0

        # A message to romeo's full JID arrives with juliet's full JID stamped as 'from' (RFC 6120 §8.1.2.1).
        received = asyncio.get_running_loop().create_future()

        async def collect() -> None:
            async for stanza in rc.stanzas():
                if isinstance(stanza, Message) and stanza.body:
                    received.set_result(stanza)
                    return

        reader = asyncio.create_task(collect())
        await asyncio.sleep(0)
        await jc.send(Message.build(rc.jid, "Wherefore art thou?", type=MessageType.CHAT))
        message = await asyncio.wait_for(received, 10)
        await reader
        assert message.body == "Wherefore art thou?"
        assert message.from_ == jc.jid
        assert message.type is MessageType.CHAT

        # An IQ nobody handles is answered service-unavailable by the receiving client (RFC 6120 §8.4) ...
        with pytest.raises(StanzaError) as raised:
            await jc.iq(Iq.build(IqType.GET, Element("{urn:example:unknown}q"), to=rc.jid), timeout=10)
        assert raised.value.condition is StanzaErrorCondition.SERVICE_UNAVAILABLE

        # ... and a client-to-client ping is answered once the handler is registered (XEP-0199 §4.2).
        answer_pings(rc)
        assert await ping(jc, rc.jid, timeout=10) >= 0


async def test_wrong_password_is_a_clear_authentication_error(prosody: ProsodyWithAccounts) -> None:
    server, juliet = prosody.server, prosody.juliet
    with pytest.raises(AuthenticationError) as raised:
        async with client_for(server, juliet.jid, "not-the-password"):
            pass
    assert raised.value.condition is SASLCondition.NOT_AUTHORIZED


async def test_certificate_for_another_name_is_refused(prosody: ProsodyWithAccounts) -> None:
    # capulet.example is served by the same Prosody, which presents the certificate of 'localhost'.
    server = prosody.server
    with pytest.raises((CertificateError, ConnectError)) as raised:
        async with client_for(server, "juliet@capulet.example", "x"):
            pass
    text = str(raised.value)
    assert "capulet.example" in text
    assert "mismatch" in text or "match" in text


async def test_unverified_connection_needs_opt_out(prosody: ProsodyWithAccounts, tmp_path: Path) -> None:
    # Without the CA the self-signed chain is refused; verify=False is the explicit opt-out.
    server, juliet = prosody.server, prosody.juliet
    with pytest.raises((CertificateError, ConnectError)):
        async with Client(juliet.jid, juliet.password, host=server.host, port=server.c2s_port, reconnect=False):
            pass
    async with Client(
        juliet.jid, juliet.password, host=server.host, port=server.c2s_port, verify=False, reconnect=False
    ) as client:
        assert client.jid.bare == JID(juliet.jid)
