"""A library-side s2s peer for wire tests: the initiating :class:`XMPPStream` over a plain asyncio connection,
STARTTLS included, so a test can authenticate (SASL EXTERNAL or dialback) and then misbehave, and read the
bytes the server sends back."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jaybird.jid import JID
from jaybird.stream import events as ev
from jaybird.stream.config import InitiatingConfig
from jaybird.stream.feature import StreamFeature
from jaybird.stream.machine import XMPPStream
from jaybird.stream.state import StreamKind
from jaybird.xml.element import Element


@dataclass
class RawPeer:
    """``local`` speaking to ``remote`` on ``port``; ``cert``/``key`` are presented in the TLS handshake."""

    local: str
    remote: str
    port: int
    features: tuple[StreamFeature, ...]
    cert: Path | None = None
    key: Path | None = None
    events: list[ev.Event] = field(default_factory=list)
    received: bytes = b""

    async def __aenter__(self) -> RawPeer:
        self.stream = XMPPStream(
            InitiatingConfig(JID(self.local), to=self.remote, kind=StreamKind.S2S, require_tls=True), self.features
        )
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._flush()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    def _flush(self) -> None:
        data = self.stream.data_to_send()
        if data:
            self.writer.write(data)

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if self.cert is not None and self.key is not None:
            context.load_cert_chain(self.cert, self.key)
        return context

    async def negotiate(self, until: Sequence[type[ev.Event]] = (ev.Ready,), timeout: float = 5.0) -> ev.Event:
        """Feed the server's bytes to the machine (doing STARTTLS when asked) until an event of ``until``."""
        async with asyncio.timeout(timeout):
            while True:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError(f"closed by the server; events: {self.events!r}")
                self.received += data
                pending = list(self.stream.receive_data(data))
                while pending:
                    event = pending.pop(0)
                    self.events.append(event)
                    if isinstance(event, ev.TLSRequested):
                        self._flush()
                        await self.writer.drain()
                        await self.writer.start_tls(self._context(), server_hostname=self.remote)
                        pending += self.stream.tls_established(None)
                    if isinstance(event, tuple(until)):
                        self._flush()
                        return event
                self._flush()

    def send(self, stanza: Element) -> None:
        self.stream.send(stanza)
        self._flush()

    async def read_to_end(self, timeout: float = 5.0) -> bytes:
        """Everything the server sends until it closes the connection."""
        got = b""
        async with asyncio.timeout(timeout):
            while chunk := await self.reader.read(65536):
                got += chunk
        self.received += got
        return got
