"""XMPP over WebSocket (RFC 7395), server side: one aiohttp WebSocket as a c2s transport.

The ``xmpp`` subprotocol must be offered (§3.2), or the handshake is refused. Each message must be exactly
one complete element (§3.3.3): a message holding part of one, or several, ends the stream with a stream error
before the stream machine sees it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from typing import Final

import aiohttp
from aiohttp import web

from jaybird import ns
from jaybird.errors import RemoteProtocolError, StreamError, StreamErrorCondition
from jaybird.stream.framing import CLOSE_FRAME, Framing
from jaybird.xml import parser
from jaybird.xml.serializer import escape_attr

__all__ = ["SUBPROTOCOL", "WebSocketTransport", "check_message", "offers_xmpp"]

log = logging.getLogger(__name__)

SUBPROTOCOL: Final = "xmpp"
_PROBE: Final = b"<probe xmlns='urn:xmpp:jaybird:probe'/>"
_PROBE_NAME: Final = "{urn:xmpp:jaybird:probe}probe"
_STREAM_ERROR_START: Final = b'<error xmlns="' + ns.STREAM.encode()
_C = StreamErrorCondition


def offers_xmpp(request: web.Request) -> bool:
    """Whether the handshake offers the ``xmpp`` subprotocol (RFC 7395 §3.2)."""
    offered = request.headers.getall("Sec-WebSocket-Protocol", [])
    return any(name.strip() == SUBPROTOCOL for value in offered for name in value.split(","))


def check_message(data: bytes, *, max_bytes: int) -> None:
    """Raise RemoteProtocolError unless ``data`` is exactly one complete element (RFC 7395 §3.3.3).

    A probe element fed after the message comes out on its own only if nothing was left open before it.
    """
    checker = parser.XMLStreamParser(root=None, max_stanza_bytes=max_bytes)
    events = checker.feed(data)
    if len(events) > 1:
        raise RemoteProtocolError.of(_C.BAD_FORMAT, "one element per WebSocket message (RFC 7395 §3.3.3)")
    probe = checker.feed(_PROBE)
    complete = len(probe) == 1 and isinstance(probe[0], parser.ElementReceived) and probe[0].element.name == _PROBE_NAME
    if not events or not complete:
        raise RemoteProtocolError.of(_C.NOT_WELL_FORMED, "a WebSocket message must hold a complete element")


class WebSocketTransport:
    """A client stream on one WebSocket (text messages, one element each)."""

    framing: Final = Framing.WEBSOCKET

    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        peer: tuple[str, int] | None,
        secure: bool,
        ssl_object: ssl.SSLObject | None,
        max_bytes: int,
        redirect: str | None = None,
    ) -> None:
        self._ws = ws
        self._peer = peer
        self._secure = secure
        self._ssl_object = ssl_object
        self._max_bytes = max_bytes
        self._redirect = redirect
        self._pending: list[str] = []
        self._closing = False

    @property
    def peer_address(self) -> tuple[str, int] | None:
        return self._peer

    @property
    def is_secure(self) -> bool:
        return self._secure

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        return self._ssl_object

    @property
    def redirect(self) -> str | None:
        return self._redirect

    async def read(self) -> bytes:
        while True:
            msg = await self._ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                data = str(msg.data).encode()
            elif msg.type is aiohttp.WSMsgType.BINARY:  # §3.2 asks for text; the content is what matters
                data = bytes(msg.data)
            elif msg.type is aiohttp.WSMsgType.ERROR:
                raise ConnectionError(f"WebSocket error: {self._ws.exception()!r}")
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return b""
            else:
                continue
            if not data.strip():
                continue  # whitespace keepalives carry nothing
            check_message(data, max_bytes=self._max_bytes)
            return data

    def write(self, frames: Sequence[bytes]) -> None:
        for frame in frames:
            if self._redirect is not None:
                # §3.6.1: a redirect is said with <close see-other-uri=.../>, not a see-other-host stream error.
                if frame.startswith(_STREAM_ERROR_START):
                    continue
                if frame == CLOSE_FRAME:
                    frame = f"<close xmlns='{ns.FRAMING}' see-other-uri='{escape_attr(self._redirect)}'/>".encode()
            self._pending.append(frame.decode())

    async def drain(self, timeout: float) -> None:
        pending, self._pending = self._pending, []
        async with asyncio.timeout(timeout):
            for text in pending:
                if self._ws.closed:
                    raise ConnectionResetError("the WebSocket is closed")
                await self._ws.send_str(text)

    async def start_tls(self, context: ssl.SSLContext, timeout: float) -> None:
        raise RemoteProtocolError(StreamError(_C.POLICY_VIOLATION, "no STARTTLS over WebSocket (RFC 7395 §3.7)"))

    def close(self) -> None:
        self._closing = True

    async def wait_closed(self) -> None:
        if not self._ws.closed:
            try:
                async with asyncio.timeout(2.0):
                    await self._ws.close()
            except (TimeoutError, ConnectionError, OSError) as exc:
                log.debug("closing a WebSocket failed: %r", exc)
