"""Creating an account before logging in (XEP-0077 §3.1), with the jaybird transport and stream machine.

::

    account = await register("example.com", "juliet", "a-long-secret")
    async with Client(account, "a-long-secret") as client:
        ...

The machine is given STARTTLS as its only feature: negotiation then ends, with the stream secured but not
authenticated, exactly where XEP-0077 §3.1 puts registration. The form is fetched (a get), the username and
password are sent (a set), and the stream is closed; logging in is a new connection, as with any client.
"""

from __future__ import annotations

import asyncio
import ssl

from jaybird.ext.register.wire import NAME, RegisterQuery
from jaybird.jid import JID, JIDError
from jaybird.session import ConnectionLost, NegotiationError
from jaybird.stanza import Iq, IqType
from jaybird.stream import events as ev
from jaybird.stream.config import InitiatingConfig
from jaybird.stream.features.starttls import STARTTLS
from jaybird.stream.machine import XMPPStream
from jaybird.transport.tcp import Connection, open_connection
from jaybird.transport.tls import ALPN_CLIENT, client_context
from jaybird.xml.element import Element

__all__ = ["register"]


async def register(
    domain: str,
    username: str,
    password: str,
    *,
    host: str | None = None,
    port: int | None = None,
    direct_tls: bool | None = None,
    ca_file: str | None = None,
    verify: bool = True,
    ssl_context: ssl.SSLContext | None = None,
    require_tls: bool = True,
    connect_timeout: float = 10.0,
    timeout: float = 30.0,
) -> JID:
    """Register ``username`` on ``domain`` with ``password``; returns the new account's bare JID.

    ``host``/``port`` skip DNS; ``direct_tls`` picks XEP-0368 (None: as DNS says). The whole exchange is
    bounded by ``timeout`` seconds. Raises :class:`StanzaError` when the server refuses (``conflict``: taken;
    ``not-acceptable``: a field it refuses or needs, or with type ``wait`` too many registrations;
    ``not-allowed``), :class:`StreamError` when it closes the stream instead (``not-authorized``: a server
    without registration before login), :class:`NegotiationError` when TLS is required but not offered, and
    the transport's connection errors.
    """
    context = ssl_context or client_context(verify=verify, ca_file=ca_file)
    direct_context = ssl_context or client_context(verify=verify, ca_file=ca_file, alpn=[ALPN_CLIENT])
    conn = await open_connection(
        domain,
        host=host,
        port=port,
        direct_tls=direct_tls,
        ssl_context=direct_context,
        connect_timeout=connect_timeout,
    )
    try:
        async with asyncio.timeout(timeout):
            stream = await _negotiate(conn, domain, username, context, require_tls)
            # §3.1: the form first. Only a username and a password are filled in; a server that asks for more
            # says so in its answer to the set (not-acceptable).
            await _exchange(conn, stream, Iq.build(IqType.GET, Element(NAME)))
            submitted = RegisterQuery(username=username, password=password)
            await _exchange(conn, stream, Iq.build(IqType.SET, submitted))
            stream.close()
            await _flush(conn, stream)
    finally:
        await conn.aclose()
    return JID.from_parts(username, domain)


async def _negotiate(
    conn: Connection, domain: str, username: str, context: ssl.SSLContext, require_tls: bool
) -> XMPPStream:
    try:
        us = JID.from_parts(username, domain)  # named in the header once secure (RFC 6120 §4.7.1)
    except JIDError:
        us = JID(domain)  # the server judges the username; its refusal is the error to report
    config = InitiatingConfig(jid=us, require_tls=require_tls, already_secure=conn.is_secure)
    stream = XMPPStream(config, (STARTTLS,))
    await _flush(conn, stream)
    while True:
        for event in await _read(conn, stream):
            if isinstance(event, ev.TLSRequested):
                await conn.start_tls(context, domain)
                for follow in stream.tls_established(None):
                    if isinstance(follow, ev.Ready):
                        return stream
                    _check(follow)
                await _flush(conn, stream)
            elif isinstance(event, ev.Ready):
                return stream
            else:
                _check(event)


async def _exchange(conn: Connection, stream: XMPPStream, request: Iq) -> Element:
    """Send ``request``; return the payload of its result (raising its error)."""
    stream.send(request.element)
    await _flush(conn, stream)
    while True:
        for event in await _read(conn, stream):
            if not isinstance(event, ev.StanzaReceived):
                _check(event)
                continue
            reply = Iq(event.element) if event.element.name == request.element.name else None
            if reply is None or reply.id != request.id:
                continue  # nothing else is expected before authentication; not ours to answer
            error = reply.error
            if error is not None:
                raise error
            payload = reply.payload
            return payload if payload is not None else Element(NAME)


async def _read(conn: Connection, stream: XMPPStream) -> list[ev.Event]:
    data = await conn.read()
    if not data:
        raise ConnectionLost("the server closed the connection during registration")
    try:
        events = stream.receive_data(data)
    finally:
        await _flush(conn, stream)
    return events


async def _flush(conn: Connection, stream: XMPPStream) -> None:
    data = stream.data_to_send()
    if data:
        conn.write(data)
        await conn.drain()


def _check(event: ev.Event) -> None:
    if isinstance(event, ev.NegotiationFailed):
        raise NegotiationError(event.reason)
    if isinstance(event, ev.StreamErrorReceived):
        raise event.error
    if isinstance(event, ev.StreamClosed):
        raise ConnectionLost("the server closed the stream during registration")
