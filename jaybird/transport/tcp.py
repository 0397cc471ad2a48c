"""A TCP connection to an XMPP peer: tries the resolved targets in order, STARTTLS in place, direct TLS.

:class:`Connection` is a thin byte pipe over asyncio streams. It knows nothing of XML: the stream machine
(:mod:`jaybird.stream`) turns its bytes into events. One connection has one writer (the driver that owns it).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Final, Literal

from jaybird.errors import LocalProtocolError
from jaybird.transport.dns import DEFAULT_PORTS, SRVResolver, Target, resolve_xmpp
from jaybird.transport.errors import Attempt, ConnectError, ServiceNotAvailableError
from jaybird.transport.tls import ALPN_CLIENT, ALPN_SERVER, certificate_error, client_context

__all__ = ["Connection", "open_connection"]

log = logging.getLogger(__name__)

#: RFC 8305 §5 recommends 250 ms between attempts on the addresses of one host (IPv6 first).
_HAPPY_EYEBALLS_DELAY: Final = 0.25
_READ_SIZE: Final = 64 * 1024


class Connection:
    """An open connection to ``domain`` (the XMPP domain), reached through ``target``."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        domain: str,
        target: Target,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._ssl_context = ssl_context
        self._ssl_object = self._current_ssl_object()
        # Kept apart from the writer: asyncio may drop the writer's transport when TLS setup fails (below).
        self._transport = writer.transport
        self._closed = False
        self.domain = domain
        self.target = target

    # -- state ----------------------------------------------------------------------------------------------
    def _current_ssl_object(self) -> ssl.SSLObject | None:
        obj = self._writer.get_extra_info("ssl_object")
        return obj if isinstance(obj, ssl.SSLObject) else None

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        # Cached: on Python 3.11 an SSL transport's get_extra_info() fails once it is closed twice.
        return self._ssl_object

    @property
    def is_secure(self) -> bool:
        return self.ssl_object is not None

    @property
    def alpn_protocol(self) -> str | None:
        """The ALPN protocol the server selected (``xmpp-client`` on an XEP-0368 port), if any."""
        obj = self.ssl_object
        return None if obj is None else obj.selected_alpn_protocol()

    @property
    def peer(self) -> tuple[str, int] | None:
        """The address actually connected to (after the target's name was resolved)."""
        name = self._writer.get_extra_info("peername")
        return (str(name[0]), int(name[1])) if name else None

    @property
    def is_closing(self) -> bool:
        return self._closed or self._writer.is_closing()

    # -- bytes ----------------------------------------------------------------------------------------------
    async def read(self, n: int = _READ_SIZE) -> bytes:
        """Up to ``n`` bytes as soon as some arrive; b"" once the peer closed. OSError on a broken link."""
        return await self._reader.read(n)

    def write(self, data: bytes) -> None:
        if self._closed:
            raise LocalProtocolError("write on a closed connection")
        self._writer.write(data)

    async def drain(self) -> None:
        """Wait until the write buffer is below its high-water mark (raises ConnectionError once lost)."""
        await self._writer.drain()

    # -- TLS ------------------------------------------------------------------------------------------------
    async def start_tls(
        self,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        """Upgrade this connection to TLS in place (after ``<proceed/>``, RFC 6120 §5.4.2.3).

        ``server_hostname`` (SNI and the identity checked) defaults to the XMPP domain; the context defaults
        to the one given to :func:`open_connection`, else a verifying :func:`client_context`. A refused
        certificate raises :class:`CertificateError` and closes the connection.
        """
        if self.is_secure:
            raise LocalProtocolError("the connection is already encrypted (XEP-0368 §3: no STARTTLS over TLS)")
        context = ssl_context or self._ssl_context or client_context()
        hostname = server_hostname or self.domain
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(context, server_hostname=hostname, ssl_handshake_timeout=timeout)
        except ssl.SSLCertVerificationError as exc:
            self._abort()
            raise certificate_error(exc, hostname) from exc
        except AttributeError as exc:
            # loop.start_tls() returns None when the peer hangs up mid-handshake (python/cpython#105993) and
            # Python 3.11's StreamWriter.start_tls() then fails on it, leaving the writer without a transport.
            self._abort()
            if self._writer.transport is not None:
                raise
            raise ConnectionResetError("the connection was closed during the TLS handshake") from exc
        except BaseException:
            self._abort()
            raise
        self._transport = self._writer.transport
        self._ssl_object = self._current_ssl_object()

    # -- closing --------------------------------------------------------------------------------------------
    def _abort(self) -> None:
        self._closed = True
        self._transport.abort()

    async def aclose(self, *, timeout: float = 2.0) -> None:
        """Close, sending TLS close_notify when encrypted; wait at most ``timeout`` seconds, then abort.

        Never raises for a connection that is already broken (that is only logged at debug level).
        """
        self._closed = True
        if not self._transport.is_closing():
            # Only once: a second close() on a 3.11 SSL transport drops its protocol and breaks abort().
            self._transport.close()
        if self._writer.transport is None:  # start_tls() lost the connection: nothing left to wait for
            return
        try:
            async with asyncio.timeout(timeout):
                await self._writer.wait_closed()
        except TimeoutError:
            log.debug("closing the connection to %s timed out; aborting it", self.domain)
            self._transport.abort()
        except OSError as exc:  # the peer already went away, or broke TLS on its way out
            log.debug("connection to %s was already broken while closing: %r", self.domain, exc)
        except asyncio.CancelledError:
            self._transport.abort()
            raise

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        how = "TLS" if self.is_secure else "TCP"
        return f"<Connection {self.domain} via {self.target.host}:{self.target.port} {how}>"


async def _targets(
    domain: str,
    host: str | None,
    port: int | None,
    direct_tls: bool | None,
    service: Literal["client", "server"],
    resolver: SRVResolver | None,
    overrides: Mapping[str, Sequence[Target]] | None,
) -> list[Target]:
    if host is not None or port is not None:
        if direct_tls and port is None:
            raise ValueError("direct TLS to a given host needs its port (there is no standard one)")
        return [Target(host or domain, port or DEFAULT_PORTS[service], bool(direct_tls))]
    try:
        targets = await resolve_xmpp(domain, service=service, resolver=resolver, overrides=overrides)
    except ServiceNotAvailableError as exc:
        raise ConnectError(domain, (), str(exc)) from exc
    if direct_tls is not None:
        kept = [t for t in targets if t.direct_tls == direct_tls]
        if not kept:
            kind = "direct TLS" if direct_tls else "STARTTLS"
            listed = ", ".join(f"{t.host}:{t.port}" for t in targets)
            raise ConnectError(domain, (), f"no {kind} targets (DNS gave only {listed})")
        targets = kept
    return targets


async def open_connection(
    domain: str,
    *,
    host: str | None = None,
    port: int | None = None,
    direct_tls: bool | None = None,
    ssl_context: ssl.SSLContext | None = None,
    connect_timeout: float = 10.0,
    resolver: SRVResolver | None = None,
    overrides: Mapping[str, Sequence[Target]] | None = None,
    service: Literal["client", "server"] = "client",
) -> Connection:
    """Connect to the XMPP ``service`` of ``domain``, trying each target in turn for ``connect_timeout`` s.

    ``host``/``port`` skip DNS. ``direct_tls`` None follows DNS (XEP-0368); True or False keeps only targets
    of that kind. Direct TLS uses ``ssl_context`` or a verifying context with the XEP-0368 ALPN id; the
    certificate is always checked against ``domain``, never the target host (RFC 6125 §6.2.1). Raises one
    :class:`ConnectError` listing every target tried and why each failed.
    """
    targets = await _targets(domain, host, port, direct_tls, service, resolver, overrides)
    attempts: list[Attempt] = []
    for target in targets:
        context: ssl.SSLContext | None = None
        if target.direct_tls:
            alpn = ALPN_CLIENT if service == "client" else ALPN_SERVER
            context = ssl_context or client_context(alpn=[alpn])
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(
                    target.host,
                    target.port,
                    ssl=context,
                    server_hostname=domain if context else None,
                    ssl_handshake_timeout=connect_timeout if context else None,
                    happy_eyeballs_delay=_HAPPY_EYEBALLS_DELAY,
                )
        except ssl.SSLCertVerificationError as exc:
            error: BaseException = certificate_error(exc, domain)
        except TimeoutError:
            error = TimeoutError(f"timed out after {connect_timeout:g} s")
        except OSError as exc:  # refused, unreachable, name not found, TLS handshake failure
            error = exc
        else:
            return Connection(reader, writer, domain=domain, target=target, ssl_context=ssl_context)
        log.debug("connecting to %s via %s failed: %s", domain, target, error)
        attempts.append(Attempt(target.host, target.port, target.direct_tls, error))
    raise ConnectError(domain, attempts)
