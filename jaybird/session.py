"""What a client and a component have in common once their stream is up: one asyncio session around a
ready stream machine.

One reader task turns bytes into stanzas; IQ responses resolve the awaiting :meth:`StreamSession.iq`;
everything else goes, in order, to :meth:`StreamSession.stanzas` iterators and to the handler mux (``mux``) in
a dispatcher task of its own, so a handler may itself await an IQ without stalling the reader. A lost
connection is re-established with exponential backoff; the subclasses only say how a connection is opened
and its stream negotiated (:meth:`StreamSession._establish`).

The session never owns the event loop: it runs on whatever loop calls it, and every task it starts belongs
to it and ends with :meth:`StreamSession.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Literal, Self

from jaybird.dispatch import IqTracker, Mux
from jaybird.errors import AuthenticationError, JaybirdError, StanzaError, StreamError
from jaybird.jid import JID
from jaybird.stanza import Iq, Message, PayloadRegistry, Presence, Stanza, wrap
from jaybird.stream import events as ev
from jaybird.stream.machine import XMPPStream
from jaybird.transport.discovery import WebConnection
from jaybird.transport.errors import ConnectError
from jaybird.transport.tcp import Connection
from jaybird.xml.element import Element

__all__ = ["ConnectionLost", "Console", "NegotiationError", "StreamSession", "redact"]

#: ``console(direction, text)``: a copy of every chunk of XML going "in" or "out", SASL payloads redacted.
Console = Callable[[Literal["in", "out"], str], None]
AnyConnection = Connection | WebConnection

_SASL_PAYLOAD = re.compile(r"(<(auth|response|challenge|success)\b[^>]*>)([^<]+)(</\2>)")
_STANZA_QUEUE = 256


def redact(text: str) -> str:
    """Hide SASL payloads (credentials, proofs) in console output."""
    return _SASL_PAYLOAD.sub(r"\1[redacted]\4", text)


class NegotiationError(JaybirdError):
    """The stream could not be set up: our policy refused the server, or binding failed."""


class ConnectionLost(JaybirdError):
    """The connection ended while the session was using it."""


class StreamSession:
    """The reading, dispatching, IQ-tracking and reconnecting half of :class:`~jaybird.client.Client` and
    :class:`~jaybird.component.Component`. Subclasses implement :meth:`_establish`."""

    def __init__(
        self,
        *,
        name: str,
        logger: logging.Logger,
        reconnect: bool,
        reconnect_delay: tuple[float, float],
        iq_timeout: float,
        close_timeout: float,
        max_pending_iqs: int,
        console: Console | None,
    ) -> None:
        self._name = name  # for log lines and task names
        self._log = logger
        self.reconnect = reconnect
        self._reconnect_delay = reconnect_delay
        self.iq_timeout = iq_timeout
        self._close_timeout = close_timeout
        self.console = console

        #: Handlers for incoming stanzas, by kind, type and payload.
        self.mux = Mux()
        #: Payload classes this session understands.
        self.payloads: PayloadRegistry[object] = PayloadRegistry()  # type: ignore[type-var]
        self._tracker = IqTracker(max_pending=max_pending_iqs)
        self._session_callbacks: list[Callable[[Self], Awaitable[None] | None]] = []

        self._conn: AnyConnection | None = None
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

    # -- to implement -------------------------------------------------------------------------------------------
    async def _establish(self) -> None:
        """Open a connection, negotiate a stream until it is ready, then call :meth:`_started`."""
        raise NotImplementedError

    def _gives_up(self, error: BaseException) -> bool:
        """Whether a failed reconnection attempt is final (an error that the same attempt would meet again)."""
        return isinstance(error, AuthenticationError | NegotiationError | StanzaError)

    # -- public API ---------------------------------------------------------------------------------------------
    @property
    def jid(self) -> JID:
        """Our address on this session: the bound full JID (client), the component's domain (component)."""
        if self._jid is None:
            raise ConnectionLost("not connected")
        return self._jid

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def on_session_started(
        self, callback: Callable[[Self], Awaitable[None] | None]
    ) -> Callable[[Self], Awaitable[None] | None]:
        """Call ``callback(session)`` after every successful (re)connection, e.g. to send initial presence."""
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
        """Connect, negotiate the stream and start reading. Returns our address on the session."""
        if self._reader is not None:
            raise JaybirdError(f"{self._name} is connected already")
        self._closing = False
        self._failure = None
        await self._establish()
        self._inbox = asyncio.Queue()
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name=f"jaybird dispatcher {self._name}")
        self._reader = asyncio.create_task(self._read_loop(), name=f"jaybird reader {self._name}")
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
            raise ValueError("iq() sends get and set requests; send results with send()")
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
        ends when the session closes, and raises :class:`ConnectionLost` when the connection fails for good.
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
        await self._teardown(ConnectionLost(f"{self._name} was closed"))
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

    # -- helpers for _establish -----------------------------------------------------------------------------------
    def _started(self, conn: AnyConnection, stream: XMPPStream, jid: JID) -> None:
        """The stream is ready: from here on the reader owns the connection."""
        self._conn, self._stream, self._jid = conn, stream, jid
        self._tracker.own_jid = jid
        self._connected.set()
        self._log.info("%s: session started as %s", self._name, jid)

    def _feed(self, stream: XMPPStream, data: bytes) -> list[ev.Event]:
        try:
            return stream.receive_data(data)
        except ev.StreamViolation as exc:
            self._log.warning("%s: the server broke the protocol: %s", self._name, exc.error)
            raise ConnectionLost(f"protocol violation by the server: {exc.error}") from exc

    async def _flush(self, conn: AnyConnection, stream: XMPPStream) -> None:
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
            self._log.warning("%s: connection lost (%s); reconnecting", self._name, reason)
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
                    self._log.debug("%s: ignoring non-stanza element %s", self._name, event.element.name)
                    continue
                if isinstance(stanza, Iq) and not stanza.is_request and self._tracker.resolve(stanza):
                    continue
                for queue in list(self._subscribers):
                    await queue.put(stanza)
                inbox.put_nowait(stanza)
            elif isinstance(event, ev.StreamErrorReceived):
                self._log.warning("%s: stream error from the server: %s", self._name, event.error)
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
                self._log.exception("%s: dispatching %r failed", self._name, stanza)

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
            except (
                ConnectError,
                ConnectionLost,
                OSError,
                TimeoutError,
                StreamError,
                AuthenticationError,
                NegotiationError,
                StanzaError,
            ) as exc:
                if self._gives_up(exc):
                    self._log.error("%s: giving up reconnecting: %s", self._name, exc)
                    await self._teardown(exc)
                    return False
                self._log.warning("%s: reconnection failed: %s", self._name, exc)
                delay = min(high, delay * 2)
                continue
            await self._run_session_callbacks()
            return True
        return False

    async def _run_session_callbacks(self: Self) -> None:
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
    """Marks the end of :meth:`StreamSession.stanzas` after a deliberate close."""
