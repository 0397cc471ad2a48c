"""Session state bits, roles and stream kinds: the values stream features are keyed on."""

from __future__ import annotations

import enum
from types import MappingProxyType
from typing import Final

from jaybird import ns

__all__ = ["Role", "SessionState", "StreamKind"]


class SessionState(enum.Flag):
    """What a stream has achieved so far. A feature needs some bits and forbids others (Mellium's model).

    ``RECEIVED`` and ``S2S`` describe the stream rather than progress: they are set from the start, so a
    feature can be limited to one role or one kind of stream with the same mechanism.
    """

    NONE = 0
    SECURE = enum.auto()  # TLS is in place (STARTTLS done, or direct TLS)
    AUTHENTICATED = enum.auto()  # SASL (or dialback, or a component handshake) succeeded
    BOUND = enum.auto()  # a resource is bound (c2s)
    READY = enum.auto()  # stanzas may flow
    RECEIVED = enum.auto()  # this side is the receiving entity
    S2S = enum.auto()  # a server-to-server stream


class Role(enum.Enum):
    """Which end of the stream this machine is (RFC 6120 §4.1: initiating / receiving entity)."""

    INITIATING = "initiating"
    RECEIVING = "receiving"


class StreamKind(enum.Enum):
    """The kind of stream, which decides its content namespace and the prefixes of its header."""

    C2S = "c2s"
    S2S = "s2s"
    COMPONENT = "component"

    @property
    def content_ns(self) -> str:
        """The default namespace the stream declares for its stanzas (RFC 6120 §4.8.2, XEP-0114)."""
        return _CONTENT_NS[self]

    @property
    def prefixes(self) -> MappingProxyType[str, str]:
        """Namespace -> prefix declared on the stream header (``stream:``; also ``db:`` on s2s, XEP-0220)."""
        return _PREFIXES[self]


_CONTENT_NS: Final = {
    StreamKind.C2S: ns.CLIENT,
    StreamKind.S2S: ns.SERVER,
    StreamKind.COMPONENT: ns.COMPONENT_ACCEPT,
}
_PREFIXES: Final = {
    StreamKind.C2S: MappingProxyType({ns.STREAM: "stream"}),
    StreamKind.S2S: MappingProxyType({ns.STREAM: "stream", ns.DIALBACK: "db"}),
    StreamKind.COMPONENT: MappingProxyType({ns.STREAM: "stream"}),
}
