"""The Prosody fixture works with third-party clients (slixmpp, go-sendxmpp), so that later interop tests can
trust it as the reference peer."""

import asyncio
import os
import re
import socket
import ssl
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import slixmpp

from tests.peers import Account, require_binary
from tests.peers.ports import port_accepts
from tests.peers.prosody import ProsodyError, ProsodyServer, ProsodyWithAccounts

pytestmark = pytest.mark.interop

WAIT = 10.0


@asynccontextmanager
async def slixmpp_session(
    server: ProsodyServer, account: Account, *, direct_tls: bool = False
) -> AsyncIterator[slixmpp.ClientXMPP]:
    """A slixmpp client logged in as `account` that has sent initial presence, verifying the server's
    certificate against the fixture's CA; disconnected on exit, whatever happened."""
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
        # RFC 6121 §4.2.2: the server sends initial presence back to the resource that sent it, so once it
        # comes back, messages to the bare JID are routed to this resource.
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


def collect_messages(client: slixmpp.ClientXMPP) -> asyncio.Queue[Any]:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    client.add_event_handler("message", queue.put_nowait)
    return queue


async def next_message_with_body(queue: asyncio.Queue[Any], body: str) -> Any:
    async with asyncio.timeout(WAIT):
        while True:
            message = await queue.get()
            if message["body"] == body:
                return message


async def test_message_between_two_slixmpp_clients_over_starttls(prosody: ProsodyWithAccounts) -> None:
    body = f"hello over STARTTLS {uuid.uuid4()}"
    async with slixmpp_session(prosody.server, prosody.romeo) as romeo:
        inbox = collect_messages(romeo)
        async with slixmpp_session(prosody.server, prosody.juliet) as juliet:
            assert juliet.is_connected()
            juliet.send_message(mto=slixmpp.JID(prosody.romeo.jid), mbody=body, mtype="chat")
            received = await next_message_with_body(inbox, body)
    assert received["from"].bare == prosody.juliet.jid
    assert received["to"].bare == prosody.romeo.jid
    assert received["type"] == "chat"


async def test_login_over_direct_tls(prosody: ProsodyWithAccounts) -> None:
    # XEP-0368: TLS from the first byte on a port of its own.
    async with slixmpp_session(prosody.server, prosody.juliet, direct_tls=True) as juliet:
        assert juliet.boundjid.bare == prosody.juliet.jid
        assert juliet.boundjid.resource


async def test_wrong_password_is_rejected(prosody: ProsodyWithAccounts) -> None:
    impostor = Account(local=prosody.juliet.local, domain=prosody.juliet.domain, password="not-her-password")
    with pytest.raises(AssertionError, match="authentication failed"):
        async with slixmpp_session(prosody.server, impostor):
            pass


async def test_go_sendxmpp_delivers_to_slixmpp(prosody: ProsodyWithAccounts, tmp_path: Path) -> None:
    binary = require_binary("go-sendxmpp")
    body = f"hello from go-sendxmpp {uuid.uuid4()}"
    # Go reads extra trust anchors from SSL_CERT_FILE, so the certificate is verified (no -n); HOME points
    # at an empty directory so that no user configuration file is picked up.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "SSL_CERT_FILE": str(prosody.server.ca_file),
    }
    async with slixmpp_session(prosody.server, prosody.romeo) as romeo:
        inbox = collect_messages(romeo)
        process = await asyncio.create_subprocess_exec(
            binary,
            "--jserver", f"{prosody.server.host}:{prosody.server.c2s_port}",
            "--username", prosody.juliet.jid,
            "--password", prosody.juliet.password,
            "--timeout", "10",
            prosody.romeo.jid,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )  # fmt: skip
        try:
            output, _ = await asyncio.wait_for(process.communicate(body.encode()), WAIT)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, output.decode(errors="replace")
        received = await next_message_with_body(inbox, body)
    assert received["from"].bare == prosody.juliet.jid


def offered_mechanisms(server: ProsodyServer) -> tuple[str, list[str]]:
    """The TLS version and the SASL mechanisms Prosody offers on its direct-TLS port."""
    context = ssl.create_default_context(cafile=server.ca_file)
    header = (
        f"<?xml version='1.0'?><stream:stream to='{server.domain}' version='1.0' xmlns='jabber:client'"
        " xmlns:stream='http://etherx.jabber.org/streams'>"
    )
    with (
        socket.create_connection((server.host, server.c2s_tls_port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname=server.domain) as tls,
    ):
        tls.sendall(header.encode())
        received = b""
        while b"</stream:features>" not in received:
            chunk = tls.recv(4096)
            assert chunk, f"stream closed before features: {received!r}"
            assert len(received) < 65536
            received += chunk
        version = tls.version()
        # Close the stream before the socket (RFC 6120 §4.4) so that Prosody need not wait for it at stop.
        tls.sendall(b"</stream:stream>")
        with suppress(OSError):
            while tls.recv(4096):
                pass
    assert version is not None
    return version, re.findall(r"<mechanism>([^<]+)</mechanism>", received.decode())


@pytest.mark.parametrize(
    ("ssl_protocol", "password_hash", "expected"),
    [
        # Prosody 0.12 only knows tls-unique (RFC 5929), undefined for TLS 1.3 (RFC 8446 §C.5): no -PLUS.
        (None, "SHA-1", {"PLAIN", "SCRAM-SHA-1"}),
        ("tlsv1_2", "SHA-1", {"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"}),
        ("tlsv1_2", "SHA-256", {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"}),
    ],
)
def test_sasl_mechanisms_follow_tls_version_and_password_hash(
    tmp_path: Path, ssl_protocol: str | None, password_hash: str, expected: set[str]
) -> None:
    require_binary("prosody")
    with ProsodyServer(tmp_path, ssl_protocol=ssl_protocol, password_hash=password_hash) as server:
        version, mechanisms = offered_mechanisms(server)
    assert version == ("TLSv1.2" if ssl_protocol == "tlsv1_2" else "TLSv1.3")
    assert set(mechanisms) == expected


async def test_private_instance_on_another_domain_is_stopped_on_exit(tmp_path: Path) -> None:
    require_binary("prosody")
    with ProsodyServer(tmp_path, domain="capulet.example") as server:
        nurse = server.add_user("nurse", "secret")
        async with slixmpp_session(server, nurse, direct_tls=True) as client:
            assert client.boundjid.bare == "nurse@capulet.example"
        pid = server.pid
        assert pid is not None
    assert server.pid is None
    assert not port_accepts(server.host, server.c2s_port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_start_moves_to_fresh_ports_when_one_is_taken(tmp_path: Path) -> None:
    require_binary("prosody")
    server = ProsodyServer(tmp_path)
    taken = server.c2s_tls_port
    with socket.create_server((server.host, taken)), server:
        assert server.c2s_tls_port != taken
        _, mechanisms = offered_mechanisms(server)
    assert "SCRAM-SHA-1" in mechanisms


def test_start_failure_raises_prosody_error(tmp_path: Path) -> None:
    # `false` stands in for a prosody binary that exits at once (a broken config does the same).
    with pytest.raises(ProsodyError, match="exited with status 1"):
        ProsodyServer(tmp_path, prosody_binary="false").start()
