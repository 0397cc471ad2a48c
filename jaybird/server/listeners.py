"""The client listeners: STARTTLS (RFC 6120 §5) and direct TLS (XEP-0368) ports on each interface."""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import ssl

from jaybird.errors import StreamError, StreamErrorCondition
from jaybird.server.c2s import C2SConnection, C2SContext, TCPTransport, peer_label
from jaybird.server.config import ALL_INTERFACES
from jaybird.server.shutdown import close_and_wait
from jaybird.stream.config import ReceivingConfig
from jaybird.stream.machine import XMPPStream
from jaybird.transport.pipe import BytePipe

__all__ = ["C2SListeners"]

log = logging.getLogger("jaybird.server.listeners")

#: Errors that mean "this machine has no such address family / address": skipped for the default "::".
_MISSING_ADDRESS = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}


class C2SListeners:
    """Accepts client connections and owns them until they end."""

    def __init__(
        self,
        context: C2SContext,
        *,
        reuse_port: bool = False,
        connection_class: type[C2SConnection] = C2SConnection,
    ) -> None:
        """``reuse_port``: bind with SO_REUSEPORT, so that several worker processes share the ports and the
        kernel spreads connections over them; ``connection_class``: what serves each connection."""
        self._ctx = context
        self._reuse_port = reuse_port
        self._connection_class = connection_class
        self._servers: list[asyncio.Server] = []
        self.connections: set[C2SConnection] = set()
        self._per_ip: collections.Counter[str] = collections.Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Where the listeners are bound (host, port)."""
        found = []
        for server in self._servers:
            for sock in server.sockets:
                name = sock.getsockname()
                found.append((str(name[0]), int(name[1])))
        return found

    async def start(self) -> None:
        c2s = self._ctx.config.listeners.c2s
        try:
            for interface in c2s.interfaces:
                await self._listen(interface, c2s.port, direct_tls=False)
                await self._listen(interface, c2s.tls_port, direct_tls=True)
        except BaseException:
            await self.stop_accepting()
            raise
        for host, port in self.addresses:
            log.info("listening for clients on %s port %d", host, port)

    async def _listen(self, interface: str, port: int, *, direct_tls: bool) -> None:
        def accepted(pipe: BytePipe) -> None:
            task = asyncio.ensure_future(self._serve(pipe, direct_tls=direct_tls))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                lambda: BytePipe(accepted), interface, port, reuse_address=True, reuse_port=self._reuse_port
            )
        except OSError as exc:
            if exc.errno in _MISSING_ADDRESS and interface in ALL_INTERFACES and interface != ALL_INTERFACES[0]:
                log.warning("not listening on %s port %d: %s", interface, port, exc.strerror)
                return
            raise OSError(exc.errno, f"cannot listen on {interface} port {port}: {exc.strerror}") from exc
        self._servers.append(server)

    async def _serve(self, pipe: BytePipe, *, direct_tls: bool) -> None:
        if direct_tls:
            # XEP-0368: TLS from the first byte, within the negotiation deadline; XMPP starts once it is up.
            timeout = self._ctx.config.limits.handshake_timeout_s
            try:
                await pipe.start_tls(self._ctx.tls.direct_context, server_side=True, timeout=timeout)
            except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
                log.info("%s: TLS handshake failed: %s", peer_label(pipe.peer_address), exc or type(exc).__name__)
                return
        connection = self._connection_class(self._ctx, TCPTransport(pipe))
        ip = connection.ip
        limit = self._ctx.config.limits.max_connections_per_ip
        if self._per_ip[ip] >= limit:
            log.warning("%s: refused, %d connections from %s already", connection.peer, limit, ip)
            await self._refuse(pipe, StreamError(StreamErrorCondition.POLICY_VIOLATION, "too many connections"))
            return
        self._per_ip[ip] += 1
        self.connections.add(connection)
        log.info("%s: connection%s", connection.peer, " (direct TLS)" if direct_tls else "")
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]

    async def _refuse(self, pipe: BytePipe, error: StreamError) -> None:
        # A header, the error and the close tag (RFC 6120 §4.9.1.2), then the socket closes.
        stream = XMPPStream(ReceivingConfig(domains=frozenset(self._ctx.hosts), tls_required=False))
        stream.close(error)
        try:
            pipe.write(stream.data_to_send())
            async with asyncio.timeout(2.0):
                await pipe.drain()
        except (ConnectionError, OSError, TimeoutError):
            pass
        finally:
            pipe.close()

    async def stop_accepting(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            # wait_closed() also waits for open connections on 3.12+: only the listening sockets matter here.
            for sock in server.sockets:
                sock.close()
        self._servers.clear()

    async def close_all(self, error: StreamError, timeout: float) -> None:
        """Close every connection with ``error`` and wait (at most ``timeout``) for them to end."""
        await close_and_wait(self.connections, self._tasks, error, timeout)
