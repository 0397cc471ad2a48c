"""The ejabberd fixture works with a third-party client (slixmpp) and with jaybird's own client, so that later
interop and benchmark code can trust it as a second reference server."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import slixmpp

from jaybird.client import Client
from jaybird.jid import JID
from jaybird.stanza import Message, MessageType
from jaybird.xml.element import Element
from tests.peers import Account, require_binary, running_in_ci
from tests.peers.ejabberd import EjabberdError, EjabberdServer, installed
from tests.peers.ports import port_accepts

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

WAIT = 10.0
BODY = "{jabber:client}body"


def require_ejabberd() -> None:
    require_binary("erl")
    if not installed():
        reason = "ejabberd is not installed (scripts/install-peers.sh installs it, as root)"
        if running_in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def ejabberd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EjabberdServer]:
    require_ejabberd()
    with EjabberdServer(tmp_path_factory.mktemp("ejabberd")) as server:
        yield server


@asynccontextmanager
async def slixmpp_session(
    server: EjabberdServer, account: Account, *, direct_tls: bool = False
) -> AsyncIterator[slixmpp.ClientXMPP]:
    """A slixmpp client logged in as `account` with initial presence sent, verifying the certificate against
    the fixture's CA; disconnected on exit."""
    client = slixmpp.ClientXMPP(account.jid, account.password)
    client.ca_certs = server.ca_file
    client.enable_plaintext = False
    client.enable_direct_tls = direct_tls
    client.enable_starttls = not direct_tls
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def fail(reason: str) -> None:
        if not ready.done():
            ready.set_exception(AssertionError(f"{account.jid}: {reason}"))

    def on_presence(presence: Any) -> None:
        # RFC 6121 §4.2.2: initial presence comes back to the sending resource once it is available.
        if presence["from"] == client.boundjid and not ready.done():
            ready.set_result(None)

    client.add_event_handler("session_start", lambda _: client.send_presence())
    client.add_event_handler("presence_available", on_presence)
    client.add_event_handler("failed_all_auth", lambda _: fail("authentication failed"))
    client.add_event_handler("connection_failed", lambda err: fail(f"connection failed: {err}"))
    try:
        client.connect(host=server.host, port=server.c2s_tls_port if direct_tls else server.c2s_port)
        await asyncio.wait_for(ready, WAIT)
        yield client
    finally:
        client.cancel_connection_attempt()
        with suppress(TimeoutError):
            await asyncio.wait_for(client.disconnect(wait=1.0), WAIT)
        client.abort()


def jaybird_client(server: EjabberdServer, account: Account, **options: object) -> Client:
    return Client(
        account.jid,
        account.password,
        host=server.host,
        port=server.c2s_port,
        ca_file=str(server.ca_file),
        reconnect=False,
        **options,  # type: ignore[arg-type]
    )


async def test_message_between_two_slixmpp_clients(ejabberd: EjabberdServer) -> None:
    juliet = ejabberd.add_user("juliet", "balcony")
    romeo = ejabberd.add_user("romeo", "wherefore")
    body = f"hello over STARTTLS {uuid.uuid4()}"
    async with slixmpp_session(ejabberd, romeo) as receiver:
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        receiver.add_event_handler("message", inbox.put_nowait)
        async with slixmpp_session(ejabberd, juliet, direct_tls=True) as sender:
            sender.send_message(mto=slixmpp.JID(romeo.jid), mbody=body, mtype="chat")
            async with asyncio.timeout(WAIT):
                while (received := await inbox.get())["body"] != body:
                    pass
    assert received["from"].bare == juliet.jid
    assert received["type"] == "chat"


async def test_wrong_password_is_rejected(ejabberd: EjabberdServer) -> None:
    ejabberd.add_user("nurse", "right")
    with pytest.raises(AssertionError, match="authentication failed"):
        async with slixmpp_session(ejabberd, Account("nurse", ejabberd.domain, "wrong")):
            pass


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "PLAIN"])
async def test_jaybird_client_logs_in_and_exchanges_a_message(ejabberd: EjabberdServer, mechanism: str) -> None:
    tybalt = ejabberd.add_user("tybalt", "prince-of-cats")
    mercutio = ejabberd.add_user("mercutio", "queen-mab")
    body = f"a plague o' both your houses {uuid.uuid4()}"
    async with (
        jaybird_client(ejabberd, mercutio, mechanisms=["SCRAM-SHA-1"]) as receiver,
        jaybird_client(ejabberd, tybalt, mechanisms=[mechanism]) as sender,
    ):
        assert sender.sasl_mechanism == mechanism
        assert sender.jid.bare == JID(tybalt.jid)
        assert sender.jid.resource  # RFC 6120 §7.6.2.1: the server generated one
        await sender.send(Message.build(to=receiver.jid, type=MessageType.CHAT, body=body))
        async with asyncio.timeout(WAIT):
            async for stanza in receiver.stanzas():
                if isinstance(stanza, Message) and _body(stanza.element) == body:
                    break
    assert JID(stanza.element.attrs["from"]).bare == JID(tybalt.jid)


async def test_jaybird_client_default_mechanism_over_tls13(ejabberd: EjabberdServer) -> None:
    # ejabberd 23.01 offers SCRAM-SHA-1-PLUS over TLS 1.3 without advertising binding types (XEP-0440) and checks
    # only tls-unique: without the advertisement the client binds to its default, tls-unique (RFC 5802 §6).
    benvolio = ejabberd.add_user("benvolio", "peace")
    async with jaybird_client(ejabberd, benvolio) as client:
        assert client.sasl_mechanism == "SCRAM-SHA-1-PLUS"


def _body(element: Element) -> str | None:
    for child in element.children:
        if isinstance(child, Element) and child.name == BODY:
            return "".join(text for text in child.children if isinstance(text, str))
    return None


def test_roster_items_are_added_through_the_http_api(ejabberd: EjabberdServer) -> None:
    ejabberd.add_user("capulet", "x")
    ejabberd.add_user("montague", "y")
    ejabberd.add_roster_item("capulet", "montague", subscription="both", group="feud")
    roster = ejabberd.api("get_roster", {"user": "capulet", "host": ejabberd.domain})
    assert [(item["jid"], item["subscription"], item["group"]) for item in roster] == [
        (f"montague@{ejabberd.domain}", "both", "feud")
    ]


def test_instance_is_stopped_with_all_its_processes(tmp_path: Path) -> None:
    require_ejabberd()
    with EjabberdServer(tmp_path, domain="verona.example", direct_tls=False) as server:
        assert server.add_user("friar", "laurence").jid == "friar@verona.example"
        pid = server.pid
        assert pid is not None
        group = os.getpgid(pid)
    assert server.pid is None
    assert not port_accepts(server.host, server.c2s_port)
    assert not port_accepts(server.host, server.http_port)
    # No distribution: no epmd was started on the instance's private port.
    assert not port_accepts(server.host, server.epmd_port)
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)


def test_start_failure_raises_with_the_log_tail(tmp_path: Path) -> None:
    require_ejabberd()
    server = EjabberdServer(tmp_path, modules={"mod_does_not_exist": {}})
    with pytest.raises(EjabberdError, match="mod_does_not_exist"):
        server.start()
    assert server.pid is None
