"""Events the stream machine reports: frozen values named as facts that already happened.

Some events are requests the driver must answer through a method of the machine:
:class:`TLSRequested` -> ``tls_established()``, :class:`CredentialsRequired` -> ``provide_credentials()``,
:class:`BindRequested` -> ``complete_bind()`` / ``fail_bind()``, and on the initiating side
:class:`AuthenticationFailed` with ``retry_allowed`` -> ``retry_authentication()`` (or ``close()``).
A feature contributed from outside the core asks through :class:`FeatureRequested`, which carries its own
``serve`` function: the driver awaits it and hands the value back with
``answer(FeatureAnswered(value))``, knowing nothing of what the feature does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from jaybird.errors import AuthenticationError, RemoteProtocolError, StanzaError, StreamError
from jaybird.jid import JID
from jaybird.xml.element import Element

__all__ = [
    "Authenticated",
    "AuthenticationFailed",
    "BidiRequested",
    "BindFailed",
    "BindRequested",
    "Bound",
    "CredentialsRequired",
    "DialbackRequested",
    "DialbackResult",
    "DialbackVerified",
    "Event",
    "FeatureRequested",
    "FeaturesReceived",
    "NegotiationFailed",
    "Ready",
    "ServeContext",
    "StanzaReceived",
    "StreamClosed",
    "StreamErrorReceived",
    "StreamOpened",
    "StreamViolation",
    "TLSRequested",
]


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer's stream header arrived (after every restart too). RFC 6120 §4.7."""

    stream_id: str | None
    from_: str | None
    to: str | None
    version: str | None
    lang: str | None


@dataclass(frozen=True, slots=True)
class FeaturesReceived:
    """Initiating side: ``<stream:features/>`` arrived; the Clark names of its children, in order."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TLSRequested:
    """STARTTLS was agreed: flush ``data_to_send()``, run the TLS handshake, then call ``tls_established()``."""


@dataclass(frozen=True, slots=True)
class CredentialsRequired:
    """Receiving side: look up the stored credentials of ``username`` and call ``provide_credentials()``."""

    username: str
    mechanism: str


@dataclass(frozen=True, slots=True)
class Authenticated:
    """SASL succeeded. ``identity`` is the authenticated JID (bare, c2s) or domain; the stream restarted."""

    identity: JID
    mechanism: str


@dataclass(frozen=True, slots=True)
class AuthenticationFailed:
    """A SASL attempt failed. ``retry_allowed``: the stream stays open for another attempt."""

    error: AuthenticationError
    retry_allowed: bool


@dataclass(frozen=True, slots=True)
class BindRequested:
    """Receiving side: the client asks for ``resource`` (None: pick one); answer with ``complete_bind()``."""

    resource: str | None


@dataclass(frozen=True, slots=True)
class Bound:
    """A resource is bound to the stream (RFC 6120 §7)."""

    jid: JID


@dataclass(frozen=True, slots=True)
class BindFailed:
    """Initiating side: the server refused to bind a resource."""

    error: StanzaError


@dataclass(frozen=True, slots=True)
class ServeContext:
    """What only the driver knows, handed to :attr:`FeatureRequested.serve`."""

    #: The peer's IP address (no port); None when the transport cannot tell.
    peer_address: str | None = None


@dataclass(frozen=True, slots=True)
class FeatureRequested:
    """A feature from outside the core (a server module's, e.g. XEP-0077 registration before login) needs work
    only the driver can do: storage, policy, I/O. Await ``serve(ServeContext(...))`` and hand its value back
    with ``XMPPStream.answer(FeatureAnswered(value))``. The feature built ``serve`` around its own state, so
    the driver routes the request without knowing what it is; an exception from ``serve`` is a bug the driver
    reports as an internal error. ``request`` is the feature's own description of it, for logs and tests."""

    feature: str
    request: object
    serve: Callable[[ServeContext], Awaitable[object]] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Ready:
    """Negotiation is complete: stanzas may be sent and will be received. ``jid``: our peer's or our address."""

    jid: JID | None


@dataclass(frozen=True, slots=True)
class StanzaReceived:
    """A top-level element arrived on a ready stream (in ``jabber:client`` whatever the stream's namespace)."""

    element: Element


@dataclass(frozen=True, slots=True)
class StreamErrorReceived:
    """The peer sent a stream error (RFC 6120 §4.9); it will close the stream. ``see-other-host`` carries
    the host to reconnect to in ``error.other_host`` (§4.9.3.19)."""

    error: StreamError


@dataclass(frozen=True, slots=True)
class NegotiationFailed:
    """This side gave up negotiating (its own policy: TLS required but not offered, no usable SASL
    mechanism, ...). The machine has closed its half of the stream."""

    reason: str


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """The peer closed its stream (``</stream:stream>``, RFC 6120 §4.4); our close tag is queued."""


@dataclass(frozen=True, slots=True)
class DialbackRequested:
    """Receiving side of s2s: the peer asks to send as ``originating`` to our ``receiving`` domain with
    ``key`` (XEP-0220 §2.1.1). Verify it (connect back to the authoritative server with ``db:verify``, §2.1.2)
    and answer with ``answer_feature(DIALBACK_NAME, DialbackVerdict(...))``."""

    originating: str
    receiving: str
    key: str
    stream_id: str


@dataclass(frozen=True, slots=True)
class DialbackResult:
    """Initiating side of s2s: the peer's verdict on our ``db:result`` for (``local``, ``remote``)."""

    local: str
    remote: str
    valid: bool


@dataclass(frozen=True, slots=True)
class DialbackVerified:
    """Verifier side of s2s: the authoritative server's answer to our ``db:verify`` (XEP-0220 §2.1.3)."""

    authoritative: str
    receiving: str
    stream_id: str
    valid: bool


@dataclass(frozen=True, slots=True)
class BidiRequested:
    """Receiving side of s2s: the peer asked for a bidirectional stream (XEP-0288): stanzas for it may go
    back over this stream."""


Event = (
    StreamOpened
    | FeaturesReceived
    | TLSRequested
    | CredentialsRequired
    | Authenticated
    | AuthenticationFailed
    | BindRequested
    | Bound
    | BindFailed
    | FeatureRequested
    | Ready
    | StanzaReceived
    | StreamErrorReceived
    | NegotiationFailed
    | StreamClosed
    | DialbackRequested
    | DialbackResult
    | DialbackVerified
    | BidiRequested
)


class StreamViolation(RemoteProtocolError):
    """The peer broke the protocol. The stream error in ``error`` and our close tag are already queued in
    ``data_to_send()``. ``events`` are those the same input produced before the violation: handle them
    before closing the connection (a stanza that arrived whole just before garbage is still a stanza)."""

    def __init__(self, error: StreamError, events: Sequence[Event] = ()) -> None:
        super().__init__(error)
        self.events: tuple[Event, ...] = tuple(events)
