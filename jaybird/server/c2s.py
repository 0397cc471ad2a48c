"""One client connection: a small asyncio driver around the receiving side of the stream machine.

It reads bytes into :class:`~jaybird.stream.XMPPStream`, answers the machine's requests (TLS handshake,
stored credentials, resource binding), checks and routes the client's stanzas, and, once a resource is bound,
is the :class:`~jaybird.server.api.Session` modules see. Every write goes through one queue and one writer
task, so output is never interleaved; both tasks belong to the connection's TaskGroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from jaybird import ns
from jaybird.errors import (
    RemoteProtocolError,
    StanzaError,
    StanzaErrorCondition,
    StreamError,
    StreamErrorCondition,
)
from jaybird.jid import JID, JIDError
from jaybird.sasl import ChannelBinding
from jaybird.server.auth import FailedLoginThrottle, credentials_for, offered_mechanisms
from jaybird.server.certs import ServerTLS
from jaybird.server.config import ServerConfig
from jaybird.server.events import SessionEnded, SessionStarted
from jaybird.server.host import VirtualHost, client_stream_features
from jaybird.server.outbox import Flag, Outbox
from jaybird.server.ratelimit import ReadRate
from jaybird.server.router import Router
from jaybird.server.sessions import new_resource
from jaybird.stanza import Presence, Stanza, wrap
from jaybird.stream import events as ev
from jaybird.stream.config import ReceivingConfig
from jaybird.stream.feature import FeatureAnswered
from jaybird.stream.framing import Framing
from jaybird.stream.machine import Phase, XMPPStream
from jaybird.transport.pipe import BytePipe
from jaybird.transport.tls import channel_bindings
from jaybird.xml.element import Element

__all__ = ["C2SConnection", "C2SContext", "C2STransport", "TCPTransport", "is_loopback", "peer_label"]

log = logging.getLogger("jaybird.server.c2s")

_C = StreamErrorCondition
_STANZAS: Final = frozenset(ns.clark(ns.CLIENT, name) for name in ("message", "presence", "iq"))
#: After our close tag, how long the client gets to send its own (RFC 6120 §4.4) before the socket closes.
CLOSE_WAIT_S: Final = 2.0
#: Bytes queued for a client that does not read before it is cut off (a slow reader must not eat memory).
MAX_BACKLOG: Final = 8 * 1024 * 1024
#: A client quiet this long gets its XML parser freed (rebuilt by its next bytes): an expat parser keeps every
#: buffer it grew, ~20 KB after a login and up to a read's size after a burst, and most clients are idle.
PARSER_RELEASE_AFTER_S: Final = 10.0


def peer_label(peer: tuple[str, int] | None) -> str:
    """How logs name a client's address: ``ip:port``, ``[ipv6]:port``."""
    if peer is None:
        return "unknown:0"
    return f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"


@functools.lru_cache(maxsize=1024)  # every connection asks; parsing the address was 1 % of a login
def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class C2STransport(Protocol):
    """What carries one client stream: a TCP connection, a WebSocket or a BOSH session.

    The connection driver is the same for all three (one parser, one negotiation, one session type); only
    this interface differs. ``read`` returns b"" once the peer is gone; a framed transport returns one whole
    frame (a WebSocket message, a BOSH body) per call and may raise :class:`~jaybird.errors.RemoteProtocolError`
    when the peer breaks the framing itself.
    """

    @property
    def framing(self) -> Framing: ...
    @property
    def peer_address(self) -> tuple[str, int] | None: ...
    @property
    def is_secure(self) -> bool: ...
    @property
    def ssl_object(self) -> ssl.SSLObject | None: ...
    @property
    def redirect(self) -> str | None:
        """Where every new stream is sent instead (``see-other-host``), if anywhere."""
        ...

    async def read(self) -> bytes: ...
    def write(self, frames: Sequence[bytes]) -> None: ...
    async def drain(self, timeout: float) -> None:
        """Wait until what was written is on its way (the send buffer below its mark, a frame sent); raises
        TimeoutError after ``timeout`` seconds of waiting, ConnectionError once the peer is gone."""
        ...

    async def start_tls(self, context: ssl.SSLContext, timeout: float) -> None: ...
    def close(self) -> None: ...
    async def wait_closed(self) -> None: ...


class TCPTransport:
    """A plain or TLS TCP connection (RFC 6120): bytes both ways, upgraded in place by STARTTLS."""

    __slots__ = ("_pipe",)
    framing: Final = Framing.TCP
    redirect: Final[str | None] = None

    def __init__(self, pipe: BytePipe) -> None:
        self._pipe = pipe

    @property
    def peer_address(self) -> tuple[str, int] | None:
        return self._pipe.peer_address

    @property
    def is_secure(self) -> bool:
        return self._pipe.is_secure

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        return self._pipe.ssl_object

    async def read(self) -> bytes:
        return await self._pipe.read()

    def write(self, frames: Sequence[bytes]) -> None:
        self._pipe.writelines(frames)

    def try_write(self, frames: Sequence[bytes]) -> bool:
        """Write now unless the send buffer is full (then False: the caller waits with :meth:`drain`)."""
        if self._pipe.write_paused:
            return False
        self._pipe.writelines(frames)
        return True

    async def drain(self, timeout: float) -> None:
        await self._pipe.drain(timeout)

    async def start_tls(self, context: ssl.SSLContext, timeout: float) -> None:
        # Whatever the client sent after <proceed/> and before this call is its ClientHello: the pipe keeps it.
        await self._pipe.start_tls(context, server_side=True, timeout=timeout)

    def close(self) -> None:
        self._pipe.close()

    def abort(self) -> None:
        """Drop the connection now, unsent bytes included."""
        self._pipe.abort()

    async def wait_closed(self) -> None:
        await self._pipe.wait_closed()


@dataclass(frozen=True, slots=True)
class C2SContext:
    """What every client connection of one server shares."""

    config: ServerConfig
    hosts: Mapping[str, VirtualHost]
    router: Router
    tls: ServerTLS
    throttle: FailedLoginThrottle
    #: The stream configurations connections have needed, by what sets them apart (see C2SConnection).
    stream_configs: dict[tuple[bool, bool, bool, str | None], ReceivingConfig] = field(
        default_factory=dict, compare=False, repr=False
    )


class C2SConnection:
    """A client connection; after binding, a :class:`~jaybird.server.api.Session`."""

    def __init__(self, context: C2SContext, transport: C2STransport) -> None:
        """``transport`` is a :class:`TCPTransport` (TLS already up on a direct TLS port), a WebSocket or BOSH."""
        self._ctx = context
        self._transport = transport
        framing = transport.framing
        direct_tls = transport.is_secure
        peer = transport.peer_address
        self.ip: str = str(peer[0]) if peer else "unknown"
        self.peer: str = peer_label(peer)
        config = context.config
        limits = config.limits
        tls_required = config.tls.require_c2s and not (config.tls.allow_plain_on_loopback and is_loopback(self.ip))
        if framing.framed:
            # RFC 7395 §3.7 / XEP-0206 §8: TLS belongs to HTTP; the HTTP listener refuses an insecure one.
            tls_required = False
        key = (tls_required, direct_tls, framing.framed, transport.redirect)
        receiving = context.stream_configs.get(key)
        if receiving is None:  # a handful of combinations, each built once
            mechanisms = offered_mechanisms(config.auth.mechanisms)
            receiving = context.stream_configs[key] = ReceivingConfig(
                domains=frozenset(context.hosts),
                tls_offered=not direct_tls and not framing.framed,
                tls_required=tls_required,
                already_secure=direct_tls,
                mechanisms_secure=mechanisms,
                mechanisms_plain=tuple(m for m in mechanisms if m != "PLAIN" and not m.endswith("-PLUS")),
                max_auth_attempts=config.auth.max_attempts,
                see_other_host=transport.redirect,
            )
        bindings: tuple[ChannelBinding, ...] = ()
        if direct_tls:
            bindings = self._bindings()
        self._stream = XMPPStream(
            receiving,
            client_stream_features(context.hosts.values()),
            max_stanza_bytes=limits.max_stanza_bytes,
            channel_binding=bindings or None,
            framing=framing,
        )
        # A TCP connection is written directly at the end of the loop turn that produced the frames; a writer
        # task is started only for a full send buffer or a close from outside, and otherwise the connection's
        # own task writes the end. WebSocket and BOSH send in their drain(), from a writer task for each.
        direct = isinstance(transport, TCPTransport)
        self._outbox = Outbox(self._write_direct, self._start_writer) if direct else Outbox()
        self._writer: asyncio.Task[None] | None = None
        self._task: asyncio.Task[Any] | None = None  # the one running run()
        self._backlog = 0
        self._writer_done = False
        self._end_queued = False
        self._peer_closed = Flag()
        self._read_rate = ReadRate.for_stream(limits.c2s_rate_bytes_per_s, limits.max_stanza_bytes)
        self._stop_reading = Flag()  # ends a rate-limit pause early when the stream closes
        self._graceful = True
        self._deadline = time.monotonic() + limits.handshake_timeout_s
        self._domain: str | None = None
        self._host: VirtualHost | None = None
        self._jid: JID | None = None
        self._bound = False
        self._ready = False
        self._mechanism = ""
        self.reason: str | None = None
        self.close_error: StreamError | None = None
        # -- the Session attributes modules read and write ------------------------------------------------------
        self.available = False
        self.interested = False
        self.priority = 0
        self.presence: Presence | None = None
        self.data: dict[type[Any], Any] = {}
        self.last_received = time.monotonic()
        self._watchdog: asyncio.TimerHandle | None = None

    # -- Session ------------------------------------------------------------------------------------------------
    @property
    def jid(self) -> JID:
        if self._jid is None:
            raise RuntimeError("no resource is bound yet")
        return self._jid

    @property
    def host(self) -> VirtualHost:
        if self._host is None:
            raise RuntimeError("the session has no host yet")
        return self._host

    @property
    def is_bound(self) -> bool:
        return self._bound

    async def send(self, stanza: Stanza | Element) -> None:
        """Queue a stanza for the client; dropped once the stream is closing (nothing can carry it)."""
        if self._stream.phase is not Phase.READY or self._writer_done:
            log.debug("%s: stream closing, dropped an outgoing stanza", self)
            return
        self._stream.send(stanza.element if isinstance(stanza, Stanza) else stanza)
        self._flush()
        if self._backlog > MAX_BACKLOG:
            log.warning("%s: the client does not read its stream; closing", self)
            self.close(StreamError(_C.RESOURCE_CONSTRAINT, "too much unread data"))
            if isinstance(self._transport, TCPTransport):
                # The close tag queues behind what the client is not reading: waiting for it to drain would keep
                # the session (and megabytes) for the whole write timeout. The connection is dropped now.
                self._transport.abort()

    @property
    def closing(self) -> bool:
        return self._end_queued

    def close(self, error: StreamError | None = None) -> None:
        """Close the stream (with ``error`` if given): our close tag is written, then the socket closed."""
        if self._end_queued:
            return
        if error is not None:
            self.close_error = error
            self.reason = self.reason or f"stream error {error.condition.value}"
            self._graceful = False
        else:
            self.reason = self.reason or "closed by the server"
        self._stream.close(error)
        self._flush()
        self._end_writes()

    def __str__(self) -> str:
        return str(self._jid) if self._jid is not None else self.peer

    # -- running ------------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the connection until it ends; never raises except on cancellation."""
        self._task = asyncio.current_task()
        self._watch()
        if self._outbox.direct is None:
            self._start_writer()
        try:
            try:
                await self._read_loop()
            finally:
                self._end_writes()
            if self._writer is None:
                await self._write_loop()  # the rest (the close tag, the closing handshake) is written from here
            else:
                await self._writer
        except Exception:
            log.exception("%s: connection failed", self)
            self.reason = self.reason or "internal error"
        finally:
            writer = self._writer
            if writer is not None and not writer.done():  # an error or a cancellation ended the reading
                writer.cancel()
                await asyncio.wait([writer])
            await self._finish()

    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name=f"c2s writer {self.peer}")

    async def _finish(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._transport.close()
        # What made this connection a reference cycle goes, so it is freed as soon as the listener lets it go
        # (not by the garbage collector, whose passes over every connection's objects cost ~4 % of a login).
        self._stream.discard_parser()
        self._outbox.abandon()
        self._task = self._writer = None  # (their coroutines hold this connection)
        if self._bound and self._host is not None:
            self._host.sessions.remove(self)
            await self._host.hooks.fire(SessionEnded(self, self.close_error))
        log.info("%s: closed (%s)", self, self.reason or "connection lost")

    def _timeout(self) -> float:
        idle = self._ctx.config.limits.idle_timeout_s
        if self._ready:
            return idle
        return max(0.0, min(idle, self._deadline - time.monotonic()))

    def _watch(self) -> None:
        """The idle and negotiation deadlines, and the parser's release once the client has been quiet for
        ``PARSER_RELEASE_AFTER_S``. One timer per connection, re-armed only when it fires: a read just stamps
        ``last_received``, so the busy path pays no timer per read (a timeout around every read was a
        measurable share of the CPU under load)."""
        self._watchdog = None
        if self._end_queued or self._writer_done:
            return
        now = time.monotonic()
        due = self.last_received + self._ctx.config.limits.idle_timeout_s
        if not self._ready:
            # also no later than a parser release could be due once ready: the session then needs no new timer
            due = min(due, self._deadline, self.last_received + PARSER_RELEASE_AFTER_S)
        elif self._stream.holding_parser:
            release_at = self.last_received + PARSER_RELEASE_AFTER_S
            if now < release_at:
                due = min(due, release_at)
            elif self._stream.release_parser():
                log.debug("%s: idle for %.0f s, parser released", self, now - self.last_received)
        if now >= due:
            what = "idle" if self._ready else "negotiation not finished in time"
            log.info("%s: %s; closing", self, what)
            self.close(StreamError(_C.CONNECTION_TIMEOUT, what))
            return
        self._watchdog = asyncio.get_running_loop().call_later(due - now, self._watch)

    async def _read_loop(self) -> None:
        stream = self._stream
        while not stream.closed and not self._end_queued:
            try:
                data = await self._transport.read()  # no timeout per read: the watchdog (_watch) ends idle streams
            except RemoteProtocolError as exc:  # the framing itself was broken (RFC 7395 §3.3.3)
                log.warning("%s: framing error by the client: %s", self, exc.error)
                self.close(exc.error)
                return
            except (ConnectionError, OSError) as exc:
                self.reason = self.reason or f"network error: {exc}"
                self._peer_closed.set()  # nothing more can come: no reason to wait for a close tag
                return
            if not data:
                self.reason = self.reason or "connection closed by the client"
                self._peer_closed.set()
                return
            self.last_received = time.monotonic()
            pause = self._read_rate.spend(len(data))
            if pause > 0:
                # Over limits.c2s_rate_bytes_per_s: hold what was read until the budget pays for it, and read
                # nothing meanwhile, so TCP flow control slows the client down. Closing the stream ends the wait.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._stop_reading.wait()
                if self._end_queued:
                    return
            try:
                events = stream.receive_data(data)
                await self._handle(events)
            except ev.StreamViolation as exc:
                await self._violation(exc)
                return
            self._flush()

    async def _violation(self, exc: ev.StreamViolation) -> None:
        # Whatever arrived whole before the fault is still handled (a stanza is a stanza).
        with contextlib.suppress(ev.StreamViolation):
            await self._handle([e for e in exc.events if isinstance(e, ev.StanzaReceived)])
        log.warning("%s: protocol error by the client: %s", self, exc.error)
        self.close_error = exc.error
        self.reason = self.reason or f"stream error {exc.error.condition.value}"
        self._graceful = False
        self._flush()
        self._end_writes()

    # -- writing ------------------------------------------------------------------------------------------------
    def _flush(self) -> None:
        frames = self._stream.frames_to_send()
        if frames and not self._writer_done and not self._end_queued:
            self._backlog += sum(map(len, frames))
            self._outbox.put(frames)

    def _write_direct(self, frames: list[bytes]) -> bool:
        transport = self._transport
        assert isinstance(transport, TCPTransport)
        if not transport.try_write(frames):
            return False
        self._backlog -= sum(map(len, frames))
        return True

    def _end_writes(self) -> None:
        if not self._end_queued:
            self._flush()
            self._end_queued = True
            self._stop_reading.set()
            self._outbox.end()
            if self._writer is None and asyncio.current_task() is not self._task:
                # Closed from outside (a timer, another session): the reading task may wait for data a long
                # time yet, so a writer sends the close tag now. From inside, run() writes it once reading ends.
                self._start_writer()

    async def _write_loop(self) -> None:
        timeout = self._ctx.config.limits.idle_timeout_s
        outbox = self._outbox
        try:
            # Everything queued since the last write goes out in one write (one system call): a client that
            # receives many stanzas per loop iteration costs one send, not one per stanza.
            while (batch := await outbox.take()) is not None:
                self._backlog -= sum(map(len, batch))
                self._transport.write(batch)
                await self._transport.drain(timeout)
                outbox.done_writing()
            # A BOSH terminate ends the session for both sides at once: no close tag is coming back.
            if self._graceful and not self._peer_closed.is_set() and self._transport.framing is not Framing.BOSH:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CLOSE_WAIT_S):
                        await self._peer_closed.wait()
        except (ConnectionError, OSError, TimeoutError) as exc:
            self.reason = self.reason or f"write failed: {exc or type(exc).__name__}"
        finally:
            self._writer_done = True
            self._outbox.abandon()  # nobody may wait for data that cannot go out
            self._transport.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._transport.wait_closed()

    # -- the machine's events -------------------------------------------------------------------------------------
    async def _handle(self, events: Sequence[ev.Event]) -> None:
        for event in events:
            if self._writer_done:
                return
            if isinstance(event, ev.StanzaReceived):
                await self._on_stanza(event.element)
            elif isinstance(event, ev.StreamOpened):
                self._domain = event.to
            elif isinstance(event, ev.TLSRequested):
                await self._handle(await self._start_tls())
            elif isinstance(event, ev.CredentialsRequired):
                await self._handle(self._stream.provide_credentials(await self._credentials(event)))
            elif isinstance(event, ev.Authenticated):
                # Announced at info with the bound session (one line per session start); alone only in debug.
                self._mechanism = event.mechanism
                log.debug("%s: authenticated as %s (%s)", self.peer, event.identity, event.mechanism)
            elif isinstance(event, ev.AuthenticationFailed):
                self._ctx.throttle.record_failure(self.ip)
                log.warning("%s: authentication failed: %s", self.peer, event.error.condition.value)
            elif isinstance(event, ev.BindRequested):
                self._flush()
                await self._handle(self._bind(event.resource))
            elif isinstance(event, ev.FeatureRequested):
                self._flush()
                await self._handle(await self._serve(event))
            elif isinstance(event, ev.Ready):
                await self._on_ready()
            elif isinstance(event, ev.StreamErrorReceived):
                log.info("%s: stream error from the client: %s", self, event.error)
                self.reason = f"the client sent a stream error: {event.error.condition.value}"
            elif isinstance(event, ev.StreamClosed):
                self.reason = self.reason or "closed by the client"
                self._peer_closed.set()
            elif isinstance(event, ev.NegotiationFailed):
                self.reason = self.reason or event.reason
            self._flush()

    def _bindings(self) -> tuple[ChannelBinding, ...]:
        ssl_object = self._transport.ssl_object
        if ssl_object is None:
            return ()
        own = self._ctx.tls.own_certificate(ssl_object)
        if own is None:
            return ()
        return channel_bindings(ssl_object, server_side=True, own_cert_der=own)

    async def _start_tls(self) -> list[ev.Event]:
        self._flush()
        await self._outbox.written()  # <proceed/> must be out before the handshake (RFC 6120 §5.4.3.3)
        if self._writer_done:
            return []
        remaining = max(1.0, self._deadline - time.monotonic())
        try:
            await self._transport.start_tls(self._ctx.tls.starttls_context, remaining)
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
            log.warning("%s: TLS handshake failed: %s", self.peer, exc)
            self.reason = f"TLS handshake failed: {exc}"
            self._graceful = False
            self._end_writes()
            return []
        log.debug("%s: TLS established", self.peer)
        return self._stream.tls_established(self._bindings())

    async def _credentials(self, request: ev.CredentialsRequired) -> Sequence[Any] | None:
        if self._ctx.throttle.blocked(self.ip):
            log.warning("%s: too many failed logins from %s; refusing %s", self.peer, self.ip, request.username)
            return None
        domain = self._domain
        host = self._ctx.hosts.get(domain) if domain is not None else None
        if host is None:
            return None
        return await credentials_for(host.storage, request.username, host.domain)

    async def _serve(self, request: ev.FeatureRequested) -> list[ev.Event]:
        """A module's stream feature (in-band registration, ...) needs its own work done: the request carries
        it, so this driver only supplies what it knows of the connection and hands the result back."""
        peer = None if self._transport.peer_address is None else self.ip
        try:
            async with asyncio.timeout(self._timeout()):  # within the negotiation deadline, like the rest
                value = await request.serve(ev.ServeContext(peer_address=peer))
        except TimeoutError:
            log.warning("%s: %s took too long; closing", self.peer, request.feature)
            self.close(StreamError(_C.CONNECTION_TIMEOUT, "negotiation not finished in time"))
            return []
        except Exception:
            log.exception("%s: serving %s failed", self.peer, request.feature)
            self.close(StreamError(_C.INTERNAL_SERVER_ERROR))
            return []
        if self._end_queued or self._stream.closed:  # closed meanwhile (timeout, shutdown): nothing waits
            return []
        return self._stream.answer(FeatureAnswered(value))

    def _bind(self, requested: str | None) -> list[ev.Event]:
        identity = self._stream.identity
        host = self._ctx.hosts.get(identity.domain) if identity is not None else None
        if identity is None or host is None:
            return self._stream.fail_bind(StanzaError(StanzaErrorCondition.NOT_ALLOWED))
        try:
            jid = JID.from_parts(identity.local, identity.domain, requested or new_resource())
        except JIDError as exc:
            return self._stream.fail_bind(StanzaError(StanzaErrorCondition.BAD_REQUEST, text=str(exc)))
        self._host, self._jid, self._bound = host, jid, True
        old = host.sessions.add(self)
        if old is not None:
            # RFC 6120 §7.7.2.2: the new session wins; the old one is told why it goes.
            log.info("%s: resource conflict, replacing the older session", jid)
            old.close(StreamError(_C.CONFLICT, "replaced by a new connection"))
        return self._stream.complete_bind(jid)

    async def _on_ready(self) -> None:
        self._ready = True  # the watchdog, armed no later than anything due once ready, now counts idleness
        log.info("%s: session bound from %s, authenticated as %s (%s)", self, self.peer, self.jid.bare, self._mechanism)
        await self.host.hooks.fire(SessionStarted(self))

    async def _on_stanza(self, element: Element) -> None:
        if element.name not in _STANZAS:
            log.warning("%s: unknown top-level element %s", self, element.name)
            self.close(StreamError(_C.UNSUPPORTED_STANZA_TYPE, f"not a stanza: {element.name}"))
            return
        claimed = element.attrs.get("from")
        if claimed is not None:
            try:
                ok = JID(claimed) in (self.jid, self.jid.bare)
            except JIDError:
                ok = False
            if not ok:
                # RFC 6120 §8.1.2.1: the client may only name itself.
                log.warning("%s: stanza with from=%r; closing", self, claimed)
                self.close(StreamError(_C.INVALID_FROM, "'from' must be your own address"))
                return
        try:
            await self._ctx.router.from_client(self, wrap(element))
        except Exception:
            log.exception("%s: routing a %s failed", self, element.local)
