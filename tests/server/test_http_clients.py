"""The jaybird client's own WebSocket (RFC 7395) and BOSH (XEP-0206) transports against the jaybird server:
the same login and routing as over TCP, since both feed the same c2s driver."""

from __future__ import annotations

import pytest

from jaybird.stanza import Message, MessageType
from tests.server.conftest import ServerFactory
from tests.server.helpers import watch
from tests.web.support import start_web_server


@pytest.mark.parametrize("transport", ["websocket", "bosh"])
async def test_login_and_message_round_trip(start_server: ServerFactory, transport: str) -> None:
    web = await start_web_server(start_server)
    juliet = await web.add_user("juliet", "secret")
    romeo = await web.add_user("romeo", "secret2")
    url = web.websocket_url if transport == "websocket" else web.bosh_url
    async with web.running.client(romeo, "secret2") as tcp, web.client(juliet, "secret", url) as http_client:
        assert http_client.jid.bare == juliet
        # loopback plain HTTP counts as secure (docs/web.md), so the strongest mechanism offered is used
        assert http_client.sasl_mechanism == "SCRAM-SHA-256"
        got = watch(tcp.stanzas())
        await http_client.send(Message.build(tcp.jid, f"hello over {transport}", type=MessageType.CHAT))
        message = await got
        assert isinstance(message, Message) and message.body == f"hello over {transport}"
        assert message.from_ == http_client.jid
        back = watch(http_client.stanzas())
        await tcp.send(Message.build(http_client.jid, "reply", type=MessageType.CHAT))
        answer = await back
        assert isinstance(answer, Message) and answer.body == "reply" and answer.from_ == tcp.jid
    # the HTTP session ended with the client (a <close/> or a BOSH terminate)
    assert not web.running.server.http.connections


@pytest.mark.parametrize("persistent", [True, False], ids=["keep-alive", "connection-per-request"])
async def test_bosh_key_sequencing_with_and_without_keep_alive(
    start_server: ServerFactory, monkeypatch: pytest.MonkeyPatch, persistent: bool
) -> None:
    """XEP-0124 §15 keys on every request (the manager checks each against the last), over pooled connections
    or a fresh HTTP connection per request."""
    import functools

    from jaybird.transport import bosh, discovery

    opened: list[bosh.BoshConnection] = []

    async def open_recorded(*args: object, **kwargs: object) -> bosh.BoshConnection:
        conn = await bosh.open_bosh(*args, keys=True, persistent=persistent, **kwargs)  # type: ignore[arg-type]
        opened.append(conn)
        return conn

    monkeypatch.setattr(discovery, "open_bosh", functools.partial(open_recorded))
    web = await start_web_server(start_server)
    juliet = await web.add_user("juliet", "secret")
    async with web.running.client(juliet, "secret") as tcp, web.client(juliet, "secret", web.bosh_url) as http_client:
        got = watch(tcp.stanzas())
        await http_client.send(Message.build(tcp.jid, "keyed", type=MessageType.CHAT))
        message = await got
        assert isinstance(message, Message) and message.body == "keyed"
    assert len(opened) == 1 and opened[0].sid is not None
