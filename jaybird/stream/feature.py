"""Stream features as values (Mellium's model) and the data their negotiations hand back to the machine.

A :class:`StreamFeature` says which element selects it, which :class:`SessionState` bits it needs and
forbids, and gives pure functions for each side: the receiving side advertises it and starts a negotiation
when an element it accepts arrives; the initiating side parses the advertisement into an :class:`Offer`,
decides whether to negotiate, and starts its own negotiation. A negotiation consumes elements (and the
driver's answers) and returns a :class:`Step`: what to send, events to report, state bits gained, whether
the stream restarts. It never writes anything itself, so the machine stays one table-driven loop and a new
feature (stream management, dialback, a component handshake) is one more value in the list.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from jaybird.errors import LocalProtocolError, RemoteProtocolError, StanzaError, StreamError, StreamErrorCondition
from jaybird.jid import JID
from jaybird.sasl import ChannelBinding, Credentials
from jaybird.stream.config import InitiatingConfig, ReceivingConfig
from jaybird.stream.events import Event
from jaybird.stream.state import Role, SessionState, StreamKind
from jaybird.xml.element import Element

__all__ = [
    "Answer",
    "BindAccepted",
    "BindRefused",
    "CredentialsProvided",
    "FeatureAnswered",
    "Negotiation",
    "NegotiationContext",
    "Offer",
    "Outcome",
    "RetryAuthentication",
    "Step",
    "StreamFeature",
    "TLSEstablished",
    "always",
]


@dataclass(slots=True)
class NegotiationContext:
    """What a feature may read about the stream. Owned and updated by the machine only."""

    role: Role
    kind: StreamKind
    state: SessionState
    #: Receiving side: the served domain the peer addressed; initiating side: the domain we connect to.
    domain: str
    stream_id: str | None = None
    #: Every channel binding the driver could compute, preferred first (see XMPPStream.tls_established).
    channel_bindings: tuple[ChannelBinding, ...] = ()
    #: Initiating side: the last ``<stream:features/>`` received, for a feature that reads a sibling's
    #: advertisement (SASL reads XEP-0440's channel-binding types).
    peer_features: Element | None = None
    #: The authenticated identity (bare JID for c2s).
    identity: JID | None = None
    #: The bound full JID (c2s).
    jid: JID | None = None
    initiating_config: InitiatingConfig | None = None
    receiving_config: ReceivingConfig | None = None
    #: The peer's domain as its stream header gave it (receiving side: 'from'; initiating side: 'from' of the
    #: response header). s2s features read it: SASL EXTERNAL checks the certificate against it (XEP-0178).
    peer_domain: str | None = None
    #: s2s: the (our domain, peer domain) pairs authenticated on this stream, by SASL or dialback (XEP-0220
    #: allows several on one stream). Stanzas outside these pairs are refused (RFC 6120 §4.9.3.9).
    domain_pairs: set[tuple[str, str]] = field(default_factory=set)

    @property
    def initiating(self) -> InitiatingConfig:
        if self.initiating_config is None:
            raise LocalProtocolError("an initiating-side feature used on a receiving stream")
        return self.initiating_config

    @property
    def receiving(self) -> ReceivingConfig:
        if self.receiving_config is None:
            raise LocalProtocolError("a receiving-side feature used on an initiating stream")
        return self.receiving_config


# -- the driver's answers to request events ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TLSEstablished:
    channel_bindings: tuple[ChannelBinding, ...]


@dataclass(frozen=True, slots=True)
class CredentialsProvided:
    credentials: Credentials | None


@dataclass(frozen=True, slots=True)
class BindAccepted:
    jid: JID


@dataclass(frozen=True, slots=True)
class BindRefused:
    error: StanzaError


@dataclass(frozen=True, slots=True)
class RetryAuthentication:
    password: str | None


@dataclass(frozen=True, slots=True)
class FeatureAnswered:
    """The driver's answer to a :class:`~jaybird.stream.events.FeatureRequested`: whatever its ``serve``
    returned, for the feature's negotiation to check and use."""

    value: object


Answer = TLSEstablished | CredentialsProvided | BindAccepted | BindRefused | RetryAuthentication | FeatureAnswered


class Outcome(enum.Enum):
    CONTINUE = "continue"  # the negotiation goes on
    FINISHED = "finished"  # the feature is negotiated on this stream
    ABANDONED = "abandoned"  # this attempt is over without success; the feature may be tried again


@dataclass(frozen=True, slots=True)
class Step:
    """What one negotiation step asks the machine to do."""

    send: tuple[Element, ...] = ()
    events: tuple[Event, ...] = ()
    outcome: Outcome = Outcome.CONTINUE
    gained: SessionState = SessionState.NONE
    #: Restart the stream after sending (RFC 6120 §4.3.3): after TLS and after SASL success.
    restart: bool = False
    identity: JID | None = None
    jid: JID | None = None
    #: Waiting for the driver's answer: elements arriving meanwhile are held back until it comes.
    awaiting: bool = False
    #: This side gives up (its own policy): the machine closes the stream and reports NegotiationFailed.
    failure: str | None = None
    #: The peer went too far: after sending, the machine closes the stream with this error.
    error: StreamError | None = None


@dataclass(frozen=True, slots=True)
class Offer:
    """A feature as the receiving entity advertised it (initiating side). Features subclass it."""

    required: bool = False


class Negotiation:
    """One negotiation of one feature on one stream, for one side. Subclasses override what they handle."""

    def start(self) -> Step:
        """Initiating side: the first elements to send."""
        return Step()

    def receive(self, element: Element) -> Step:
        raise RemoteProtocolError.of(StreamErrorCondition.POLICY_VIOLATION, f"unexpected {element.name}")

    def resume(self, answer: Answer) -> Step:
        raise LocalProtocolError(f"{type(answer).__name__} is not expected now")

    def answer(self, answer: object) -> Step:
        """An answer the driver gives while the stream goes on (``XMPPStream.answer_feature``): for checks
        that run beside the stream rather than blocking it, such as a dialback verification (XEP-0220)."""
        raise LocalProtocolError(f"{type(answer).__name__} is not expected by this feature")


def always(element: Element) -> Callable[[NegotiationContext], Element]:
    """An ``advertise`` that offers the same child on every stream. Advertisements are shared and never
    changed, so the machine can serialise a set of them it has seen before only once."""

    def advertise(_ctx: NegotiationContext) -> Element:
        return element

    return advertise


def _never(_ctx: NegotiationContext) -> bool:
    return False


def _no_advertisement(_ctx: NegotiationContext) -> Element | None:
    return None


def _accepts_nothing(_element: Element) -> bool:
    return False


def _plain_offer(element: Element) -> Offer:
    return Offer(required=any(child.local == "required" for child in element.elements()))


def _wanted_if_required(_ctx: NegotiationContext, offer: Offer) -> bool:
    return offer.required


def _no_negotiation(_ctx: NegotiationContext) -> Negotiation:
    return Negotiation()


def _no_initiator(_ctx: NegotiationContext, _offer: Offer) -> Negotiation:
    return Negotiation()


@dataclass(frozen=True, slots=True)
class StreamFeature:
    """One stream feature. ``name`` is the Clark name of its child of ``<stream:features/>``."""

    name: str
    #: Bits the stream must have for the feature to be offered / negotiated.
    necessary: SessionState = SessionState.NONE
    #: Bits that rule it out (STARTTLS once SECURE, SASL once AUTHENTICATED, ...).
    prohibited: SessionState = SessionState.NONE
    # -- receiving side
    #: The child of ``<stream:features/>`` to advertise (None: not offered on this stream).
    advertise: Callable[[NegotiationContext], Element | None] = _no_advertisement
    #: Whether the initiating entity must negotiate it before the stream is ready.
    required: Callable[[NegotiationContext], bool] = _never
    #: Whether a top-level element starts this feature's negotiation.
    accepts: Callable[[Element], bool] = _accepts_nothing
    receiver: Callable[[NegotiationContext], Negotiation] = _no_negotiation
    # -- initiating side
    parse: Callable[[Element], Offer] = _plain_offer
    #: Whether we negotiate it when offered (an offer that is required but not wanted fails the stream).
    wanted: Callable[[NegotiationContext, Offer], bool] = _wanted_if_required
    #: Whether we refuse a peer that does not offer it (our policy, e.g. ``require_tls``).
    needed: Callable[[NegotiationContext], bool] = _never
    initiator: Callable[[NegotiationContext, Offer], Negotiation] = _no_initiator
    #: Its elements keep being accepted once the stream is ready, even after it was negotiated (XEP-0220
    #: dialback for further domains on one s2s stream). Such a feature keeps the stream off the fast path.
    persistent: bool = False
    # The two bit sets as ints: ``usable`` runs for every feature after every stream header, and Flag
    # arithmetic builds enum members through the enum machinery on each operation.
    _need: int = field(init=False, repr=False, compare=False)
    _forbid: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_need", self.necessary.value)
        object.__setattr__(self, "_forbid", self.prohibited.value)

    def usable(self, state: SessionState) -> bool:
        value: int = state._value_
        return value & self._need == self._need and not value & self._forbid
