"""XMPP over BOSH (XEP-0124, XEP-0206), client side: HTTP long polling behind the byte-pipe interface.

The stream machine (framing ``BOSH``) writes payload frames and stream-level ``<body/>`` frames; this class owns
everything HTTP: the session id, request ids, ``wait``/``hold``/``requests``, acknowledgements, resending a
request after a network error with the same ``rid`` (XEP-0124 §14.3), and handing response bodies to
:meth:`BoshConnection.read` strictly in ``rid`` order (§7: the client processes responses in request order).
Key sequencing (§15) is on by default: the session id alone does not protect a session over plain HTTP (or
behind a proxy that ends TLS), a chain of SHA-1 keys does. Requests go concurrently up to the manager's
``requests`` over a pool of HTTP connections (``persistent=False`` closes each connection after its response,
for intermediaries that mishandle keep-alive); HTTP/1.1 pipelining on one connection is not used (aiohttp does
not offer it, and XEP-0124 §18 asks clients not to rely on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import ssl
from typing import Final

import aiohttp
from yarl import URL

from jaybird.errors import JaybirdError, LocalProtocolError
from jaybird.stream.framing import BODY, XBOSH_VERSION, Framing, body_frame_attrs, is_body_frame, wrap_body
from jaybird.transport.errors import Attempt, ConnectError
from jaybird.transport.tls import certificate_error, client_context
from jaybird.xml import parser
from jaybird.xml.element import Element

__all__ = ["BoshConnection", "BoshError", "KeySequence", "open_bosh"]

log = logging.getLogger(__name__)

_HEADERS: Final = {"Content-Type": "text/xml; charset=utf-8"}
#: XEP-0124 §14.1: a random first rid, low enough that it never passes 2**53 - 1 during the session.
_RID_LIMIT: Final = 2**32
#: Keys per chain (§15.1); a new chain is announced with the last key of the old one.
_KEY_CHAIN: Final = 256


class KeySequence:
    """XEP-0124 §15: K(1) = SHA-1(seed), K(n) = SHA-1(K(n-1)) in hex; used from K(n) down to K(1)."""

    def __init__(self, length: int = _KEY_CHAIN) -> None:
        self._length = length
        self._keys: list[str] = []

    @staticmethod
    def chain(seed: str, length: int) -> list[str]:
        keys = [hashlib.sha1(seed.encode()).hexdigest()]
        while len(keys) < length:
            keys.append(hashlib.sha1(keys[-1].encode()).hexdigest())
        return keys

    def first(self) -> dict[str, str]:
        """Attributes of the session creation request: ``newkey`` only (§15.2)."""
        self._keys = self.chain(secrets.token_hex(20), self._length)
        return {"newkey": self._keys.pop()}

    def next(self) -> dict[str, str]:
        """``key`` for the next request, with a ``newkey`` starting a fresh chain when this one runs out (§15.3)."""
        key = self._keys.pop()
        if self._keys:
            return {"key": key}
        self._keys = self.chain(secrets.token_hex(20), self._length)
        return {"key": key, "newkey": self._keys.pop()}


_END: Final = b""


class BoshError(JaybirdError, ConnectionError):
    """The connection manager refused a request (HTTP error status) or the session broke for good."""


class BoshConnection:
    """One BOSH session with a connection manager at ``url``."""

    framing: Final = Framing.BOSH

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: URL,
        *,
        domain: str,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | None = None,
        wait: int = 60,
        hold: int = 1,
        max_retries: int = 3,
        retry_delay: float = 0.5,
        first_rid: int | None = None,
        keys: bool = True,
    ) -> None:
        self._session = session
        self._keys = KeySequence() if keys else None
        self.url = url
        self.domain = domain
        self._ssl = ssl_context if ssl_context is not None else True
        self._proxy = proxy
        self._wait, self._hold = wait, hold
        self._max_retries, self._retry_delay = max_retries, retry_delay
        self._next_rid = first_rid if first_rid is not None else secrets.randbelow(_RID_LIMIT) + 1
        self._first_rid = self._next_rid
        #: The connection manager's session id, once the creation response arrived.
        self.sid: str | None = None
        #: How many requests the manager lets us keep open (``requests``, XEP-0124 §7.1); 1 until it says.
        self.requests = 1
        #: The highest rid the manager acknowledged (its ``ack`` attribute, §9.2).
        self.acked: int | None = None
        self._attrs: dict[str, str] = {}
        self._payload: list[bytes] = []
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._responses: dict[int, bytes] = {}
        self._deliver_rid = self._next_rid
        self._incoming: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._terminate_rid: int | None = None  # the rid of our terminate request
        self._ended = False  # no more requests: the session is over
        self._closed = False

    # -- the byte-pipe interface ----------------------------------------------------------------------------
    @property
    def is_secure(self) -> bool:
        return self.url.scheme == "https"

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        return None  # one session spans many HTTP connections: there is no single TLS channel to bind to

    @property
    def is_closing(self) -> bool:
        return self._closed or self._ended

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def read(self) -> bytes:
        """The next response body, in rid order; b"" once the session ended. Raises :class:`BoshError`."""
        if self._closed:
            return _END
        item = await self._incoming.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def write(self, data: bytes) -> None:
        """Queue a frame from the stream machine; :meth:`drain` sends what is queued as one body."""
        if self._ended or self._closed:
            raise LocalProtocolError("write on an ended BOSH session")
        if is_body_frame(data):
            self._attrs.update(body_frame_attrs(data))
        else:
            self._payload.append(data)

    async def drain(self) -> None:
        self._pump()

    async def start_tls(self, *args: object, **kwargs: object) -> None:
        raise LocalProtocolError("a BOSH session has no STARTTLS: use an https:// URL")

    async def aclose(self, *, timeout: float = 2.0) -> None:
        """Stop every request and release the HTTP session (send a terminate first through the machine)."""
        self._closed = self._ended = True
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._in_flight.clear()
        await self._session.close()
        self._incoming.put_nowait(_END)

    # -- requests -----------------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Send what is queued, and keep ``hold`` requests waiting at the manager for it to answer with."""
        while not self._ended:
            queued = bool(self._payload or self._attrs)
            if self.sid is None:
                if self._in_flight or not queued:
                    return  # nothing more until the session exists (§7.1)
            else:
                idle = not queued and (self._terminate_rid is not None or len(self._in_flight) >= self._hold)
                if idle or len(self._in_flight) >= self.requests:
                    return
            self._send()

    def _send(self) -> None:
        rid = self._next_rid
        self._next_rid += 1
        attrs = self._attrs
        self._attrs = {}
        payload, self._payload = self._payload, []
        attrs["rid"] = str(rid)
        if self.sid is None:  # session creation, XEP-0124 §7.1 and XEP-0206 §4
            attrs.update(content=_HEADERS["Content-Type"], hold=str(self._hold), wait=str(self._wait), ver="1.6")
            attrs["ack"] = "1"  # §9.1: ask for acknowledgements
            attrs.setdefault(XBOSH_VERSION, "1.0")
            if self._keys is not None:
                attrs.update(self._keys.first())
        else:
            attrs["sid"] = self.sid
            if self._keys is not None:
                attrs.update(self._keys.next())
            if self._deliver_rid < rid:  # §9.1: an earlier response is still missing
                attrs["ack"] = str(self._deliver_rid - 1)
        if attrs.get("type") == "terminate":
            self._terminate_rid = rid
        body = wrap_body(attrs, payload)
        task = asyncio.create_task(self._request(rid, body), name=f"jaybird bosh rid {rid}")
        self._in_flight[rid] = task

    async def _request(self, rid: int, body: bytes) -> None:
        timeout = aiohttp.ClientTimeout(total=self._wait + 30)
        failure: BaseException | None = None
        try:
            for attempt in range(self._max_retries + 1):
                try:
                    async with self._session.post(
                        self.url, data=body, headers=_HEADERS, timeout=timeout, ssl=self._ssl, proxy=self._proxy
                    ) as response:
                        data = await response.read()
                        status = response.status
                except aiohttp.ClientConnectorCertificateError as exc:
                    # Not a network hiccup: resending cannot help, and the caller must learn why.
                    self._fail(self._certificate_failure(exc))
                    return
                except aiohttp.ClientHttpProxyError as exc:
                    # The proxy refused the tunnel (403, 407): an answer, not a lost request.
                    self._fail(BoshError(f"the HTTP proxy refused to connect: {exc.status} {exc.message}"))
                    return
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    # §14.3: the request may or may not have arrived; the same rid makes resending safe.
                    log.debug("BOSH request rid %d failed (attempt %d): %r", rid, attempt + 1, exc)
                    failure = exc
                    await asyncio.sleep(self._retry_delay * (attempt + 1))
                    continue
                if status != 200:
                    self._fail(BoshError(f"the connection manager answered HTTP {status} (XEP-0124 §17.1)"))
                    return
                self._on_response(rid, data)
                return
            self._fail(BoshError(f"BOSH request failed {self._max_retries + 1} times: {failure!r}"))
        finally:
            self._in_flight.pop(rid, None)
            if not self._ended:
                self._pump()

    def _certificate_failure(self, exc: aiohttp.ClientConnectorCertificateError) -> ConnectError:
        """The refused certificate as :func:`open_websocket` reports it: a :class:`ConnectError` whose attempt
        carries the :class:`~jaybird.transport.errors.CertificateError` naming the URL's host."""
        host, port = self.url.host or self.domain, self.url.port or 443
        cert_exc = exc.certificate_error
        error = certificate_error(cert_exc, host) if isinstance(cert_exc, ssl.SSLCertVerificationError) else exc
        return ConnectError(self.domain, [Attempt(host, port, True, error)])

    def _on_response(self, rid: int, data: bytes) -> None:
        if data.startswith(b"<?xml"):  # the machine reads bodies as fragments, where a declaration is misplaced
            data = data[data.index(b"?>") + 2 :].lstrip()
        try:
            body = _parse_body(data)
        except ValueError as exc:
            self._fail(BoshError(str(exc)))
            return
        attrs = body.attrs
        if self.sid is None and rid == self._first_rid:
            sid = attrs.get("sid")
            if sid is None and attrs.get("type") != "terminate":
                self._fail(BoshError("the session creation response has no sid"))
                return
            self.sid = sid
            requests = attrs.get("requests")
            self.requests = max(1, int(requests)) if requests and requests.isdigit() else self._hold + 1
            hold = attrs.get("hold")
            if hold and hold.isdigit():
                self._hold = min(self._hold, int(hold))
        ack = attrs.get("ack")
        if ack is not None and ack.isdigit():
            self.acked = int(ack)
        self._responses[rid] = data
        # §13: the manager ends the session with a terminate body, or by answering ours.
        if attrs.get("type") == "terminate" or rid == self._terminate_rid:
            self._ended = True
        self._deliver()

    def _deliver(self) -> None:
        while self._deliver_rid in self._responses:
            self._incoming.put_nowait(self._responses.pop(self._deliver_rid))
            self._deliver_rid += 1
        if self._ended and not self._responses:
            self._incoming.put_nowait(_END)

    def _fail(self, error: BaseException) -> None:
        if self._ended:
            return
        self._ended = True
        self._incoming.put_nowait(error)

    def __repr__(self) -> str:
        return f"<BoshConnection {self.url} sid={self.sid}>"


def _parse_body(data: bytes) -> Element:
    try:
        events = parser.XMLStreamParser(root=None).feed(data)
    except Exception as exc:
        raise ValueError(f"unreadable BOSH body: {exc}") from exc
    if len(events) != 1 or not isinstance(events[0], parser.ElementReceived) or events[0].element.name != BODY:
        raise ValueError(f"the response is not one BOSH <body/>: {data[:80]!r}")
    return events[0].element


async def open_bosh(
    url: str | URL,
    *,
    domain: str,
    ssl_context: ssl.SSLContext | None = None,
    connect_timeout: float = 10.0,
    proxy: str | None = None,
    wait: int = 60,
    hold: int = 1,
    keys: bool = True,
    persistent: bool = True,
) -> BoshConnection:
    """A BOSH session object for ``url``; the session itself is created by the stream machine's first body.

    aiohttp tunnels ``https://`` through an HTTP ``proxy`` with CONNECT, so TLS stays end to end.
    """
    target = URL(url)
    if target.scheme not in ("http", "https"):
        raise ValueError(f"not a BOSH URL: {target}")
    context = (ssl_context or client_context()) if target.scheme == "https" else None
    # §7.1: up to `requests` connections at once; without keep-alive each closes after its response.
    connector = aiohttp.TCPConnector(limit_per_host=hold + 2, force_close=not persistent)
    session = aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(connect=connect_timeout, sock_connect=connect_timeout)
    )
    if target.host is None:
        await session.close()
        raise ConnectError(domain, [Attempt(str(target), 0, False, ValueError("no host"))])
    return BoshConnection(
        session, target, domain=domain, ssl_context=context, proxy=proxy, wait=wait, hold=hold, keys=keys
    )
