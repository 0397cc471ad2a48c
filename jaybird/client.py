"""The asyncio XMPP client: a thin driver around the sans-I/O stream machine.

::

    async with Client("juliet@example.com", "secret") as client:
        await client.send(Presence.build())
        pong = await client.iq(Iq.build(IqType.GET, Element(PING), to="example.com"))

The client never owns the event loop: it runs on whatever loop calls it, and every task it starts belongs to it
and ends with :meth:`Client.close`. One reader task turns bytes into stanzas; IQ responses resolve the awaiting
:meth:`Client.iq`; everything else goes, in order, to :meth:`Client.stanzas` iterators and to the handler mux
(``client.mux``) in a dispatcher task of its own, so a handler may itself await an IQ without stalling the reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Literal, Self

from jaybird.dispatch import IqTracker, Mux
from jaybird.errors import AuthenticationError, JaybirdError, StanzaError, StreamError
from jaybird.jid import JID
from jaybird.sasl import ChannelBinding, ClientMechanism, client_mechanisms
from jaybird.stanza import Iq, Message, PayloadRegistry, Presence, Stanza, wrap
from jaybird.stream import events as ev
from jaybird.stream.config import InitiatingConfig
from jaybird.stream.framing import Framing
from jaybird.stream.machine import XMPPStream
from jaybird.transport.discovery import WebConnection, WebTransport, open_web_connection
from jaybird.transport.dns import SRVResolver, Target
from jaybird.transport.errors import ConnectError
from jaybird.transport.tcp import Connection, open_connection
from jaybird.transport.tls import ALPN_CLIENT, channel_bindings, client_context
from jaybird.xml.element import Element

__all__ = ["Client", "ConnectionLost", "Console", "NegotiationError"]

log = logging.getLogger("jaybird.client")

#: ``console(direction, text)``: a copy of every chunk of XML going "in" or "out", SASL payloads redacted.
Console = Callable[[Literal["in", "out"], str], None]
SessionCallback = Callable[["Client"], Awaitable[None] | None]

_SASL_PAYLOAD = re.compile(r"(<(auth|response|challenge|success)\b[^>]*>)([^<]+)(</\2>)")
_STANZA_QUEUE = 256


def redact(text: str) -> str:
    """Hide SASL payloads (credentials, proofs) in console output."""
    return _SASL_PAYLOAD.sub(r"\1[redacted]\4", text)


class NegotiationError(JaybirdError):
    """The stream could not be set up: our policy refused the server, or binding failed."""


class ConnectionLost(JaybirdError):
    """The connection ended while the client was using it."""


class Client:
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
        self.reconnect = reconnect
        self._reconnect_delay = reconnect_delay
        self._connect_timeout = connect_timeout
        self._negotiation_timeout = negotiation_timeout
        self.iq_timeout = iq_timeout
        self._close_timeout = close_timeout
        self.console = console
        self._resolver, self._overrides = resolver, overrides
        self._url, self._transport, self._proxy, self._discovery_base = url, transport, proxy, discovery_base

        #: Handlers for incoming stanzas, by kind, type and payload.
        self.mux = Mux()
        #: Payload classes this client understands.
        self.payloads: PayloadRegistry[object] = PayloadRegistry()  # type: ignore[type-var]
        self._tracker = IqTracker(max_pending=max_pending_iqs)
        self._session_callbacks: list[SessionCallback] = []

        self._conn: Connection | WebConnection | None = None
        self._stream: XMPPStream | None = None
        self._jid: JID | None = None
        self._reader: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[Message | Presence | Iq] | None = None
        self._subscribers: list[asyncio.Queue[Message | Presence | Iq | BaseException]] = []
        self._closing = False
        self._failure: BaseException | None = None
        self._connected = asyncio.Event()
        self._write_lock = asyncio.Lock()

    # -- public API ---------------------------------------------------------------------------------------------
    @property
    def jid(self) -> JID:
        """The full JID bound for this session."""
        if self._jid is None:
            raise ConnectionLost("not connected")
        return self._jid

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def on_session_started(self, callback: SessionCallback) -> SessionCallback:
        """Call ``callback(client)`` after every successful (re)connection, e.g. to send initial presence."""
        self._session_callbacks.append(callback)
        return callback

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> JID:
        """Connect, negotiate the stream, bind, and start reading. Returns the bound JID."""
        if self._reader is not None:
            raise JaybirdError("the client is connected already")
        self._closing = False
        self._failure = None
        await self._establish()
        self._inbox = asyncio.Queue()
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name=f"jaybird dispatcher {self.account}")
        self._reader = asyncio.create_task(self._read_loop(), name=f"jaybird reader {self.account}")
        await self._run_session_callbacks()
        assert self._jid is not None
        return self._jid

    async def send(self, stanza: Stanza | Element) -> None:
        """Send a stanza; returns once it is handed to the transport (flow control: waits for the buffer)."""
        element = stanza.element if isinstance(stanza, Stanza) else stanza
        await self._connected.wait() if self.reconnect and not self._closing else None
        stream, conn = self._stream, self._conn
        if stream is None or conn is None or not self._connected.is_set():
            raise self._failure_error()
        async with self._write_lock:
            stream.send(element)
            await self._flush(conn, stream)

    async def iq(self, request: Iq, *, timeout: float | None = None) -> Iq:
        """Send an IQ get/set and return the ``result``; raises :class:`StanzaError` for an ``error`` reply and
        :class:`~jaybird.dispatch.IqTimeout` when nothing comes back in time."""
        if not request.is_request:
            raise ValueError("Client.iq() sends get and set requests; send results with Client.send()")
        future = self._tracker.track(request, timeout=self.iq_timeout if timeout is None else timeout)
        try:
            await self.send(request)
        except BaseException:
            future.cancel()
            raise
        return await future

    async def stanzas(self) -> AsyncIterator[Message | Presence | Iq]:
        """Every stanza that arrives from now on (IQ responses to :meth:`iq` excepted), in order.

        The reader waits for a slow consumer (TCP flow control rather than unbounded memory). The iteration
        ends when the client closes, and raises :class:`ConnectionLost` when the connection fails for good.
        """
        queue: asyncio.Queue[Message | Presence | Iq | BaseException] = asyncio.Queue(_STANZA_QUEUE)
        self._subscribers.append(queue)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _EndOfStanzas):
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(queue)

    async def close(self) -> None:
        """Close the stream gracefully (RFC 6120 §4.4) and stop every task. Idempotent."""
        self._closing = True
        stream, conn = self._stream, self._conn
        if stream is not None and conn is not None and not conn.is_closing:
            async with self._write_lock:
                stream.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await self._flush(conn, stream)
            if self._reader is not None and not self._reader.done():
                # The reader sees the peer's close tag, or EOF; then the connection is closed.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._reader), self._close_timeout)
        await self._teardown(ConnectionLost("the client was closed"))
        for task in (self._reader, self._dispatcher):
            if task is not None and not task.done():
                task.cancel()
        for task in (self._reader, self._dispatcher):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._reader = self._dispatcher = None
        for queue in list(self._subscribers):
            self._offer(queue, _EndOfStanzas())

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
        self._conn, self._stream = conn, stream
        self._jid = stream.jid
        self._tracker.own_jid = stream.jid
        self._connected.set()
        log.info("%s: session started as %s", self.account, self._jid)

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

    def _feed(self, stream: XMPPStream, data: bytes) -> list[ev.Event]:
        try:
            return stream.receive_data(data)
        except ev.StreamViolation as exc:
            log.warning("%s: the server broke the protocol: %s", self.account, exc.error)
            raise ConnectionLost(f"protocol violation by the server: {exc.error}") from exc

    async def _flush(self, conn: Connection | WebConnection, stream: XMPPStream) -> None:
        frames = stream.frames_to_send()  # one chunk on TCP; one element per frame on WebSocket and BOSH
        if frames:
            for frame in frames:
                self._echo("out", frame)
                conn.write(frame)
            await conn.drain()

    def _echo(self, direction: Literal["in", "out"], data: bytes) -> None:
        if self.console is not None:
            self.console(direction, redact(data.decode("utf-8", "replace")))

    # -- the session ------------------------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        while True:
            reason = await self._read_session()
            if self._closing or not self.reconnect:
                await self._teardown(reason)
                return
            log.warning("%s: connection lost (%s); reconnecting", self.account, reason)
            await self._teardown(reason, final=False)
            if not await self._reconnect():
                return

    async def _read_session(self) -> BaseException:
        """Read until the session ends; return why it ended."""
        conn, stream = self._conn, self._stream
        assert conn is not None and stream is not None and self._inbox is not None
        inbox = self._inbox
        try:
            while True:
                data = await conn.read()
                if not data:
                    return ConnectionLost("the server closed the connection")
                self._echo("in", data)
                try:
                    events = stream.receive_data(data)
                except ev.StreamViolation as exc:
                    await self._deliver(exc.events, inbox)
                    with contextlib.suppress(OSError, ConnectionError):
                        await self._flush(conn, stream)
                    return ConnectionLost(f"protocol violation by the server: {exc.error}")
                ended = await self._deliver(events, inbox)
                async with self._write_lock:
                    await self._flush(conn, stream)
                if ended is not None:
                    return ended
        except (OSError, ConnectionError) as exc:
            return ConnectionLost(f"network error: {exc}")

    async def _deliver(
        self, events: Sequence[ev.Event], inbox: asyncio.Queue[Message | Presence | Iq]
    ) -> BaseException | None:
        ended: BaseException | None = None
        for event in events:
            if isinstance(event, ev.StanzaReceived):
                try:
                    stanza = wrap(event.element)
                except ValueError:
                    log.debug("%s: ignoring non-stanza element %s", self.account, event.element.name)
                    continue
                if isinstance(stanza, Iq) and not stanza.is_request and self._tracker.resolve(stanza):
                    continue
                for queue in list(self._subscribers):
                    await queue.put(stanza)
                inbox.put_nowait(stanza)
            elif isinstance(event, ev.StreamErrorReceived):
                log.warning("%s: stream error from the server: %s", self.account, event.error)
                ended = event.error
            elif isinstance(event, ev.StreamClosed):
                # after a stream error, that error is the reason the stream ended
                ended = ended or ConnectionLost("the server closed the stream")
        return ended

    async def _dispatch_loop(self) -> None:
        assert self._inbox is not None
        inbox = self._inbox
        while True:
            stanza = await inbox.get()
            try:
                await self.mux.dispatch(stanza, self._reply)
            except Exception:  # the mux answers handler errors itself; this is a bug in the mux or reply
                log.exception("%s: dispatching %r failed", self.account, stanza)

    async def _reply(self, stanza: Stanza) -> None:
        with contextlib.suppress(ConnectionLost):
            await self.send(stanza)

    async def _teardown(self, reason: BaseException, *, final: bool = True) -> None:
        self._connected.clear()
        conn = self._conn
        self._conn = self._stream = None
        if conn is not None:
            await conn.aclose()
        failure = reason if isinstance(reason, ConnectionLost) else ConnectionLost(str(reason))
        self._tracker.fail_all(failure)
        if final:
            self._failure = failure
            end: BaseException = _EndOfStanzas() if self._closing else failure
            for queue in list(self._subscribers):
                self._offer(queue, end)

    async def _reconnect(self) -> bool:
        low, high = self._reconnect_delay
        delay = low
        while not self._closing:
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                await self._establish()
            except (ConnectError, ConnectionLost, OSError, TimeoutError, StreamError) as exc:
                log.warning("%s: reconnection failed: %s", self.account, exc)
                delay = min(high, delay * 2)
                continue
            except (AuthenticationError, NegotiationError, StanzaError) as exc:
                log.error("%s: giving up reconnecting: %s", self.account, exc)
                await self._teardown(exc)
                return False
            await self._run_session_callbacks()
            return True
        return False

    async def _run_session_callbacks(self) -> None:
        for callback in self._session_callbacks:
            result = callback(self)
            if result is not None:
                await result

    def _failure_error(self) -> BaseException:
        return self._failure or ConnectionLost("not connected")

    @staticmethod
    def _offer(queue: asyncio.Queue[Message | Presence | Iq | BaseException], item: BaseException) -> None:
        # The end marker must get through even when a consumer lags: drop the oldest stanza for it.
        if queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
        queue.put_nowait(item)


class _EndOfStanzas(Exception):
    """Marks the end of :meth:`Client.stanzas` after a deliberate close."""


def _split_host_port(value: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (the forms see-other-host may carry)."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default_port
    host, sep, port = value.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return value, default_port
