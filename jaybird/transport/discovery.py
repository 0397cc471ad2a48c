"""XEP-0156: finding a domain's WebSocket and BOSH endpoints in ``/.well-known/host-meta``, and opening one.

Both documents are fetched (the XRD one the XEP requires and the JSON one it allows); links from the XRD come
first. Only HTTPS is used for the lookup by default (XEP-0156 §3: the answer decides where credentials go).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from dataclasses import dataclass
from typing import Final, Literal

import aiohttp
from yarl import URL

from jaybird.transport.bosh import BoshConnection, open_bosh
from jaybird.transport.errors import ConnectError, TransportError
from jaybird.transport.websocket import WebSocketConnection, open_websocket
from jaybird.xml import parser

__all__ = [
    "AlternativeConnections",
    "WebConnection",
    "discover",
    "open_web_connection",
    "parse_host_meta_json",
    "parse_host_meta_xml",
    "transport_of",
]

log = logging.getLogger(__name__)

REL_WEBSOCKET: Final = "urn:xmpp:alt-connections:websocket"
REL_BOSH: Final = "urn:xmpp:alt-connections:xbosh"
_XRD_LINK: Final = "{http://docs.oasis-open.org/ns/xri/xrd-1.0}Link"
_MAX_DOCUMENT: Final = 64 * 1024

WebConnection = WebSocketConnection | BoshConnection
WebTransport = Literal["websocket", "bosh"]


@dataclass(frozen=True, slots=True)
class AlternativeConnections:
    """The endpoints a domain announces, in its order of preference."""

    websocket: tuple[str, ...] = ()
    bosh: tuple[str, ...] = ()

    def __or__(self, other: AlternativeConnections) -> AlternativeConnections:
        return AlternativeConnections(
            tuple(dict.fromkeys(self.websocket + other.websocket)), tuple(dict.fromkeys(self.bosh + other.bosh))
        )


def _links(pairs: list[tuple[str | None, str | None]]) -> AlternativeConnections:
    ws = tuple(href for rel, href in pairs if rel == REL_WEBSOCKET and href)
    bosh = tuple(href for rel, href in pairs if rel == REL_BOSH and href)
    return AlternativeConnections(ws, bosh)


def parse_host_meta_xml(data: bytes) -> AlternativeConnections:
    """The links of an XRD host-meta document (RFC 6415). Restricted XML: no DTD, no entities."""
    if data.startswith(b"<?xml"):
        data = data[data.index(b"?>") + 2 :]
    events = parser.XMLStreamParser(root=None, max_stanza_bytes=_MAX_DOCUMENT).feed(data)
    pairs: list[tuple[str | None, str | None]] = []
    for event in events:
        if isinstance(event, parser.ElementReceived):
            pairs.extend((link.get("rel"), link.get("href")) for link in event.element.find_all(_XRD_LINK))
    return _links(pairs)


def parse_host_meta_json(data: bytes) -> AlternativeConnections:
    """The links of a JSON host-meta document (RFC 6415 appendix A)."""
    document = json.loads(data)
    links = document.get("links") if isinstance(document, dict) else None
    if not isinstance(links, list):
        return AlternativeConnections()
    pairs = [
        (link.get("rel"), link.get("href"))
        for link in links
        if isinstance(link, dict) and isinstance(link.get("rel"), str) and isinstance(link.get("href"), str)
    ]
    return _links(pairs)


async def _fetch(session: aiohttp.ClientSession, url: URL, ssl_context: ssl.SSLContext | bool) -> bytes | None:
    try:
        async with session.get(url, ssl=ssl_context, allow_redirects=True) as response:
            if response.status != 200:
                return None
            return await response.content.read(_MAX_DOCUMENT)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        log.debug("host-meta lookup %s failed: %r", url, exc)
        return None


async def discover(
    domain: str,
    *,
    base_url: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> AlternativeConnections:
    """Fetch ``<base>/.well-known/host-meta`` and ``host-meta.json``; ``base_url`` defaults to
    ``https://<domain>`` (tests point it at a local server). Unreadable documents count as empty."""
    base = URL(base_url or f"https://{domain}")
    context: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        xml_data, json_data = await asyncio.gather(
            _fetch(session, base / ".well-known" / "host-meta", context),
            _fetch(session, base / ".well-known" / "host-meta.json", context),
        )
    found = AlternativeConnections()
    if xml_data:
        try:
            found = found | parse_host_meta_xml(xml_data)
        except Exception as exc:  # a peer's broken document is a missing one, not our crash
            log.debug("unreadable host-meta from %s: %r", base, exc)
    if json_data:
        try:
            found = found | parse_host_meta_json(json_data)
        except ValueError as exc:
            log.debug("unreadable host-meta.json from %s: %r", base, exc)
    return found


def transport_of(url: str) -> WebTransport:
    scheme = URL(url).scheme
    if scheme in ("ws", "wss"):
        return "websocket"
    if scheme in ("http", "https"):
        return "bosh"
    raise ValueError(f"neither a WebSocket nor a BOSH URL: {url}")


async def open_web_connection(
    domain: str,
    *,
    url: str | None = None,
    transport: WebTransport | None = None,
    ssl_context: ssl.SSLContext | None = None,
    connect_timeout: float = 10.0,
    proxy: str | None = None,
    discovery_base: str | None = None,
) -> WebConnection:
    """Open ``url``, or the first endpoint XEP-0156 announces for ``domain`` (WebSocket before BOSH unless
    ``transport`` says which)."""
    if url is None:
        found = await discover(domain, base_url=discovery_base, ssl_context=ssl_context, timeout=connect_timeout)
        candidates = [
            *(found.websocket if transport in (None, "websocket") else ()),
            *(found.bosh if transport in (None, "bosh") else ()),
        ]
        if not candidates:
            raise ConnectError(domain, (), "no WebSocket or BOSH endpoint announced in host-meta (XEP-0156)")
        url = candidates[0]
    kind = transport_of(url)
    if transport is not None and kind != transport:
        raise TransportError(f"{url} is not a {transport} URL")
    if kind == "websocket":
        return await open_websocket(
            url, domain=domain, ssl_context=ssl_context, connect_timeout=connect_timeout, proxy=proxy
        )
    return await open_bosh(url, domain=domain, ssl_context=ssl_context, connect_timeout=connect_timeout, proxy=proxy)
