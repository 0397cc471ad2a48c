"""The asyncio XMPP client: a thin driver around the sans-I/O stream machine.

::

    async with Client("juliet@example.com", "secret") as client:
        await client.send(Presence.build())
        pong = await client.iq(Iq.build(IqType.GET, Element(PING), to="example.com"))

The client never owns the event loop: it runs on whatever loop calls it, and every task it starts belongs to it
and ends with :meth:`Client.close`. Reading, dispatch to the handler mux (``client.mux``), IQ tracking and
reconnection are :class:`~jaybird.session.StreamSession`'s, shared with :class:`~jaybird.component.Component`;
this module opens the connection and negotiates a c2s stream (STARTTLS, SASL, bind).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Literal

from jaybird.errors import AuthenticationError, StreamError
from jaybird.jid import JID
from jaybird.sasl import ChannelBinding, ClientMechanism, client_mechanisms
from jaybird.session import ConnectionLost, Console, NegotiationError, StreamSession, redact
from jaybird.stream import events as ev
from jaybird.stream.config import InitiatingConfig
from jaybird.stream.framing import Framing
from jaybird.stream.machine import XMPPStream
from jaybird.transport.discovery import WebConnection, WebTransport, open_web_connection
from jaybird.transport.dns import SRVResolver, Target
from jaybird.transport.tcp import Connection, open_connection
from jaybird.transport.tls import ALPN_CLIENT, channel_bindings, client_context

__all__ = ["Client", "ConnectionLost", "Console", "NegotiationError", "redact"]

log = logging.getLogger("jaybird.client")

SessionCallback = Callable[["Client"], Awaitable[None] | None]


class Client(StreamSession):
    """An XMPP client session (RFC 6120 / RFC 6121) over TCP with STARTTLS or direct TLS, over WebSocket
    (RFC 7395) or over BOSH (XEP-0206).

    ``url`` (``wss://...`` or ``https://.../http-bind``) picks an HTTP transport; ``transport="websocket"`` or
    ``"bosh"`` without a url finds one through XEP-0156 (``discovery_base`` overrides ``https://<domain>``).
    The negotiation is the same loop whatever carries the stream: only the stream machine's framing differs.
    """

    def __init__(
        self,
        jid: JID | str,
        password: str,
        *,
        host: str | None = None,
        port: int | None = None,
        direct_tls: bool | None = None,
        verify: bool = True,
        ca_file: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        resource: str | None = None,
        require_tls: bool = True,
        allow_plain: bool = False,
        mechanisms: Sequence[str] | None = None,
        reconnect: bool = True,
        reconnect_delay: tuple[float, float] = (1.0, 60.0),
        connect_timeout: float = 10.0,
        negotiation_timeout: float = 30.0,
        iq_timeout: float = 30.0,
        close_timeout: float = 5.0,
        max_pending_iqs: int = 1024,
        console: Console | None = None,
        resolver: SRVResolver | None = None,
        overrides: Mapping[str, Sequence[Target]] | None = None,
        url: str | None = None,
        transport: Literal["tcp"] | WebTransport | None = None,
        proxy: str | None = None,
        discovery_base: str | None = None,
    ) -> None:
        self.account = jid if isinstance(jid, JID) else JID(jid)
        super().__init__(
            name=str(self.account),
            logger=log,
            reconnect=reconnect,
            reconnect_delay=reconnect_delay,
            iq_timeout=iq_timeout,
            close_timeout=close_timeout,
            max_pending_iqs=max_pending_iqs,
            console=console,
        )
        self._password = password
        self._host, self._port, self._direct_tls = host, port, direct_tls
        self._ssl_context = ssl_context or client_context(verify=verify, ca_file=ca_file)
        # Direct TLS names the protocol by ALPN (XEP-0368 §3); STARTTLS does not.
        self._direct_context = ssl_context or client_context(verify=verify, ca_file=ca_file, alpn=[ALPN_CLIENT])
        self._verify = verify
        self._resource = resource if resource is not None else self.account.resource
        self._require_tls, self._allow_plain = require_tls, allow_plain
        self._mechanism_names = tuple(mechanisms) if mechanisms is not None else None
        #: The SASL mechanism the last session authenticated with.
        self.sasl_mechanism: str | None = None
        self._connect_timeout = connect_timeout
        self._negotiation_timeout = negotiation_timeout
        self._resolver, self._overrides = resolver, overrides
        self._url, self._transport, self._proxy, self._discovery_base = url, transport, proxy, discovery_base

    # -- connection set-up ------------------------------------------------------------------------------------
    async def _establish(self, other_host: str | None = None) -> None:
        conn = await self._open(other_host)
        try:
            async with asyncio.timeout(self._negotiation_timeout):
                stream = await self._negotiate(conn)
        except StreamError as exc:
            await conn.aclose()
            if exc.condition.value == "see-other-host" and exc.other_host and other_host is None:
                log.info("%s: redirected to %s (see-other-host)", self.account, exc.other_host)
                await self._establish(exc.other_host)
                return
            raise
        except BaseException:
            await conn.aclose()
            raise
        assert stream.jid is not None  # _negotiate returns only once a resource is bound
        self._started(conn, stream, stream.jid)

    async def _open(self, other_host: str | None) -> Connection | WebConnection:
        """A TCP connection, or a WebSocket / BOSH one when a URL or an HTTP transport was asked for. A
        redirect given as a URL (RFC 7395 §3.6.1 ``see-other-uri``, XEP-0124 ``see-other-uri``) stays on HTTP."""
        url = other_host if other_host is not None and "://" in other_host else self._url
        if url is not None or self._transport in ("websocket", "bosh"):
            web = None if self._transport == "tcp" else self._transport
            return await open_web_connection(
                self.account.domain,
                url=url,
                transport=web,
                ssl_context=self._ssl_context,
                connect_timeout=self._connect_timeout,
                proxy=self._proxy,
                discovery_base=self._discovery_base,
            )
        host, port = self._host, self._port
        if other_host is not None:
            host, port = _split_host_port(other_host, port or 5222)
        return await open_connection(
            self.account.domain,
            host=host,
            port=port,
            direct_tls=self._direct_tls,
            ssl_context=self._direct_context,
            connect_timeout=self._connect_timeout,
            resolver=self._resolver,
            overrides=self._overrides,
        )

    async def _negotiate(self, conn: Connection | WebConnection) -> XMPPStream:
        framing = Framing.TCP if isinstance(conn, Connection) else conn.framing
        config = InitiatingConfig(
            jid=self.account.bare,
            password=self._password,
            resource=self._resource,
            require_tls=self._require_tls,
            already_secure=conn.is_secure,
            tls_available=framing is Framing.TCP,
            allow_plain=self._allow_plain,
            mechanisms=self._mechanism_factory if self._mechanism_names is not None else None,
        )
        stream = XMPPStream(config, channel_binding=self._binding(conn), framing=framing)
        await self._flush(conn, stream)
        while True:
            data = await conn.read()
            if not data:
                raise ConnectionLost("the server closed the connection during stream negotiation")
            self._echo("in", data)
            events = self._feed(stream, data)
            await self._flush(conn, stream)
            for event in events:
                if isinstance(event, ev.TLSRequested):
                    await conn.start_tls(self._ssl_context, self.account.domain)
                    for follow in stream.tls_established(self._binding(conn)):
                        self._check_negotiation_event(follow)
                    await self._flush(conn, stream)
                elif isinstance(event, ev.Authenticated):
                    self.sasl_mechanism = event.mechanism
                elif isinstance(event, ev.Ready):
                    if stream.jid is None:
                        raise NegotiationError("the stream is ready but no resource was bound")
                    return stream
                else:
                    self._check_negotiation_event(event)

    def _mechanism_factory(self, binding: ChannelBinding | None) -> list[ClientMechanism]:
        """Only the mechanisms asked for, in the caller's order of preference.

        A mechanism without -PLUS chosen on purpose says "no channel binding" (gs2 flag ``n``): with ``y`` a
        server that offers -PLUS would rightly take it for a downgrade attack (RFC 5802 §6).
        """
        assert self._mechanism_names is not None
        found: dict[str, ClientMechanism] = {}
        for cb in (binding, None) if binding is not None else (None,):
            for mechanism in client_mechanisms(
                username=self.account.local, password=self._password, channel_binding=cb
            ):
                if cb is None or mechanism.name.endswith("-PLUS"):
                    found.setdefault(mechanism.name, mechanism)
        return [found[name] for name in self._mechanism_names if name in found]

    def _check_negotiation_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.Authenticated):
            self.sasl_mechanism = event.mechanism
        elif isinstance(event, ev.AuthenticationFailed):
            raise AuthenticationError(event.error.condition, event.error.text)
        elif isinstance(event, ev.BindFailed):
            raise event.error
        if isinstance(event, ev.NegotiationFailed):
            raise NegotiationError(event.reason)
        if isinstance(event, ev.StreamErrorReceived):
            raise event.error
        if isinstance(event, ev.StreamClosed):
            raise ConnectionLost("the server closed the stream during negotiation")

    def _binding(self, conn: Connection | WebConnection) -> tuple[ChannelBinding, ...]:
        ssl_object = conn.ssl_object
        # HTTP endpoints commonly sit behind a TLS-terminating proxy: a binding would not reach the server.
        if ssl_object is None or not self._verify or not isinstance(conn, Connection):
            # Without verification the binding proves nothing worth a -PLUS mechanism (and a proxy
            # terminating TLS would make it fail); use the plain SCRAM variants.
            return ()
        return channel_bindings(ssl_object, server_side=False)


def _split_host_port(value: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (the forms see-other-host may carry)."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default_port
    host, sep, port = value.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return value, default_port
