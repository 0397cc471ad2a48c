"""The HTTP listener: BOSH (XEP-0124, XEP-0206), WebSocket (RFC 7395) and XEP-0156 host-meta, on aiohttp.

Both HTTP transports carry a client stream into the same connection driver as TCP
(:class:`jaybird.server.c2s.C2SConnection`): one parser, one negotiation, one session type.
"""

from jaybird.server.http.app import HTTPListener

__all__ = ["HTTPListener"]
