"""XMPP over WebSocket (RFC 7395), client side: the same small byte-pipe interface as the TCP connection.

One :meth:`WebSocketConnection.write` is one WebSocket text message, which is why the stream machine hands out
one frame per element in :class:`~jaybird.stream.framing.Framing` ``WEBSOCKET``. aiohttp does the HTTP upgrade,
TLS, pings (``heartbeat``) and the close handshake.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Final

import aiohttp
from yarl import URL

from jaybird.errors import LocalProtocolError
from jaybird.stream.framing import Framing
from jaybird.transport.errors import Attempt, ConnectError, TransportError
from jaybird.transport.tls import certificate_error, client_context

__all__ = ["SUBPROTOCOL", "WebSocketConnection", "open_websocket"]

log = logging.getLogger(__name__)

#: RFC 7395 §3.1: the subprotocol both ends must agree on.
SUBPROTOCOL: Final = "xmpp"


class WebSocketConnection:
    """An open WebSocket that agreed on the ``xmpp`` subprotocol."""

    framing: Final = Framing.WEBSOCKET

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, url: URL) -> None:
        self._session = session
        self._ws = ws
        self._queue: list[str] = []
        self._closed = False
        self.url = url
        obj = ws.get_extra_info("ssl_object")
        self._ssl_object = obj if isinstance(obj, ssl.SSLObject) else None

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        return self._ssl_object

    @property
    def is_secure(self) -> bool:
        return self._ssl_object is not None

    @property
    def is_closing(self) -> bool:
        return self._closed or self._ws.closed

    async def read(self) -> bytes:
        """The next message; b"" once the server closed. Pings are answered by aiohttp."""
        while True:
            msg = await self._ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                return str(msg.data).encode()
            if msg.type is aiohttp.WSMsgType.BINARY:  # RFC 7395 §3.2 asks for text; be lenient on reading
                return bytes(msg.data)
            if msg.type is aiohttp.WSMsgType.ERROR:
                raise ConnectionError(f"WebSocket error: {self._ws.exception()!r}")
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return b""

    def write(self, data: bytes) -> None:
        """Queue one message (one element, RFC 7395 §3.3.3); :meth:`drain` sends it."""
        if self.is_closing:
            raise LocalProtocolError("write on a closed WebSocket")
        self._queue.append(data.decode())

    async def drain(self) -> None:
        queue, self._queue = self._queue, []
        for text in queue:
            await self._ws.send_str(text)

    async def start_tls(self, *args: object, **kwargs: object) -> None:
        raise LocalProtocolError("a WebSocket stream has no STARTTLS (RFC 7395 §3.7: use wss://)")

    async def aclose(self, *, timeout: float = 2.0) -> None:
        """Run the WebSocket close handshake (at most ``timeout`` s), then release the HTTP session."""
        self._closed = True
        try:
            async with asyncio.timeout(timeout):
                await self._ws.close()
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            log.debug("closing the WebSocket to %s failed: %r", self.url, exc)
        finally:
            await self._session.close()

    def __repr__(self) -> str:
        return f"<WebSocketConnection {self.url}>"


async def open_websocket(
    url: str | URL,
    *,
    domain: str,
    ssl_context: ssl.SSLContext | None = None,
    connect_timeout: float = 10.0,
    heartbeat: float | None = 30.0,
    proxy: str | None = None,
) -> WebSocketConnection:
    """Open ``url`` (``wss://`` or ``ws://``) offering the ``xmpp`` subprotocol; fail unless it is selected.

    The certificate is checked against the URL's host, as a browser would. Raises :class:`ConnectError`.
    """
    target = URL(url)
    if target.scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URL: {target}")
    secure = target.scheme == "wss"
    context = (ssl_context or client_context()) if secure else None
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=connect_timeout))
    host, port = target.host or domain, target.port or (443 if secure else 80)
    try:
        ws = await session.ws_connect(
            target,
            protocols=(SUBPROTOCOL,),
            ssl=context if context is not None else True,
            heartbeat=heartbeat,
            proxy=proxy,
            autoping=True,
        )
    except aiohttp.ClientConnectorCertificateError as exc:
        await session.close()
        cert_exc = exc.certificate_error
        error: BaseException = (
            certificate_error(cert_exc, host) if isinstance(cert_exc, ssl.SSLCertVerificationError) else exc
        )
        raise ConnectError(domain, [Attempt(host, port, secure, error)]) from exc
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        await session.close()
        raise ConnectError(domain, [Attempt(host, port, secure, exc)]) from exc
    except BaseException:
        await session.close()
        raise
    if ws.protocol != SUBPROTOCOL:
        await ws.close()
        await session.close()
        raise TransportError(
            f"{target} did not select the {SUBPROTOCOL!r} WebSocket subprotocol (RFC 7395 §3.1); got {ws.protocol!r}"
        )
    return WebSocketConnection(session, ws, target)
