"""The XMPP stream machine: one sans-I/O class for both roles and every kind of stream.

Bytes in (:meth:`XMPPStream.receive_data`) give events out; calls in (:meth:`~XMPPStream.send`,
:meth:`~XMPPStream.close`, the answers to request events) give bytes out (:meth:`~XMPPStream.data_to_send`).
Negotiation is table-driven over the :class:`~jaybird.stream.feature.StreamFeature` values it is given: the
machine knows phases (header, features, negotiating, ready, closing), never a particular feature.

Conventions (h11's):

* The peer's fault: the machine queues the stream error and ``</stream:stream>`` (preceded by our header when
  none was sent yet, RFC 6120 §4.9.1.2), the stream is over, and the call raises :class:`StreamViolation`
  (a :class:`~jaybird.errors.RemoteProtocolError`) carrying the error sent and the events that came before it.
  Flush ``data_to_send()`` and close the connection.
* Our fault (misuse of the API, such as :meth:`~XMPPStream.send` before :class:`Ready`): the call raises
  :class:`~jaybird.errors.LocalProtocolError` and nothing changes.
* Our own policy refusing the peer (TLS required but not offered, no usable SASL mechanism): a
  :class:`NegotiationFailed` event, and our close tag is queued.
* The peer closing (``</stream:stream>``): :class:`StreamClosed`, and our own close tag is queued once (§4.4).
  :attr:`~XMPPStream.closed` tells the driver that both sides are done.

A stream restart (after TLS, after SASL success; §4.3.3) resets the parser. Bytes that arrived in the same
read after the element causing a restart belong to no document and are dropped: the peer must wait for the
restart before sending (§4.3.3), and after ``<proceed/>`` the bytes are TLS records the driver handles.

Once ready, the per-stanza path is one dictionary-free branch per element in, one serialisation per
element out; outgoing data is kept as a list of ``bytes`` joined in :meth:`~XMPPStream.data_to_send`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Sequence

from jaybird import ns
from jaybird.errors import (
    LocalProtocolError,
    RemoteProtocolError,
    StanzaError,
    StreamError,
    StreamErrorCondition,
)
from jaybird.jid import JID
from jaybird.sasl import ChannelBinding, Credentials
from jaybird.stream.config import InitiatingConfig, ReceivingConfig
from jaybird.stream.events import (
    Event,
    FeaturesReceived,
    NegotiationFailed,
    Ready,
    StanzaReceived,
    StreamClosed,
    StreamErrorReceived,
    StreamViolation,
)
from jaybird.stream.feature import (
    Answer,
    BindAccepted,
    BindRefused,
    CredentialsProvided,
    Negotiation,
    NegotiationContext,
    Offer,
    Outcome,
    RetryAuthentication,
    Step,
    StreamFeature,
    TLSEstablished,
)
from jaybird.stream.features import default_features
from jaybird.stream.features.handshake import component_stanza_check
from jaybird.stream.features.s2s import s2s_stanza_check
from jaybird.stream.framing import (
    CLOSE_FRAME,
    TERMINATE_FRAME,
    XBOSH_RESTART,
    XBOSH_VERSION,
    Framing,
    Unframer,
    body_frame,
    open_frame,
)
from jaybird.stream.header import CLOSE_TAG, build_header, check_header
from jaybird.stream.state import Role, SessionState, StreamKind
from jaybird.xml import parser
from jaybird.xml.element import Element
from jaybird.xml.serializer import serialize

__all__ = ["Phase", "XMPPStream"]

_STREAM_ERROR = ns.clark(ns.STREAM, "error")
_STREAM_FEATURES = ns.clark(ns.STREAM, "features")
#: Serialised ``<stream:features/>`` by serialisation context and the ids of its children (see _advertise).
_FEATURES_TEXT: dict[tuple[object, ...], tuple[tuple[Element, ...], bytes]] = {}
_FEATURES_TEXT_MAX = 128
_STARTTLS = ns.clark(ns.TLS, "starttls")
_ElementReceived = parser.ElementReceived
_C = StreamErrorCondition


def _bindings(value: ChannelBinding | Sequence[ChannelBinding] | None) -> tuple[ChannelBinding, ...]:
    """Channel bindings in the driver's order of preference. The initiating side binds to the first one (the
    driver puts ``tls-unique`` first on TLS 1.2, RFC 5802 §6's default, and ``tls-server-end-point`` on TLS 1.3);
    the receiving side accepts whichever of them the client names."""
    if value is None:
        return ()
    if isinstance(value, ChannelBinding):
        return (value,)
    return tuple(value)


class Phase(enum.Enum):
    HEADER = "header"  # waiting for the peer's stream header
    FEATURES = "features"  # initiating side: waiting for <stream:features/>
    NEGOTIATING = "negotiating"
    READY = "ready"
    CLOSING = "closing"  # our close tag is sent; waiting for the peer's
    CLOSED = "closed"  # both sides closed, or a stream error ended the stream


class XMPPStream:
    """One XML stream, from either end. The role follows from the configuration's type."""

    # Slots: a server holds one stream per connection, and a dict of ~30 attributes costs more than a KB each.
    __slots__ = (
        "_active",
        "_advertised",
        "_awaiting",
        "_close_data",
        "_content_ns",
        "_ctx",
        "_default_ns",
        "_fast",
        "_features",
        "_framing",
        "_header_sent",
        "_headers_sent",
        "_held",
        "_kind",
        "_lang",
        "_late",
        "_negotiated",
        "_negotiations",
        "_offers",
        "_out",
        "_parser",
        "_peer_closed",
        "_peer_from",
        "_phase",
        "_prefixes",
        "_restarted",
        "_role",
        "_stanza_check",
        "_unframer",
        "_version",
        "_we_closed",
    )

    def __init__(
        self,
        config: InitiatingConfig | ReceivingConfig,
        features: Sequence[StreamFeature] | None = None,
        *,
        max_stanza_bytes: int = 256 * 1024,
        channel_binding: ChannelBinding | Sequence[ChannelBinding] | None = None,
        framing: Framing = Framing.TCP,
    ) -> None:
        """``channel_binding``: for a connection that is TLS from the first byte (``already_secure``, XEP-0368),
        the binding(s) the driver read off the handshake; after STARTTLS they come with :meth:`tls_established`.

        ``framing``: what carries the stream (:mod:`jaybird.stream.framing`). WebSocket and BOSH streams hand
        out one frame per element with :meth:`frames_to_send`."""
        kind = config.kind
        self._features = tuple(default_features(kind) if features is None else features)
        self._kind = kind
        self._content_ns = kind.content_ns
        self._prefixes = dict(kind.prefixes)
        self._framing = framing
        # A frame is a document of its own: it declares every namespace, the stanza namespace included.
        self._default_ns: str | None = self._content_ns
        self._unframer: Unframer | None = None
        self._close_data = CLOSE_TAG
        if framing.framed:
            self._default_ns = None
            self._prefixes = {}
            self._unframer = Unframer(framing, initiating=isinstance(config, InitiatingConfig))
            self._close_data = CLOSE_FRAME if framing is Framing.WEBSOCKET else TERMINATE_FRAME
        self._headers_sent = 0
        self._parser = parser.XMLStreamParser(framing.parser_root, max_stanza_bytes=max_stanza_bytes)
        self._out: list[bytes] = []
        state = SessionState.S2S if kind is StreamKind.S2S else SessionState.NONE
        if config.already_secure:
            state |= SessionState.SECURE
        if isinstance(config, InitiatingConfig):
            self._role = Role.INITIATING
            self._ctx = NegotiationContext(Role.INITIATING, kind, state, config.domain, initiating_config=config)
        else:
            self._role = Role.RECEIVING
            state |= SessionState.RECEIVED
            self._ctx = NegotiationContext(Role.RECEIVING, kind, state, "", receiving_config=config)
        bindings = _bindings(channel_binding)
        if bindings:
            if not config.already_secure:
                raise LocalProtocolError("a channel binding needs a connection that is already secure")
            self._ctx.channel_bindings = bindings
        self._phase = Phase.HEADER
        self._header_sent = False
        self._we_closed = False
        self._peer_closed = False
        self._restarted = False
        self._peer_from: str | None = None  # receiving side: the initiator's 'from', echoed as 'to' (§4.7.2)
        self._lang: str | None = None
        # per stream (cleared on restart)
        self._advertised: list[StreamFeature] = []
        self._offers: list[tuple[StreamFeature, Offer]] = []
        self._negotiated: set[str] = set()
        self._negotiations: dict[str, Negotiation] = {}
        self._active: tuple[StreamFeature, Negotiation] | None = None
        self._awaiting = False
        self._held: list[Element] = []
        # receiving side, once ready: optional features the client may still use before its first stanza
        self._late: list[StreamFeature] = []
        self._fast = False
        # XEP-0114 §3: component headers carry no version, and the stream no <stream:features/>.
        self._version: str | None = None if kind is StreamKind.COMPONENT else "1.0"
        # Receiving side of a component stream, once ready: the check every stanza must pass (XEP-0114 §3).
        self._stanza_check: Callable[[Element], None] | None = None
        if self._role is Role.INITIATING:
            self._send_header()

    # -- properties ------------------------------------------------------------------------------------------
    @property
    def role(self) -> Role:
        return self._role

    @property
    def kind(self) -> StreamKind:
        return self._kind

    @property
    def framing(self) -> Framing:
        return self._framing

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def state(self) -> SessionState:
        return self._ctx.state

    @property
    def stream_id(self) -> str | None:
        return self._ctx.stream_id

    @property
    def identity(self) -> JID | None:
        """The authenticated identity (bare JID on c2s), once SASL succeeded."""
        return self._ctx.identity

    @property
    def jid(self) -> JID | None:
        """The bound full JID (c2s)."""
        return self._ctx.jid

    @property
    def closed(self) -> bool:
        """Nothing more will be sent or received: close the connection after flushing ``data_to_send()``."""
        return self._phase is Phase.CLOSED

    @property
    def holding_parser(self) -> bool:
        """Whether the XML parser is allocated; see :meth:`release_parser`."""
        return self._parser.holding_parser

    def release_parser(self) -> bool:
        """Free the XML parser's memory while the peer is idle (between stanzas only); the next bytes received
        build it again. True when released. For a long-idle connection: an expat parser holds ~20 KB."""
        return self._parser.release()

    def discard_parser(self) -> None:
        """The connection is over: free the XML parser now rather than at the next garbage collection."""
        self._parser.close()

    # -- bytes in, events out -----------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the transport (after TLS decryption); return what happened."""
        out: list[Event] = []
        if self._phase is Phase.CLOSED:
            return out
        try:
            fed = self._parser.feed(data)
            parsed: Iterable[parser.ParserEvent] = fed
            if self._unframer is not None:
                parsed = self._unframe(fed, self._unframer)
            fast = self._fast
            check = self._stanza_check
            for event in parsed:
                if fast and event.__class__ is _ElementReceived:
                    element = event.element
                    if element.name != _STREAM_ERROR:
                        if check is not None:
                            check(element)
                        out.append(StanzaReceived(element))
                        continue
                self._handle(event, out)
                if self._restarted or self.closed:
                    break
                fast = self._fast
                check = self._stanza_check
        except RemoteProtocolError as e:
            raise self._violation(e.error, out) from e
        finally:
            self._restarted = False
        return out

    def data_to_send(self) -> bytes:
        """Everything queued for the transport since the last call (TCP framing)."""
        if self._unframer is not None:
            raise LocalProtocolError("a framed stream hands out frames: use frames_to_send()")
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def frames_to_send(self) -> list[bytes]:
        """What is queued, one element (or header, or close) per item: a WebSocket message each (RFC 7395
        §3.3.3), BOSH payload or :func:`~jaybird.stream.framing.body_frame` signals. On TCP, one chunk."""
        out = self._out
        if not out:
            return []
        if self._unframer is None:
            return [self.data_to_send()]
        frames = out.copy()
        out.clear()
        return frames

    # -- calls in ---------------------------------------------------------------------------------------------
    def send(self, stanza: Element) -> None:
        """Queue a stanza (internally in ``jabber:client``; written in the stream's namespace)."""
        if self._phase is not Phase.READY:
            raise LocalProtocolError(f"cannot send a stanza while the stream is {self._phase.value}")
        self._out.append(
            serialize(
                stanza, default_ns=self._default_ns, content_ns=self._content_ns, prefixes=self._prefixes
            ).encode()
        )

    def close(self, error: StreamError | None = None) -> None:
        """Close our side of the stream (§4.4), after a stream error if given (§4.9). Idempotent."""
        if self._we_closed or self._phase is Phase.CLOSED:
            return
        if self._role is Role.RECEIVING and not self._header_sent:
            self._send_header()  # §4.9.1.2: a stream error still needs a stream to travel on
        if error is not None:
            self._write(error.to_element())
        self._out.append(self._close_data)
        self._we_closed = True
        self._awaiting = False
        self._active = None
        self._phase = Phase.CLOSED if self._peer_closed or error is not None else Phase.CLOSING

    def tls_established(self, channel_binding: ChannelBinding | Sequence[ChannelBinding] | None) -> list[Event]:
        """The TLS handshake asked for by :class:`TLSRequested` is done: restart the stream over it."""
        self._check_waiting(TLSEstablished)
        bindings = _bindings(channel_binding)
        self._ctx.channel_bindings = bindings
        return self._resume(TLSEstablished(bindings))

    def provide_credentials(self, credentials: Credentials | None) -> list[Event]:
        """Answer :class:`CredentialsRequired` (None: no such account)."""
        return self._resume(CredentialsProvided(credentials))

    def complete_bind(self, jid: JID) -> list[Event]:
        """Answer :class:`BindRequested` with the full JID the server core chose."""
        return self._resume(BindAccepted(jid))

    def fail_bind(self, error: StanzaError) -> list[Event]:
        """Refuse :class:`BindRequested` (``conflict``, ``not-allowed``, ``bad-request``...; §7.7.2)."""
        return self._resume(BindRefused(error))

    def retry_authentication(self, password: str | None = None) -> list[Event]:
        """After a retryable :class:`AuthenticationFailed` (initiating side): try again, maybe another password."""
        return self._resume(RetryAuthentication(password))

    def answer(self, answer: Answer) -> list[Event]:
        """Answer the request event the stream is waiting on with any :data:`Answer`: above all a
        :class:`~jaybird.stream.events.FeatureRequested` from a feature outside the core, with
        ``FeatureAnswered(value)``. The named methods above do this for the core's own features."""
        if isinstance(answer, TLSEstablished):
            return self.tls_established(answer.channel_bindings)
        return self._resume(answer)

    def answer_feature(self, name: str, answer: object) -> list[Event]:
        """Hand ``answer`` to the negotiation of the feature ``name`` while the stream goes on (it does not
        wait for it): a dialback verification's verdict (XEP-0220), for instance. Raises LocalProtocolError
        when that feature has no negotiation on this stream."""
        negotiation = self._negotiations.get(name)
        feature = next((f for f in self._features if f.name == name), None)
        if negotiation is None or feature is None:
            raise LocalProtocolError(f"no negotiation of {name} on this stream")
        out: list[Event] = []
        if self._phase is Phase.CLOSED:
            return out
        try:
            step = negotiation.answer(answer)
            for element in step.send:
                self._write(element)
            out.extend(step.events)
            ctx = self._ctx
            if step.identity is not None and ctx.identity is None:
                ctx.identity = step.identity
            ctx.state |= step.gained
            if step.error is not None:
                raise RemoteProtocolError(step.error)
            if step.failure is not None:
                self._give_up(step.failure, out)
            elif step.outcome is Outcome.FINISHED and self._phase is Phase.NEGOTIATING and self._active is None:
                self._negotiated.add(name)
                self._after_feature(out)
        except RemoteProtocolError as e:
            raise self._violation(e.error, out) from e
        return out

    # -- internals: writing ---------------------------------------------------------------------------------------
    def _write(self, element: Element) -> None:
        self._out.append(
            serialize(
                element, default_ns=self._default_ns, content_ns=self._content_ns, prefixes=self._prefixes
            ).encode()
        )

    def _send_header(self) -> None:
        ctx = self._ctx
        if self._role is Role.INITIATING:
            config = ctx.initiating
            # §4.7.1: our address goes in 'from' only over a protected stream (it would leak otherwise).
            secure = bool(ctx.state & SessionState.SECURE)
            sender = str(config.jid.bare if self._kind is StreamKind.C2S else config.jid.domain)
            # s2s: the originating domain is always named (RFC 6120 §4.7.1; dialback keys need it, XEP-0220 §2.1).
            named = secure or self._kind is StreamKind.S2S
            header = build_header(
                self._kind,
                from_=sender if named else None,
                to=ctx.domain,
                stream_id=None,
                lang=config.lang,
                version=self._version,
            )
        else:
            config_r = ctx.receiving
            ctx.stream_id = config_r.stream_id()  # §4.3.3: a new id after every restart
            header = build_header(
                self._kind,
                from_=ctx.domain or None,
                to=self._peer_from,
                stream_id=ctx.stream_id,
                lang=self._lang or config_r.default_lang,
                version=self._version,
            )
        self._out.append(header if self._unframer is None else self._framed_header())
        self._header_sent = True
        self._headers_sent += 1

    def _framed_header(self) -> bytes:
        """``<open/>`` (RFC 7395 §3.3) or the BOSH session / restart body (XEP-0206 §4, §5)."""
        ctx = self._ctx
        initiating = self._role is Role.INITIATING
        lang = ctx.initiating.lang if initiating else self._lang or ctx.receiving.default_lang
        from_: str | None = None if initiating else ctx.domain or None
        to: str | None = ctx.domain if initiating else self._peer_from
        if self._framing is Framing.WEBSOCKET:
            return open_frame(from_=from_, to=to, stream_id=ctx.stream_id, lang=lang)
        attrs: dict[str, str] = {}
        if initiating:
            attrs["to"] = ctx.domain
            if self._headers_sent:
                attrs[XBOSH_RESTART] = "true"
        if self._headers_sent == 0 or not initiating:
            attrs[XBOSH_VERSION] = "1.0"
        if from_ is not None:
            attrs["from"] = from_
        if not initiating and ctx.stream_id is not None:
            attrs["authid"] = ctx.stream_id
        if lang:
            attrs[ns.clark(ns.XML, "lang")] = lang
        return body_frame(attrs)

    # -- internals: reading ---------------------------------------------------------------------------------------
    def _handle(self, event: parser.ParserEvent, out: list[Event]) -> None:
        if isinstance(event, _ElementReceived):
            self._on_element(event.element, out)
        elif isinstance(event, parser.StreamOpened):
            self._on_header(event, out)
        else:
            self._on_peer_close(out)

    def _on_header(self, opened: parser.StreamOpened, out: list[Event]) -> None:
        ctx = self._ctx
        if self._role is Role.RECEIVING:
            config = ctx.receiving
            to = opened.attrs.get("to")
            ctx.domain = to if to in config.domains else ""
            self._peer_from = opened.attrs.get("from")
            ctx.peer_domain = self._peer_from
            self._lang = opened.attrs.get(ns.clark(ns.XML, "lang"))
            header = check_header(opened, self._kind, namespaces=self._unframer is None)
            if not ctx.domain:
                raise RemoteProtocolError.of(_C.HOST_UNKNOWN, "this server does not serve that domain")
            self._send_header()
            out.append(header)
            if config.see_other_host is not None:
                self.close(StreamError(_C.SEE_OTHER_HOST, other_host=config.see_other_host))
                return
            self._advertise()
            self._phase = Phase.NEGOTIATING
            self._after_feature(out)
        else:
            header = check_header(opened, self._kind, namespaces=self._unframer is None)
            if header.stream_id is None:
                raise RemoteProtocolError.of(_C.BAD_FORMAT, "the response header needs an id (§4.7.3)")
            ctx.stream_id = header.stream_id
            ctx.peer_domain = header.from_
            out.append(header)
            if self._kind is StreamKind.COMPONENT:
                # XEP-0114 §3: no <stream:features/> follows; every feature in the table is on offer, required.
                self._offers = [(feature, Offer(required=True)) for feature in self._features]
                self._phase = Phase.NEGOTIATING
                self._after_feature(out)
                return
            self._phase = Phase.FEATURES

    def _unframe(self, parsed: list[parser.ParserEvent], unframer: Unframer) -> Iterator[parser.ParserEvent]:
        # Lazily: whether a BOSH body is a header depends on the phase the events before it left.
        for event in parsed:
            yield from unframer.translate(event, awaiting_header=self._phase is Phase.HEADER)

    def _on_peer_close(self, out: list[Event]) -> None:
        out.append(StreamClosed())
        self._peer_closed = True
        if not self._we_closed:
            if self._framing is not Framing.BOSH:  # a BOSH terminate ends the session for both sides
                self._out.append(self._close_data)
            self._we_closed = True
        self._phase = Phase.CLOSED

    def _on_element(self, element: Element, out: list[Event]) -> None:
        if element.name == _STREAM_ERROR:
            # §4.9.1.1: the peer closes after its error; we answer its close tag when it comes.
            out.append(StreamErrorReceived(StreamError.from_element(element)))
            return
        phase = self._phase
        if phase is Phase.NEGOTIATING:
            self._on_negotiation_element(element, out)
        elif phase is Phase.READY:
            self._on_late_element(element, out)
        elif phase is Phase.FEATURES:
            if element.name != _STREAM_FEATURES:
                raise RemoteProtocolError.of(_C.BAD_FORMAT, f"expected <stream:features/>, got {element.name}")
            self._on_features(element, out)
        elif phase is Phase.CLOSING and self._ctx.state & SessionState.READY:
            # §4.4: after our close tag the peer may still finish sending what it had; deliver it.
            if self._stanza_check is not None:
                self._stanza_check(element)
            out.append(StanzaReceived(element))

    def _on_negotiation_element(self, element: Element, out: list[Event]) -> None:
        if self._awaiting:
            self._held.append(element)
            return
        if self._active is not None:
            feature, negotiation = self._active
            self._apply(feature, negotiation, negotiation.receive(element), out)
            return
        if self._role is Role.RECEIVING:
            for feature in self._advertised:
                if feature.name not in self._negotiated and feature.accepts(element):
                    negotiation = self._negotiation(feature)
                    self._apply(feature, negotiation, negotiation.receive(element), out)
                    return
            # §4.9.3.12: data before the stream is authenticated / negotiation is complete.
            raise RemoteProtocolError.of(_C.NOT_AUTHORIZED, "stream negotiation is not complete")
        raise RemoteProtocolError.of(_C.POLICY_VIOLATION, f"unexpected {element.name} during negotiation")

    def _on_late_element(self, element: Element, out: list[Event]) -> None:
        if self._active is not None:
            feature, negotiation = self._active
            self._apply(feature, negotiation, negotiation.receive(element), out)
            return
        for feature in self._late:
            if feature.accepts(element):
                negotiation = self._negotiation(feature)
                self._apply(feature, negotiation, negotiation.receive(element), out)
                return
        # The first stanza ends the window for optional features: from here on, the fast path only (unless a
        # persistent feature, such as s2s dialback, still listens).
        self._late = [feature for feature in self._late if feature.persistent]
        self._fast = not self._late
        if self._stanza_check is not None:
            self._stanza_check(element)
        out.append(StanzaReceived(element))

    def _negotiation(self, feature: StreamFeature) -> Negotiation:
        negotiation = self._negotiations.get(feature.name)
        if negotiation is None:
            negotiation = feature.receiver(self._ctx)
            self._negotiations[feature.name] = negotiation
        return negotiation

    # -- internals: negotiation ------------------------------------------------------------------------------------
    def _advertise(self) -> None:
        ctx = self._ctx
        if self._kind is StreamKind.COMPONENT:
            # XEP-0114 §3: no <stream:features/>; every usable feature is implicitly on offer.
            self._advertised = [feature for feature in self._features if feature.usable(ctx.state)]
            return
        children: list[Element] = []
        self._advertised = []
        for feature in self._features:
            if not feature.usable(ctx.state):
                continue
            child = feature.advertise(ctx)
            if child is not None:
                children.append(child)
                self._advertised.append(feature)
        # §4.3.2: after every stream header, even when empty. Features hand out shared advertisements, so the
        # same few sets recur on every stream: their text is kept, keyed by the identity of the children (the
        # cache holds them, so an id cannot be reused while its entry lives).
        key = (self._default_ns, self._content_ns, *self._prefixes.items(), *map(id, children))
        cached = _FEATURES_TEXT.get(key)
        if cached is None:
            if len(_FEATURES_TEXT) >= _FEATURES_TEXT_MAX:
                _FEATURES_TEXT.clear()
            features = Element(_STREAM_FEATURES, children=children)
            text = serialize(
                features, default_ns=self._default_ns, content_ns=self._content_ns, prefixes=self._prefixes
            )
            cached = _FEATURES_TEXT[key] = (tuple(children), text.encode())
        self._out.append(cached[1])

    def _on_features(self, element: Element, out: list[Event]) -> None:
        names = tuple(child.name for child in element.elements())
        self._ctx.peer_features = element
        self._offers = []
        for feature in self._features:
            if feature.name == _STARTTLS and self._unframer is not None:
                # RFC 7395 §3.7 / XEP-0206 §8: TLS belongs to the HTTP layer; an offer on the stream cannot be
                # taken up, even marked required (Prosody 0.12's mod_bosh sends one), so it is ignored.
                continue
            child = element.find(feature.name)
            if child is not None:
                self._offers.append((feature, feature.parse(child)))
        out.append(FeaturesReceived(names))
        self._phase = Phase.NEGOTIATING
        self._after_feature(out)

    def _apply(self, feature: StreamFeature, negotiation: Negotiation, step: Step, out: list[Event]) -> None:
        ctx = self._ctx
        for element in step.send:
            self._write(element)
        out.extend(step.events)
        if step.identity is not None:
            ctx.identity = step.identity
        if step.jid is not None:
            ctx.jid = step.jid
        if step.gained:  # (most steps gain nothing; a Flag operation builds a new member each time)
            ctx.state |= step.gained
        if step.error is not None:
            raise RemoteProtocolError(step.error)
        if step.failure is not None:
            out.append(NegotiationFailed(step.failure))
            self.close()
            return
        self._awaiting = step.awaiting
        if step.outcome is Outcome.CONTINUE:
            self._active = (feature, negotiation)
        else:
            self._active = None
            if step.outcome is Outcome.FINISHED:
                self._negotiated.add(feature.name)
            if step.restart:
                self._restart()
                return
            self._after_feature(out)
        if not self._awaiting and self._held:
            held, self._held = self._held, []
            for element in held:
                if self._phase is Phase.CLOSED or self._restarted:
                    break
                self._on_element(element, out)

    def _after_feature(self, out: list[Event]) -> None:
        """Between two negotiations: pick the next feature (initiating) or see whether we are ready."""
        if self._phase is not Phase.NEGOTIATING:
            return
        ctx = self._ctx
        if self._role is Role.RECEIVING:
            for feature in self._advertised:
                if feature.name not in self._negotiated and feature.required(ctx):
                    return
            if self._kind is StreamKind.S2S and not ctx.state & SessionState.AUTHENTICATED:
                return  # s2s: never ready unauthenticated; stanzas meanwhile are not-authorized (§4.9.3.12)
            self._late = [f for f in self._advertised if f.name not in self._negotiated]
            self._become_ready(out)
            return
        # Table order decides: a feature we need but the peer lacks fails only if reached before anything we
        # can start (no SASL offer before TLS is fine; no STARTTLS offer at all is not, with require_tls).
        offers = dict((feature.name, offer) for feature, offer in self._offers)
        for feature in self._features:
            if feature.name in self._negotiated or not feature.usable(ctx.state):
                continue
            offer = offers.get(feature.name)
            if offer is None:
                if feature.needed(ctx):
                    self._give_up(f"the peer does not offer {feature.name}, which this side requires", out)
                    return
                continue
            if feature.wanted(ctx, offer):
                negotiation = feature.initiator(ctx, offer)
                self._negotiations[feature.name] = negotiation
                self._apply(feature, negotiation, negotiation.start(), out)
                return
            if offer.required:
                self._give_up(f"the peer requires {feature.name}, which this side cannot negotiate", out)
                return
        if self._kind is StreamKind.S2S and not ctx.state & SessionState.AUTHENTICATED and not self._negotiated:
            # Neither SASL EXTERNAL nor dialback could start (a verification-only stream did negotiate dialback).
            self._give_up("the peer offers no way to authenticate that this side can use", out)
            return
        self._become_ready(out)

    def _become_ready(self, out: list[Event]) -> None:
        ctx = self._ctx
        ctx.state |= SessionState.READY
        self._phase = Phase.READY
        self._late += [f for f in self._features if f.persistent and f not in self._late and f.usable(ctx.state)]
        self._fast = not self._late and self._active is None
        if self._role is Role.RECEIVING and self._kind is StreamKind.COMPONENT:
            self._stanza_check = component_stanza_check(ctx.domain)
        elif self._kind is StreamKind.S2S:
            self._stanza_check = s2s_stanza_check(ctx)
        out.append(Ready(ctx.jid or ctx.identity))

    def _give_up(self, reason: str, out: list[Event]) -> None:
        out.append(NegotiationFailed(reason))
        self.close()

    def _restart(self) -> None:
        self._parser.reset()
        self._restarted = True
        self._phase = Phase.HEADER
        self._header_sent = False
        self._advertised = []
        self._offers = []
        self._negotiated = set()
        self._negotiations = {}
        self._active = None
        self._awaiting = False
        self._held = []
        if self._role is Role.INITIATING:
            self._send_header()

    def _check_waiting(self, answer: type[Answer]) -> None:
        if self._active is None or not self._awaiting:
            raise LocalProtocolError(f"nothing is waiting for {answer.__name__}")

    def _resume(self, answer: Answer) -> list[Event]:
        self._check_waiting(type(answer))
        assert self._active is not None
        feature, negotiation = self._active
        out: list[Event] = []
        try:
            self._apply(feature, negotiation, negotiation.resume(answer), out)
        except RemoteProtocolError as e:
            raise self._violation(e.error, out) from e
        finally:
            self._restarted = False
        return out

    def _violation(self, error: StreamError, events: list[Event]) -> StreamViolation:
        """The peer broke the protocol: send the error, close, and hand the exception to raise."""
        if not self._we_closed and self._phase is not Phase.CLOSED:
            self.close(error)
        self._phase = Phase.CLOSED
        return StreamViolation(error, events)
