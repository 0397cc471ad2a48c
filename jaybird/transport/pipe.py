"""A TCP byte pipe with TLS done in place over memory buffers: what the server's XMPP streams run on.

:class:`BytePipe` is an asyncio protocol that offers what a stream driver needs (``read``, ``write``,
``drain``, ``start_tls``, ``close``) without asyncio's stream reader and its SSL protocol stack. TLS is one
:class:`ssl.SSLObject` between two :class:`ssl.MemoryBIO` objects, so STARTTLS (RFC 6120 §5) and direct TLS
(XEP-0368) are the same code: bytes are decrypted where they arrive and handed to the reader whole.

Why not ``StreamWriter.start_tls``: a login through asyncio's layers costs about a third more server CPU in
the upgrade and in every read and write after it (``bench/``, docs/benchmarks.md), the event loop must
implement ``start_tls`` (uvloop's loses the bytes that arrived before the call, MagicStack/uvloop#707), and
bytes that arrived between ``<proceed/>`` and the call are the client's ClientHello, which this pipe hands to
TLS instead of losing them (python/cpython#142352).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Sequence
from typing import Final, cast

from jaybird.errors import LocalProtocolError

__all__ = ["BytePipe"]

log = logging.getLogger(__name__)

#: Unread bytes held before the socket stops being read (TCP flow control then slows the sender down).
READ_HIGH_WATER: Final = 256 * 1024
#: The largest plaintext asked of the TLS object at once.
_TLS_READ_SIZE: Final = 64 * 1024


class BytePipe(asyncio.Protocol):
    """One connection's bytes both ways, with TLS started in place; one reader and one writer at a time.

    ``read`` returns every byte received so far (waiting for some), b"" once the peer has closed, and raises
    the connection's error once it broke. ``on_connected``, if given, is called from ``connection_made``:
    a listener starts the connection's task there.
    """

    __slots__ = (
        "_buffer",
        "_buffered",
        "_closed_waiter",
        "_closing",
        "_drain_waiter",
        "_eof",
        "_error",
        "_handshake",
        "_incoming",
        "_lost",
        "_on_connected",
        "_outgoing",
        "_peer",
        "_read_waiter",
        "_reading_paused",
        "_secure",
        "_tls",
        "_transport",
        "_write_paused",
    )

    def __init__(self, on_connected: Callable[[BytePipe], object] | None = None) -> None:
        self._on_connected = on_connected
        self._transport: asyncio.Transport | None = None
        self._peer: tuple[str, int] | None = None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._eof = False
        self._lost = False
        self._closing = False
        self._error: BaseException | None = None
        self._reading_paused = False
        self._write_paused = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._closed_waiter: asyncio.Future[None] | None = None
        self._tls: ssl.SSLObject | None = None
        self._incoming: ssl.MemoryBIO | None = None
        self._outgoing: ssl.MemoryBIO | None = None
        self._handshake: asyncio.Future[None] | None = None
        self._secure = False

    # -- state ----------------------------------------------------------------------------------------------
    @property
    def peer_address(self) -> tuple[str, int] | None:
        return self._peer

    @property
    def is_secure(self) -> bool:
        """TLS is established (its handshake finished)."""
        return self._secure

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        """The TLS session once established: certificates, ALPN, channel bindings."""
        return self._tls if self._secure else None

    def is_closing(self) -> bool:
        return self._closing or self._lost

    @property
    def write_paused(self) -> bool:
        """The transport's send buffer is over its high-water mark: :meth:`drain` would wait."""
        return self._write_paused

    @property
    def write_buffer_size(self) -> int:
        """Bytes written and not yet taken by the kernel."""
        return 0 if self._transport is None else self._transport.get_write_buffer_size()

    # -- asyncio.Protocol -----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport; uvloop's do not inherit asyncio.Transport, hence no isinstance check.
        self._transport = cast(asyncio.Transport, transport)
        peer = self._transport.get_extra_info("peername")
        if peer:
            self._peer = (str(peer[0]), int(peer[1]))
        if self._on_connected is not None:
            self._on_connected(self)
            self._on_connected = None

    def data_received(self, data: bytes) -> None:
        tls = self._tls
        if tls is None:
            self._push(data)
            return
        assert self._incoming is not None
        self._incoming.write(data)
        if self._handshake is not None:
            self._do_handshake()
        elif self._secure:
            self._tls_read()

    def eof_received(self) -> bool:
        # Over TLS an EOF without close_notify is a truncation; the stream's own close tag says whether the
        # peer had finished, so both are just "nothing more will come" here.
        self._eof = True
        self._wake_reader()
        self._fail_handshake(ConnectionResetError("the connection was closed during the TLS handshake"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if exc is not None and self._error is None:
            self._error = exc
        self._eof = True
        self._wake_reader()
        self._fail_handshake(ConnectionResetError("the connection was closed during the TLS handshake"))
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("connection lost"))
        waiter = self._closed_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- reading --------------------------------------------------------------------------------------------
    def _push(self, data: bytes) -> None:
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered > READ_HIGH_WATER and not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake_reader()

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> bytes:
        """Everything received and not yet read (waiting until there is some); b"" once the peer closed."""
        while not self._buffer:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            waiter = self._read_waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._read_waiter = None
        buffer = self._buffer
        data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
        self._buffer = []
        self._buffered = 0
        if self._reading_paused and not self._lost and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    # -- writing --------------------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Queue ``data`` (encrypted first under TLS); dropped once the pipe is closing."""
        if self._closing or self._lost or self._transport is None:
            return
        tls = self._tls
        if tls is None:
            self._transport.write(data)
            return
        if not self._secure:
            raise LocalProtocolError("write during the TLS handshake")
        try:
            tls.write(data)
        except ssl.SSLError as exc:
            self._fatal(exc)
            return
        self._flush_tls()

    def writelines(self, frames: Sequence[bytes]) -> None:
        if self._tls is None:
            if not (self._closing or self._lost or self._transport is None):
                self._transport.writelines(frames)
            return
        self.write(frames[0] if len(frames) == 1 else b"".join(frames))

    async def drain(self, timeout: float | None = None) -> None:
        """Wait while the socket's send buffer is over its high-water mark; ConnectionError once lost,
        TimeoutError after ``timeout`` seconds of waiting (the timer exists only when there is a wait)."""
        if self._lost:
            raise ConnectionResetError("connection lost")
        if not self._write_paused:
            return
        waiter = self._drain_waiter
        if waiter is None or waiter.done():
            waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
        async with asyncio.timeout(timeout):
            await asyncio.shield(waiter)

    # -- TLS ------------------------------------------------------------------------------------------------
    async def start_tls(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Run the TLS handshake on this connection, now; the pipe is closed (aborted) if it fails.

        Bytes received but not yet read are the peer's first TLS bytes (sent after ``<proceed/>``) and go to
        the handshake. Raises :class:`ssl.SSLError` (a refused certificate: its subclass
        :class:`ssl.SSLCertVerificationError`), ConnectionError or TimeoutError.
        """
        if self._tls is not None:
            raise LocalProtocolError("TLS is already started on this connection")
        if self._lost or self._transport is None:
            raise ConnectionResetError("the connection is closed")
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=server_hostname
        )
        handshake = self._handshake = asyncio.get_running_loop().create_future()
        early, self._buffer, self._buffered = self._buffer, [], 0
        for chunk in early:
            self._incoming.write(chunk)
        if self._reading_paused:
            self._reading_paused = False
            self._transport.resume_reading()
        if self._eof:
            self._fail_handshake(ConnectionResetError("the connection was closed before the TLS handshake"))
        else:
            self._do_handshake()
        try:
            async with asyncio.timeout(timeout):
                await handshake
        except BaseException:
            self.abort()
            raise

    def _do_handshake(self) -> None:
        tls, waiter = self._tls, self._handshake
        assert tls is not None and waiter is not None
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush_tls()
            return
        except (ssl.SSLError, ssl.CertificateError) as exc:
            self._flush_tls()  # the alert, so the peer learns why
            self._handshake = None
            if not waiter.done():
                waiter.set_exception(exc)
            return
        self._handshake = None
        self._secure = True
        self._flush_tls()
        if not waiter.done():
            waiter.set_result(None)
        self._tls_read()  # application data that came with the peer's last handshake flight

    def _fail_handshake(self, exc: BaseException) -> None:
        waiter = self._handshake
        if waiter is not None:
            self._handshake = None
            if not waiter.done():
                waiter.set_exception(exc)

    def _tls_read(self) -> None:
        tls, incoming = self._tls, self._incoming
        assert tls is not None and incoming is not None
        chunks: list[bytes] = []
        closed = False
        try:
            while True:
                chunk = tls.read(_TLS_READ_SIZE)
                if not chunk:
                    closed = True
                    break
                chunks.append(chunk)
                if not incoming.pending and not tls.pending():
                    break  # all read: asking again would only raise SSLWantReadError (a third of the cost)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            closed = True
        except ssl.SSLError as exc:
            if chunks:
                self._push(b"".join(chunks))
            self._fatal(exc)
            return
        self._flush_tls()  # TLS 1.3 post-handshake messages may want an answer
        if chunks:
            self._push(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if closed:  # the peer's close_notify
            self._eof = True
            self._wake_reader()

    def _flush_tls(self) -> None:
        outgoing = self._outgoing
        if outgoing is not None and outgoing.pending and self._transport is not None and not self._lost:
            self._transport.write(outgoing.read())

    def _fatal(self, exc: ssl.SSLError) -> None:
        log.debug("TLS error from %s: %s", self._peer, exc)
        if self._error is None:
            self._error = exc
        self._wake_reader()
        self.abort()

    # -- closing --------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close once what is queued has gone out; over TLS, a close_notify first."""
        if self._closing:
            return
        self._closing = True
        if self._tls is not None and self._secure and not self._lost:
            with contextlib.suppress(ssl.SSLError):  # SSLWantReadError: the peer's close_notify is not awaited
                self._tls.unwrap()
            self._flush_tls()
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection now, queued bytes included."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    async def wait_closed(self) -> None:
        if self._lost or self._transport is None:
            return
        waiter = self._closed_waiter
        if waiter is None:
            waiter = self._closed_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    def __repr__(self) -> str:
        how = "TLS" if self._secure else "TCP"
        return f"<BytePipe {self._peer} {how}{' closing' if self.is_closing() else ''}>"
