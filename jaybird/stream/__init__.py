"""Stream negotiation, sans-I/O, for both roles: :class:`XMPPStream` and the values it is made of.

See :mod:`jaybird.stream.machine` for the conventions (errors, closing, restarts) and
:mod:`jaybird.stream.feature` for how a stream feature is described.
"""

from __future__ import annotations

from jaybird.stream.config import InitiatingConfig, ReceivingConfig
from jaybird.stream.events import (
    Authenticated,
    AuthenticationFailed,
    BindFailed,
    BindRequested,
    Bound,
    CredentialsRequired,
    Event,
    FeaturesReceived,
    NegotiationFailed,
    Ready,
    StanzaReceived,
    StreamClosed,
    StreamErrorReceived,
    StreamOpened,
    StreamViolation,
    TLSRequested,
)
from jaybird.stream.feature import Negotiation, NegotiationContext, Offer, Outcome, Step, StreamFeature
from jaybird.stream.features import default_features
from jaybird.stream.machine import Phase, XMPPStream
from jaybird.stream.state import Role, SessionState, StreamKind

__all__ = [
    "Authenticated",
    "AuthenticationFailed",
    "BindFailed",
    "BindRequested",
    "Bound",
    "CredentialsRequired",
    "Event",
    "FeaturesReceived",
    "InitiatingConfig",
    "Negotiation",
    "NegotiationContext",
    "NegotiationFailed",
    "Offer",
    "Outcome",
    "Phase",
    "Ready",
    "ReceivingConfig",
    "Role",
    "SessionState",
    "StanzaReceived",
    "Step",
    "StreamClosed",
    "StreamErrorReceived",
    "StreamFeature",
    "StreamKind",
    "StreamOpened",
    "StreamViolation",
    "TLSRequested",
    "XMPPStream",
    "default_features",
]
