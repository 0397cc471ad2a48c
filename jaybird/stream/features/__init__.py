"""The built-in stream features and the default table for each kind of stream."""

from __future__ import annotations

from jaybird.stream.feature import StreamFeature
from jaybird.stream.features.bind import BIND
from jaybird.stream.features.handshake import HANDSHAKE
from jaybird.stream.features.sasl import SASL, SASL_CHANNEL_BINDING
from jaybird.stream.features.session import LEGACY_SESSION
from jaybird.stream.features.starttls import STARTTLS
from jaybird.stream.state import StreamKind

__all__ = ["BIND", "HANDSHAKE", "LEGACY_SESSION", "SASL", "SASL_CHANNEL_BINDING", "STARTTLS", "default_features"]


def default_features(kind: StreamKind) -> tuple[StreamFeature, ...]:
    """The features negotiated in this order (RFC 6120 §4.3.2 leaves order to dependencies)."""
    if kind is StreamKind.C2S:
        return (STARTTLS, SASL, SASL_CHANNEL_BINDING, BIND, LEGACY_SESSION)
    if kind is StreamKind.S2S:
        return (STARTTLS, SASL)
    return (HANDSHAKE,)  # XEP-0114
