"""One server-to-server connection, either direction: bytes between the socket and the stream machine.

Subclasses say what the machine's events mean for them (:meth:`Link.handle`). Writes happen synchronously
from the event loop into the transport's buffer, so they never interleave; a peer that does not read is cut
off once the buffer passes :data:`MAX_BACKLOG` (bounded memory per link).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from typing import Final

from jaybird.errors import StreamError, StreamErrorCondition
from jaybird.stream import events as ev
from jaybird.stream.machine import Phase, XMPPStream
from jaybird.transport.pipe import BytePipe
from jaybird.xml.element import Element

__all__ = ["MAX_BACKLOG", "Link"]

log = logging.getLogger("jaybird.server.s2s")

MAX_BACKLOG: Final = 4 * 1024 * 1024
_C = StreamErrorCondition


class Link:
    """Drives ``stream`` over ``pipe`` until either side ends it. ``run()`` never raises."""

    def __init__(
        self,
        stream: XMPPStream,
        pipe: BytePipe,
        *,
        name: str,
        negotiation_timeout: float,
        idle_timeout: float,
    ) -> None:
        self.stream = stream
        self.name = name
        self._pipe = pipe
        self._deadline = time.monotonic() + negotiation_timeout
        self._idle_timeout = idle_timeout
        self.last_activity = time.monotonic()
        self.reason: str | None = None
        self.error: StreamError | None = None
        self.ready = False
        self._ended = asyncio.Event()

    # -- for subclasses -------------------------------------------------------------------------------------------
    async def handle(self, event: ev.Event) -> None:
        """React to one machine event (TLSRequested, Ready, StanzaReceived, dialback events...)."""

    async def finished(self) -> None:
        """The link is over (socket closed)."""

    # -- sending --------------------------------------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        return self.stream.phase is Phase.READY and not self._ended.is_set()

    def send(self, stanza: Element) -> bool:
        if not self.usable:
            return False
        self.stream.send(stanza)
        self.last_activity = time.monotonic()
        self.flush()
        return True

    def flush(self) -> None:
        data = self.stream.data_to_send()
        pipe = self._pipe
        if not data or pipe.is_closing():
            return
        pipe.write(data)
        if pipe.write_buffer_size > MAX_BACKLOG:
            log.warning("%s: the peer does not read its stream; closing", self.name)
            self.close(StreamError(_C.RESOURCE_CONSTRAINT, "too much unread data"))

    def close(self, error: StreamError | None = None) -> None:
        if error is not None and self.error is None:
            self.error = error
            self.reason = self.reason or f"stream error {error.condition.value}"
        self.stream.close(error)
        self.flush()
        self._ended.set()

    # -- TLS ------------------------------------------------------------------------------------------------------
    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        return self._pipe.ssl_object

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """The handshake, within the negotiation deadline: as the receiving side when ``server_hostname`` is
        None, else as the initiating side checking that name."""
        self.flush()
        await self._pipe.drain()
        remaining = max(1.0, self._deadline - time.monotonic())
        await self._pipe.start_tls(
            context, server_side=server_hostname is None, server_hostname=server_hostname, timeout=remaining
        )

    # -- running --------------------------------------------------------------------------------------------------
    def _timeout(self) -> float:
        if self.ready:
            return max(0.0, self.last_activity + self._idle_timeout - time.monotonic())
        return max(0.0, self._deadline - time.monotonic())

    async def run(self) -> None:
        try:
            await self._read_loop()
        except Exception:
            log.exception("%s: link failed", self.name)
            self.reason = self.reason or "internal error"
        finally:
            self._ended.set()
            with contextlib.suppress(Exception):
                self.flush()
            self.stream.discard_parser()  # (a reference cycle otherwise: see XMLStreamParser.close)
            self._pipe.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._pipe.wait_closed()
            log.info("%s: closed (%s)", self.name, self.reason or "connection lost")
            await self.finished()

    async def _read_loop(self) -> None:
        stream = self.stream
        while not stream.closed and not self._ended.is_set():
            read = asyncio.ensure_future(self._pipe.read())
            ended = asyncio.ensure_future(self._ended.wait())
            try:
                done, _ = await asyncio.wait({read, ended}, timeout=self._timeout(), return_when="FIRST_COMPLETED")
            finally:
                ended.cancel()
            if read not in done:
                read.cancel()
                with contextlib.suppress(BaseException):
                    await read
                if self._ended.is_set():
                    return
                if self.ready:
                    self.reason = "idle"
                    log.info("%s: idle; closing", self.name)
                    self.close()
                else:
                    log.warning("%s: negotiation not finished in time", self.name)
                    self.close(StreamError(_C.CONNECTION_TIMEOUT, "negotiation not finished in time"))
                return
            try:
                data = read.result()
            except (ConnectionError, OSError) as exc:
                self.reason = self.reason or f"network error: {exc}"
                return
            if not data:
                self.reason = self.reason or "connection closed by the peer"
                return
            self.last_activity = time.monotonic()
            try:
                events = stream.receive_data(data)
                await self._dispatch(events)
            except ev.StreamViolation as exc:
                with contextlib.suppress(ev.StreamViolation):
                    await self._dispatch([e for e in exc.events if isinstance(e, ev.StanzaReceived)])
                log.warning("%s: protocol error by the peer: %s", self.name, exc.error)
                self.error = exc.error
                self.reason = self.reason or f"stream error {exc.error.condition.value}"
                self.flush()
                return
            self.flush()

    async def _dispatch(self, events: list[ev.Event]) -> None:
        for event in events:
            if isinstance(event, ev.Ready):
                self.ready = True
            elif isinstance(event, ev.StreamErrorReceived):
                self.reason = f"the peer sent a stream error: {event.error.condition.value}"
                log.info("%s: stream error from the peer: %s", self.name, event.error)
            elif isinstance(event, ev.StreamClosed):
                self.reason = self.reason or "closed by the peer"
            elif isinstance(event, ev.NegotiationFailed):
                self.reason = self.reason or event.reason
                log.warning("%s: negotiation failed: %s", self.name, event.reason)
            await self.handle(event)
            self.flush()

    async def answer(self, events: list[ev.Event]) -> None:
        """Handle the events an answer to the machine produced (``tls_established``, ``answer_feature``)."""
        await self._dispatch(events)
