"""XEP-0156 §3: ``/.well-known/host-meta`` (XRD) and ``host-meta.json`` (JRD) naming our BOSH and WebSocket URLs."""

from __future__ import annotations

import json
from typing import Final

from jaybird.xml.serializer import escape_attr

__all__ = ["REL_BOSH", "REL_WEBSOCKET", "endpoints", "host_meta_json", "host_meta_xml"]

REL_WEBSOCKET: Final = "urn:xmpp:alt-connections:websocket"
REL_BOSH: Final = "urn:xmpp:alt-connections:xbosh"
_XRD_NS: Final = "http://docs.oasis-open.org/ns/xri/xrd-1.0"


def endpoints(*, secure: bool, authority: str, bosh_path: str, websocket_path: str) -> list[tuple[str, str]]:
    """(rel, href) pairs for the endpoints as reached through ``authority`` (the request's Host)."""
    http, ws = ("https", "wss") if secure else ("http", "ws")
    return [(REL_WEBSOCKET, f"{ws}://{authority}{websocket_path}"), (REL_BOSH, f"{http}://{authority}{bosh_path}")]


def host_meta_xml(links: list[tuple[str, str]]) -> bytes:
    body = "".join(f"<Link rel='{escape_attr(rel)}' href='{escape_attr(href)}'/>" for rel, href in links)
    return f"<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='{_XRD_NS}'>{body}</XRD>\n".encode()


def host_meta_json(links: list[tuple[str, str]]) -> bytes:
    return json.dumps({"links": [{"rel": rel, "href": href} for rel, href in links]}).encode()
