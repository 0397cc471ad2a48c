"""External components (XEP-0114): their listeners, the driver of one component connection, and the registry the
router reaches them through.

A component serves a whole domain: once its handshake succeeds, every stanza addressed to that domain (or to any
JID in it) goes to its connection, and every stanza it sends is routed as coming from a trusted domain (the stream
machine has checked that ``from`` lies in the component's domain, XEP-0114 §3). The streams are plain TCP, as
XEP-0114 defines them, so the listeners bind loopback unless configured otherwise.

One domain, one connection: a second component authenticating for a domain that is connected already is refused
with ``conflict`` and the first keeps it (RFC 6120 §4.9.3.3 allows either side to win; this is Prosody's default,
``component_conflict_resolve = "kick_new"``). Letting the newcomer win would make two running instances of the
same component, each reconnecting when pushed out, take the domain from each other for ever.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Final

from jaybird import ns
from jaybird.errors import StreamError, StreamErrorCondition
from jaybird.jid import JID
from jaybird.server.api import ServiceItem
from jaybird.server.config import LOOPBACK, ComponentConfig, ServerConfig
from jaybird.server.hooks import Registration
from jaybird.server.host import VirtualHost
from jaybird.server.router import RoutedStanza, Router
from jaybird.server.shutdown import close_and_wait
from jaybird.stanza import Stanza, wrap
from jaybird.stream import events as ev
from jaybird.stream.config import ReceivingConfig
from jaybird.stream.machine import Phase, XMPPStream
from jaybird.stream.state import StreamKind
from jaybird.xml.element import Element

__all__ = ["ComponentConnection", "ComponentListeners", "ComponentRegistry"]

log = logging.getLogger("jaybird.server.components")

_C = StreamErrorCondition
_READ_SIZE: Final = 64 * 1024
#: After our close tag, how long the component gets to send its own (RFC 6120 §4.4) before the socket closes.
CLOSE_WAIT_S: Final = 2.0
#: Bytes queued for a component that does not read before it is cut off (a stuck reader must not eat memory).
MAX_BACKLOG: Final = 16 * 1024 * 1024
#: Errors that mean "this machine has no such address": the default ``::1`` is skipped without IPv6.
_MISSING_ADDRESS: Final = frozenset({errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT})
_STANZAS: Final = frozenset(ns.clark(ns.CLIENT, name) for name in ("message", "presence", "iq"))


class _Close:
    """Marks the end of the write queue."""


_CLOSE: Final = _Close()


class ComponentRegistry:
    """The configured component domains, their secrets, and the one connection serving each connected domain."""

    def __init__(self, components: Sequence[ComponentConfig]) -> None:
        self._secrets: dict[str, str] = {c.domain: c.secret for c in components}
        self._connected: dict[str, ComponentConnection] = {}

    @property
    def domains(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def serves(self, domain: str) -> bool:
        """A component is configured for ``domain`` (connected or not)."""
        return domain in self._secrets

    def secret(self, domain: str) -> str | None:
        return self._secrets.get(domain)

    def get(self, domain: str) -> ComponentConnection | None:
        """The connection serving ``domain``, if one is connected."""
        return self._connected.get(domain)

    def claim(self, connection: ComponentConnection, domain: str) -> ComponentConnection | None:
        """Make ``connection`` the one serving ``domain``; when another holds it, that one (nothing changes)."""
        holder = self._connected.setdefault(domain, connection)
        return None if holder is connection else holder

    def release(self, connection: ComponentConnection, domain: str) -> None:
        if self._connected.get(domain) is connection:
            del self._connected[domain]

    async def deliver(self, domain: str, stanza: RoutedStanza) -> bool:
        """Queue ``stanza`` for the component of ``domain``; False when none is connected (the router answers)."""
        connection = self._connected.get(domain)
        if connection is None:
            return False
        return connection.send_nowait(stanza)


class ComponentConnection:
    """One component stream: handshake, then stanzas both ways through one writer."""

    def __init__(
        self,
        config: ServerConfig,
        router: Router,
        registry: ComponentRegistry,
        domains: frozenset[str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._config = config
        self._router = router
        self._registry = registry
        self._reader = reader
        self._writer = writer
        peer = writer.get_extra_info("peername")
        self.peer: str = f"{peer[0]}:{peer[1]}" if peer else "unknown"

        def secret(domain: str) -> str | None:
            # Only the domains of this port: a component must use the port configured for it.
            return registry.secret(domain) if domain in domains else None

        receiving = ReceivingConfig(
            domains=domains,
            kind=StreamKind.COMPONENT,
            tls_offered=False,
            tls_required=False,
            component_secret=secret,
        )
        self._stream = XMPPStream(receiving, max_stanza_bytes=config.limits.max_stanza_bytes)
        self._queue: asyncio.Queue[bytes | _Close] = asyncio.Queue()
        self._backlog = 0
        self._writer_done = False
        self._end_queued = False
        self._graceful = True
        self._peer_closed = asyncio.Event()
        self._deadline = time.monotonic() + config.limits.handshake_timeout_s
        self.domain: str | None = None
        self.reason: str | None = None

    @property
    def is_ready(self) -> bool:
        """Authenticated, serving its domain, and not closing."""
        return self.domain is not None and not self._end_queued and self._stream.phase is Phase.READY

    def send_nowait(self, stanza: Stanza | Element) -> bool:
        """Queue a stanza for the component; False when the stream can no longer carry it."""
        if not self.is_ready or self._writer_done:
            return False
        self._stream.send(stanza.element if isinstance(stanza, Stanza) else stanza)
        self._flush()
        if self._backlog > MAX_BACKLOG:
            log.warning("%s: the component does not read its stream; closing", self)
            self.close(StreamError(_C.RESOURCE_CONSTRAINT, "too much unread data"))
        return True

    def close(self, error: StreamError | None = None) -> None:
        """Close the stream (with ``error`` if given): our close tag is written, then the socket closed."""
        if self._end_queued:
            return
        if error is not None:
            self.reason = self.reason or f"stream error {error.condition.value}"
            self._graceful = False
        else:
            self.reason = self.reason or "closed by the server"
        self._release()  # nothing more is routed here from now on
        self._stream.close(error)
        self._flush()
        self._end_writes()

    def __str__(self) -> str:
        return f"component {self.domain}" if self.domain is not None else self.peer

    # -- running ------------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the connection until it ends; never raises except on cancellation."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._write_loop(), name=f"component writer {self.peer}")
                try:
                    await self._read_loop()
                finally:
                    self._end_writes()
        except Exception:
            log.exception("%s: connection failed", self)
            self.reason = self.reason or "internal error"
        finally:
            self._release()
            self._stream.discard_parser()  # (a reference cycle otherwise: see XMLStreamParser.close)
            if not self._writer.is_closing():
                self._writer.close()
            log.info("%s: closed (%s)", self, self.reason or "connection lost")

    def _release(self) -> None:
        if self.domain is not None:
            self._registry.release(self, self.domain)

    def _timeout(self) -> float | None:
        # Once authenticated, a component may stay silent as long as it likes: it is configured and trusted,
        # and TCP keepalive notices a peer that vanished.
        if self.domain is not None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    async def _read_loop(self) -> None:
        stream = self._stream
        while not stream.closed and not self._end_queued:
            try:
                async with asyncio.timeout(self._timeout()):
                    data = await self._reader.read(_READ_SIZE)
            except TimeoutError:
                log.info("%s: handshake not finished in time; closing", self)
                self.close(StreamError(_C.CONNECTION_TIMEOUT, "handshake not finished in time"))
                return
            except (ConnectionError, OSError) as exc:
                self.reason = self.reason or f"network error: {exc}"
                self._peer_closed.set()
                return
            if not data:
                self.reason = self.reason or "connection closed by the component"
                self._peer_closed.set()
                return
            try:
                events = stream.receive_data(data)
            except ev.StreamViolation as exc:
                # Whatever arrived whole before the fault is still routed (a stanza is a stanza).
                await self._handle([e for e in exc.events if isinstance(e, ev.StanzaReceived)])
                log.warning("%s: protocol error by the component: %s", self, exc.error)
                self.reason = self.reason or f"stream error {exc.error.condition.value}"
                self._graceful = False
                self._release()
                self._flush()
                self._end_writes()
                return
            await self._handle(events)
            self._flush()

    async def _handle(self, events: Sequence[ev.Event]) -> None:
        for event in events:
            if self._writer_done:
                return
            if isinstance(event, ev.StanzaReceived):
                await self._on_stanza(event.element)
            elif isinstance(event, ev.Ready):
                self._on_ready(event)
            elif isinstance(event, ev.StreamErrorReceived):
                log.info("%s: stream error from the component: %s", self, event.error)
                self.reason = f"the component sent a stream error: {event.error.condition.value}"
            elif isinstance(event, ev.StreamClosed):
                self.reason = self.reason or "closed by the component"
                self._peer_closed.set()
                self._release()
            elif isinstance(event, ev.NegotiationFailed):
                self.reason = self.reason or event.reason
            self._flush()

    def _on_ready(self, event: ev.Ready) -> None:
        assert event.jid is not None, "the handshake names the component's domain"
        domain = event.jid.domain
        holder = self._registry.claim(self, domain)
        if holder is not None:
            # The domain is served already: the first connection keeps it. Our <handshake/> is still queued
            # in the machine; it is dropped so the newcomer is refused, not told it succeeded.
            self._stream.data_to_send()
            log.warning("%s: a second component for %s from %s; refused", holder, domain, self.peer)
            self.close(StreamError(_C.CONFLICT, f"a component for {domain} is connected already"))
            return
        self.domain = domain
        log.info("%s: connected from %s", self, self.peer)

    async def _on_stanza(self, element: Element) -> None:
        if element.name not in _STANZAS:  # the machine lets only stanzas through; kept as a guard
            self.close(StreamError(_C.UNSUPPORTED_STANZA_TYPE, f"not a stanza: {element.name}"))
            return
        try:
            await self._router.route(wrap(element))
        except Exception:
            log.exception("%s: routing a %s failed", self, element.local)

    # -- writing ------------------------------------------------------------------------------------------------
    def _flush(self) -> None:
        data = self._stream.data_to_send()
        if data and not self._writer_done and not self._end_queued:
            self._backlog += len(data)
            self._queue.put_nowait(data)

    def _end_writes(self) -> None:
        if not self._end_queued:
            self._flush()
            self._end_queued = True
            self._queue.put_nowait(_CLOSE)

    async def _write_loop(self) -> None:
        timeout = self._config.limits.idle_timeout_s
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, _Close):
                    break
                self._backlog -= len(item)
                self._writer.write(item)
                async with asyncio.timeout(timeout):
                    await self._writer.drain()
            if self._graceful and not self._peer_closed.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CLOSE_WAIT_S):
                        await self._peer_closed.wait()
        except (ConnectionError, OSError, TimeoutError) as exc:
            self.reason = self.reason or f"write failed: {exc or type(exc).__name__}"
        finally:
            self._writer_done = True
            self._release()
            self._writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._writer.wait_closed()


class ComponentListeners:
    """Listens on every configured component port, owns the connections, and lists the components in the
    disco#items of the hosts (XEP-0030 §4): a component under each host it is a subdomain of (as Prosody does),
    one that is a subdomain of none under every host, so that each configured component is discoverable."""

    def __init__(
        self, config: ServerConfig, router: Router, registry: ComponentRegistry, hosts: Mapping[str, VirtualHost]
    ) -> None:
        self._config = config
        self._router = router
        self._registry = registry
        self._hosts = hosts
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._items: list[Registration] = []
        self.connections: set[ComponentConnection] = set()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Where the listeners are bound (host, port)."""
        return [
            (str(sock.getsockname()[0]), int(sock.getsockname()[1]))
            for server in self._servers
            for sock in server.sockets
        ]

    async def start(self) -> None:
        # Several components may share a port: the stream header names the domain (XEP-0114 §3).
        by_address: dict[tuple[str, int], set[str]] = collections.defaultdict(set)
        for component in self._config.listeners.components:
            for interface in component.interfaces:
                by_address[(interface, component.port)].add(component.domain)
        try:
            for (interface, port), domains in by_address.items():
                await self._listen(interface, port, frozenset(domains))
        except BaseException:
            await self.stop_accepting()
            raise
        for host, port in self.addresses:
            log.info("listening for components on %s port %d", host, port)
        self._list_in_disco()

    async def _listen(self, interface: str, port: int, domains: frozenset[str]) -> None:
        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.ensure_future(self._serve(reader, writer, domains))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        try:
            server = await asyncio.start_server(accept, interface, port, reuse_address=True)
        except OSError as exc:
            if exc.errno in _MISSING_ADDRESS and interface in LOOPBACK and interface != LOOPBACK[0]:
                # The default loopback pair on a machine without IPv6: IPv4 alone still serves.
                log.warning("not listening for components on %s port %d: %s", interface, port, exc.strerror)
                return
            raise OSError(
                exc.errno, f"cannot listen for components on {interface} port {port}: {exc.strerror}"
            ) from exc
        self._servers.append(server)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, domains: frozenset[str]) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        connection = ComponentConnection(self._config, self._router, self._registry, domains, reader, writer)
        self.connections.add(connection)
        log.info("%s: component connection", connection.peer)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)

    def _list_in_disco(self) -> None:
        for domain in sorted(self._registry.domains):
            under = [h for h in self._hosts.values() if domain.endswith("." + h.domain)] or list(self._hosts.values())
            for host in under:
                self._items.append(host.add_item(ServiceItem(JID(domain), name=domain)))

    async def stop_accepting(self) -> None:
        for server in self._servers:
            server.close()
            for sock in server.sockets:
                sock.close()
        self._servers.clear()
        while self._items:
            self._items.pop().cancel()

    async def close_all(self, error: StreamError, timeout: float) -> None:
        """Close every connection with ``error`` and wait (at most ``timeout``) for them to end."""
        await close_and_wait(self.connections, self._tasks, error, timeout)
