"""Registration before authentication (XEP-0077 §3.1, §4) on a running server, over TCP with STARTTLS: the
library helper creates the account, then the jaybird Client logs in with it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jaybird.errors import StanzaError, StanzaErrorCondition, StanzaErrorType, StreamError, StreamErrorCondition
from jaybird.ext.register.client import register
from jaybird.ext.register.server import RegisterModule
from jaybird.ext.register.wire import FEATURE
from jaybird.jid import JID
from jaybird.stream import events as ev
from jaybird.stream.config import InitiatingConfig
from jaybird.stream.features.starttls import STARTTLS
from jaybird.stream.machine import XMPPStream
from jaybird.transport.tcp import open_connection
from jaybird.transport.tls import client_context
from tests.server.conftest import RunningServer, ServerFactory

ENABLED = '[[hosts]]\ndomain = "localhost"\n[hosts.registration]\nenabled = true\n'
C = StanzaErrorCondition


async def open_server(start_server: ServerFactory, toml: str = ENABLED) -> RunningServer:
    return await start_server(modules=["register"], domains=(), toml=toml)


async def enroll(running: RunningServer, username: str, password: str, **kwargs: Any) -> JID:
    return await register(
        running.domain,
        username,
        password,
        host="127.0.0.1",
        port=running.port,
        ca_file=str(running.cert_file),
        timeout=10.0,
        **kwargs,
    )


async def features_after_tls(running: RunningServer) -> tuple[str, ...]:
    """What the server offers a client once STARTTLS is done, before authentication."""
    conn = await open_connection(running.domain, host="127.0.0.1", port=running.port, connect_timeout=5.0)
    stream = XMPPStream(InitiatingConfig(jid=JID(running.domain)), (STARTTLS,))
    offered: list[tuple[str, ...]] = []
    try:
        async with asyncio.timeout(10.0):
            conn.write(stream.data_to_send())
            while not stream.state & stream.state.READY:
                data = await conn.read()
                assert data, "the server closed the connection"
                for event in stream.receive_data(data):
                    if isinstance(event, ev.FeaturesReceived):
                        offered.append(event.names)
                    elif isinstance(event, ev.TLSRequested):
                        conn.write(stream.data_to_send())
                        await conn.start_tls(client_context(ca_file=str(running.cert_file)), running.domain)
                        stream.tls_established(None)
                conn.write(stream.data_to_send())
    finally:
        await conn.aclose()
    assert len(offered) == 2, offered
    assert FEATURE not in offered[0]  # RFC 6120 §5.3.1: TLS is required, so STARTTLS comes alone
    return offered[1]


async def test_register_then_log_in(start_server: ServerFactory) -> None:
    running = await open_server(start_server)
    assert FEATURE in await features_after_tls(running)
    account = await enroll(running, "Bill", "a-fresh-password")
    assert account == JID("bill@localhost")  # the username is prepared (RFC 7622 §3.3: case folded)
    async with running.client(account, "a-fresh-password") as client:
        assert client.jid.bare == account


async def test_username_taken_is_a_conflict(start_server: ServerFactory) -> None:
    running = await open_server(start_server)
    await running.add_user("juliet", "balcony")
    with pytest.raises(StanzaError) as caught:
        await enroll(running, "juliet", "another-password")
    assert caught.value.condition is C.CONFLICT
    async with running.client("juliet@localhost", "balcony"):  # the account is untouched
        pass


async def test_invalid_username_and_empty_password_are_not_acceptable(start_server: ServerFactory) -> None:
    running = await open_server(start_server)
    for username, password in (("bad@name", "a-password"), ("goodname", "")):
        with pytest.raises(StanzaError) as caught:
            await enroll(running, username, password)
        assert caught.value.condition is C.NOT_ACCEPTABLE


async def test_throttled_address_gets_the_wait_error(start_server: ServerFactory) -> None:
    throttled = ENABLED + "[hosts.registration.throttle]\nlimit = 1\nperiod_s = 3600.0\n"
    running = await open_server(start_server, throttled)
    await enroll(running, "first", "a-fresh-password")
    with pytest.raises(StanzaError) as caught:
        await enroll(running, "second", "a-fresh-password")
    assert (caught.value.condition, caught.value.error_type) == (C.NOT_ACCEPTABLE, StanzaErrorType.WAIT)
    assert not await running.server.hosts[running.domain].account_exists(JID("second@localhost"))


async def test_registration_off_is_not_offered_and_not_authorized(start_server: ServerFactory) -> None:
    """Off (the default): no feature, and the IQ before authentication is refused like any other stanza
    (RFC 6120 §4.9.3.12): the stream ends with not-authorized."""
    running = await open_server(start_server, '[[hosts]]\ndomain = "localhost"\n')
    host = running.server.hosts[running.domain]
    assert host.module(RegisterModule) is not None  # loaded, for password change and removal
    assert FEATURE not in await features_after_tls(running)
    with pytest.raises(StreamError) as caught:
        await enroll(running, "bill", "a-fresh-password")
    assert caught.value.condition is StreamErrorCondition.NOT_AUTHORIZED
    assert not await host.account_exists(JID("bill@localhost"))


async def test_only_on_the_host_that_enables_it(start_server: ServerFactory) -> None:
    """Module features are advertised only on streams to their host (two hosts, one open)."""
    toml = ENABLED + '[[hosts]]\ndomain = "closed.localhost"\n'
    running = await open_server(start_server, toml)
    assert [f.name for f in running.server.hosts["localhost"].stream_features()] == [FEATURE]
    assert running.server.hosts["closed.localhost"].stream_features() == ()


async def test_a_failing_registrar_ends_the_stream_with_internal_server_error(
    start_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver reports a feature's crash as a stream error, and the server keeps serving."""

    async def broken(self: RegisterModule, username: str | None, password: str | None, ip: str) -> JID:
        raise RuntimeError("storage is on fire")

    monkeypatch.setattr(RegisterModule, "register", broken)  # before loading: the feature holds the method
    running = await open_server(start_server)
    with pytest.raises(StreamError) as caught:
        await enroll(running, "bill", "a-fresh-password")
    assert caught.value.condition is StreamErrorCondition.INTERNAL_SERVER_ERROR
    await running.add_user("juliet", "balcony")
    async with running.client("juliet@localhost", "balcony"):
        pass
