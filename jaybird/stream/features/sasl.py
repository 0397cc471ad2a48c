"""SASL authentication (RFC 6120 §6) for both sides; the mechanisms themselves live in :mod:`jaybird.sasl`.

Payloads travel base64-encoded (§6.4.2); a single ``=`` stands for data of zero length and an empty element
for no data. The receiving side tolerates ``max_auth_attempts`` failures on one stream (§6.4.5 asks for 2 to
5 retries); the next failure is answered with ``<failure/>`` and then the ``policy-violation`` stream error
(§4.9.3.18), our choice since §6.4.5 leaves the end of the stream to the receiving entity.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable
from dataclasses import dataclass

from jaybird import ns
from jaybird.errors import (
    AuthenticationError,
    LocalProtocolError,
    SASLCondition,
    StreamError,
    StreamErrorCondition,
)
from jaybird.jid import JID, JIDError
from jaybird.sasl import (
    Challenge,
    ChannelBinding,
    ClientMechanism,
    NeedCredentials,
    ServerMechanism,
    ServerStep,
    Success,
    client_mechanisms,
    select_client_mechanism,
    server_mechanism,
    server_mechanism_names,
)
from jaybird.stream.events import Authenticated, AuthenticationFailed, CredentialsRequired
from jaybird.stream.feature import (
    Answer,
    CredentialsProvided,
    Negotiation,
    NegotiationContext,
    Offer,
    Outcome,
    RetryAuthentication,
    Step,
    StreamFeature,
)
from jaybird.stream.state import SessionState, StreamKind
from jaybird.xml.element import Element

__all__ = [
    "SASL",
    "SASL_CB",
    "SASL_CHANNEL_BINDING",
    "MechanismsOffer",
    "choose_channel_binding",
    "decode_payload",
    "encode_payload",
]

_MECHANISMS = ns.clark(ns.SASL, "mechanisms")
_MECHANISM = ns.clark(ns.SASL, "mechanism")
_AUTH = ns.clark(ns.SASL, "auth")
_CHALLENGE = ns.clark(ns.SASL, "challenge")
_RESPONSE = ns.clark(ns.SASL, "response")
_ABORT = ns.clark(ns.SASL, "abort")
_SUCCESS = ns.clark(ns.SASL, "success")
_FAILURE = ns.clark(ns.SASL, "failure")
#: XEP-0440: the channel-binding types a server supports, advertised beside the mechanisms.
SASL_CB = "urn:xmpp:sasl-cb:0"
_SASL_CB = ns.clark(SASL_CB, "sasl-channel-binding")
_CB_TYPE = ns.clark(SASL_CB, "channel-binding")
#: The client's preference among types the server advertised (RFC 9266 first; tls-unique is weakest on TLS 1.3).
_CB_PREFERENCE = ("tls-exporter", "tls-server-end-point", "tls-unique")
_Cond = SASLCondition
#: Failures after which the initiating side may try again with other credentials.
_RETRYABLE = frozenset({_Cond.NOT_AUTHORIZED, _Cond.TEMPORARY_AUTH_FAILURE, _Cond.CREDENTIALS_EXPIRED})


_StepCall = Callable[[], ServerStep]


class _BadEncoding(Exception):
    pass


def encode_payload(data: bytes | None) -> str:
    """§6.4.2: base64, ``=`` for zero-length data, nothing for no data."""
    if data is None:
        return ""
    return base64.b64encode(data).decode("ascii") if data else "="


def decode_payload(text: str, *, absent: bytes | None) -> bytes | None:
    """Decode an element's base64 text; ``absent`` is what an empty element means. Raises _BadEncoding."""
    text = "".join(text.split())  # line breaks inside base64 are harmless
    if not text:
        return absent
    if text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise _BadEncoding(str(e)) from e


def _element(name: str, data: bytes | None, attrs: dict[str, str] | None = None) -> Element:
    return Element(name, attrs, text=encode_payload(data))


# -- receiving side -------------------------------------------------------------------------------------------
def _policy(ctx: NegotiationContext) -> tuple[bool, tuple[str, ...], bool]:
    """(secure, channel-binding types, PLAIN allowed without TLS) for the SASL package's offer/factory."""
    config = ctx.receiving
    secure = SessionState.SECURE in ctx.state
    types = tuple(binding.type for binding in ctx.channel_bindings)
    return secure, types, "PLAIN" in config.mechanisms_plain


def _offered(ctx: NegotiationContext) -> tuple[str, ...]:
    config = ctx.receiving
    secure, binding_types, insecure_plain = _policy(ctx)
    names = config.mechanisms_secure if secure else config.mechanisms_plain
    return _supported(tuple(names), secure, binding_types, insecure_plain)


# The few combinations a server's configuration yields, computed once (every login asks two or three times).
@functools.lru_cache(maxsize=64)
def _supported(
    names: tuple[str, ...], secure: bool, binding_types: tuple[str, ...], insecure_plain: bool
) -> tuple[str, ...]:
    supported = set(
        server_mechanism_names(secure=secure, channel_binding_types=binding_types, allow_insecure_plain=insecure_plain)
    )
    return tuple(name for name in names if name in supported)


def _advertise(ctx: NegotiationContext) -> Element | None:
    # §5.3.1: while TLS is mandatory-to-negotiate, only STARTTLS is advertised.
    if ctx.receiving.tls_required and not ctx.state & SessionState.SECURE:
        return None
    names = _offered(ctx)
    return _mechanisms_element(names) if names else None


# Advertisements are shared, never changed: the machine serialises a recurring set of them only once.
@functools.lru_cache(maxsize=64)
def _mechanisms_element(names: tuple[str, ...]) -> Element:
    el = Element(_MECHANISMS)
    for name in names:
        el.add(_MECHANISM, text=name)
    return el


@functools.lru_cache(maxsize=64)
def _binding_types_element(types: tuple[str, ...]) -> Element:
    el = Element(_SASL_CB)
    for binding_type in types:
        el.add(_CB_TYPE, {"type": binding_type})
    return el


def choose_channel_binding(bindings: tuple[ChannelBinding, ...], features: Element | None) -> ChannelBinding | None:
    """The binding to use for -PLUS. With XEP-0440 the server names the types it can check: take the best of ours
    among them (none in common: no binding, so the client honestly says ``n``). Without it, the driver's default
    (its first): ``tls-unique`` where the connection has one, RFC 5802 §6's default, and the only type that the
    servers offering -PLUS without XEP-0440 check (Prosody 0.12 on TLS 1.2, ejabberd 23.01 on TLS 1.3 too)."""
    if not bindings:
        return None
    advertised = features.find(_SASL_CB) if features is not None else None
    if advertised is None:
        return bindings[0]
    types = {child.get("type") for child in advertised.find_all(_CB_TYPE)}
    for preferred in _CB_PREFERENCE:
        for binding in bindings:
            if binding.type == preferred and preferred in types:
                return binding
    return next((binding for binding in bindings if binding.type in types), None)


def _advertise_binding_types(ctx: NegotiationContext) -> Element | None:
    # XEP-0440 §2: beside the mechanisms, while SASL is on offer over TLS.
    if not ctx.channel_bindings or _advertise(ctx) is None:
        return None
    return _binding_types_element(tuple(binding.type for binding in ctx.channel_bindings))


def _accepts(element: Element) -> bool:
    return element.name in (_AUTH, _RESPONSE, _ABORT)


class _Receiving(Negotiation):
    """One object per stream: it counts failed attempts across retries."""

    def __init__(self, ctx: NegotiationContext) -> None:
        self._ctx = ctx
        self._offered = _offered(ctx)
        self._failures = 0
        self._mechanism: ServerMechanism | None = None
        self._awaiting = False

    def receive(self, element: Element) -> Step:
        if element.name == _AUTH:
            if self._mechanism is not None:
                return self._fail(AuthenticationError(_Cond.MALFORMED_REQUEST, "an exchange is in progress"))
            name = element.get("mechanism", "")
            if name not in self._offered:
                return self._fail(AuthenticationError(_Cond.INVALID_MECHANISM))
            try:
                initial = decode_payload(element.text, absent=None)
            except _BadEncoding:
                return self._fail(AuthenticationError(_Cond.INCORRECT_ENCODING))
            secure, _types, insecure_plain = _policy(self._ctx)
            # With no -PLUS offered, a client's "y" flag (RFC 5802 §6) is honest, not a downgrade: only hand
            # the binding over when we advertised channel binding.
            plus = any(offered.endswith("-PLUS") for offered in self._offered)
            try:
                mechanism = server_mechanism(
                    name,
                    channel_binding=self._ctx.channel_bindings if plus else None,
                    secure=secure,
                    allow_insecure_plain=insecure_plain,
                )
            except AuthenticationError as e:
                return self._fail(e)
            self._mechanism = mechanism
            return self._step(lambda: mechanism.start(initial))
        if element.name == _ABORT:
            return self._fail(AuthenticationError(_Cond.ABORTED))  # §6.4.4
        current = self._mechanism
        if current is None or self._awaiting:
            return self._fail(AuthenticationError(_Cond.MALFORMED_REQUEST, "no challenge to respond to"))
        try:
            data = decode_payload(element.text, absent=b"")
        except _BadEncoding:
            return self._fail(AuthenticationError(_Cond.INCORRECT_ENCODING))
        assert data is not None
        return self._step(lambda: current.respond(data))

    def resume(self, answer: Answer) -> Step:
        mechanism = self._mechanism
        if not isinstance(answer, CredentialsProvided) or mechanism is None or not self._awaiting:
            raise LocalProtocolError(f"{type(answer).__name__} is not expected now")
        self._awaiting = False
        return self._step(lambda: mechanism.provide(answer.credentials))

    def _step(self, call: _StepCall) -> Step:
        mechanism = self._mechanism
        assert mechanism is not None
        try:
            step = call()
        except AuthenticationError as e:
            return self._fail(e)
        if isinstance(step, Challenge):
            return Step(send=(_element(_CHALLENGE, step.data),))
        if isinstance(step, NeedCredentials):
            self._awaiting = True
            return Step(events=(CredentialsRequired(step.username, mechanism.name),), awaiting=True)
        return self._succeed(mechanism, step)

    def _succeed(self, mechanism: ServerMechanism, success: Success) -> Step:
        try:
            if self._ctx.kind is StreamKind.C2S:
                identity = JID.from_parts(success.username, self._ctx.domain)
            else:
                identity = JID(success.username)
            authzid = JID(success.authzid) if success.authzid else None
        except JIDError:
            return self._fail(AuthenticationError(_Cond.NOT_AUTHORIZED))
        if authzid is not None and authzid != identity:
            # Acting for another entity is not something we allow (§6.3.8).
            return self._fail(AuthenticationError(_Cond.INVALID_AUTHZID))
        self._mechanism = None
        return Step(
            send=(_element(_SUCCESS, success.additional),),
            events=(Authenticated(identity, mechanism.name),),
            outcome=Outcome.FINISHED,
            gained=SessionState.AUTHENTICATED,
            restart=True,  # §6.4.6
            identity=identity,
        )

    def _fail(self, error: AuthenticationError) -> Step:
        self._mechanism = None
        self._awaiting = False
        self._failures += 1
        retry = self._failures < self._ctx.receiving.max_auth_attempts
        stream_error = None
        if not retry:
            stream_error = StreamError(StreamErrorCondition.POLICY_VIOLATION, "too many failed authentications")
        return Step(
            send=(error.to_element(),),
            events=(AuthenticationFailed(error, retry),),
            outcome=Outcome.ABANDONED,
            error=stream_error,
        )


# -- initiating side ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MechanismsOffer(Offer):
    mechanisms: tuple[str, ...] = ()


def _parse(element: Element) -> Offer:
    names = tuple(child.text.strip() for child in element.find_all(_MECHANISM))
    return MechanismsOffer(required=True, mechanisms=names)  # §6.3.1: SASL is mandatory-to-negotiate


class _Initiating(Negotiation):
    def __init__(self, ctx: NegotiationContext, offer: Offer) -> None:
        self._ctx = ctx
        self._offered = offer.mechanisms if isinstance(offer, MechanismsOffer) else ()
        self._password = ctx.initiating.password
        self._mechanism: ClientMechanism | None = None
        self._aborted: AuthenticationError | None = None

    def start(self) -> Step:
        config = self._ctx.initiating
        secure = bool(self._ctx.state & SessionState.SECURE)
        binding = choose_channel_binding(self._ctx.channel_bindings, self._ctx.peer_features)
        if config.mechanisms is not None:
            candidates = list(config.mechanisms(binding))
        else:
            username = config.jid.local if self._ctx.kind is StreamKind.C2S else config.jid.domain
            if username is None or self._password is None:
                return Step(failure="SASL needs a username and a password")
            try:
                candidates = client_mechanisms(
                    username=username, password=self._password, authzid=config.authzid, channel_binding=binding
                )
            except ValueError as e:
                return Step(failure=f"unusable credentials: {e}")
        try:
            # PLAIN would reveal the password to anyone on the path: only over TLS, or when opted in.
            mechanism = select_client_mechanism(self._offered, candidates, allow_plain=secure or config.allow_plain)
        except AuthenticationError as e:
            offered = ", ".join(self._offered) or "none"
            return Step(failure=f"no acceptable SASL mechanism ({e}; the server offers: {offered})")
        self._mechanism = mechanism
        self._aborted = None
        attrs = {"mechanism": mechanism.name}
        return Step(send=(_element(_AUTH, mechanism.initial_response(), attrs),))

    def receive(self, element: Element) -> Step:
        mechanism = self._mechanism
        if element.name == _FAILURE:
            return self._failed(AuthenticationError.from_element(element))
        if mechanism is None:
            return super().receive(element)
        if element.name == _CHALLENGE:
            try:
                data = decode_payload(element.text, absent=b"")
                assert data is not None
                return Step(send=(_element(_RESPONSE, mechanism.challenge(data)),))
            except (_BadEncoding, AuthenticationError) as e:
                # §6.4.4: abort, then the server answers <failure><aborted/>.
                self._aborted = AuthenticationError(_Cond.MALFORMED_REQUEST, f"bad challenge: {e}")
                return Step(send=(Element(_ABORT),))
        if element.name == _SUCCESS:
            try:
                mechanism.success(decode_payload(element.text, absent=None))
            except (_BadEncoding, AuthenticationError) as e:
                return Step(failure=f"the server did not prove it knows our credentials: {e}")
            config = self._ctx.initiating
            identity = config.jid.bare if self._ctx.kind is StreamKind.C2S else JID(config.jid.domain)
            return Step(
                events=(Authenticated(identity, mechanism.name),),
                outcome=Outcome.FINISHED,
                gained=SessionState.AUTHENTICATED,
                restart=True,
                identity=identity,
            )
        return super().receive(element)

    def _failed(self, error: AuthenticationError) -> Step:
        self._mechanism = None
        if self._aborted is not None:
            return Step(events=(AuthenticationFailed(self._aborted, False),), failure=str(self._aborted))
        retry = error.condition in _RETRYABLE
        if not retry:
            return Step(events=(AuthenticationFailed(error, False),), failure=f"authentication failed: {error}")
        return Step(events=(AuthenticationFailed(error, True),), awaiting=True)

    def resume(self, answer: Answer) -> Step:
        if not isinstance(answer, RetryAuthentication) or self._mechanism is not None:
            raise LocalProtocolError(f"{type(answer).__name__} is not expected now")
        if answer.password is not None:
            self._password = answer.password
        return self.start()


def _needed(ctx: NegotiationContext) -> bool:
    return ctx.kind is StreamKind.C2S


def _wanted(_ctx: NegotiationContext, _offer: Offer) -> bool:
    return True


SASL = StreamFeature(
    name=_MECHANISMS,
    prohibited=SessionState.AUTHENTICATED,
    advertise=_advertise,
    required=lambda _ctx: True,
    accepts=_accepts,
    receiver=_Receiving,
    parse=_parse,
    wanted=_wanted,
    needed=_needed,
    initiator=_Initiating,
)


#: XEP-0440 channel-binding types, advertised by the receiving side; the initiating side reads them through
#: ``ctx.peer_features`` when it picks a -PLUS binding, so this value negotiates nothing itself.
SASL_CHANNEL_BINDING = StreamFeature(
    name=_SASL_CB,
    necessary=SessionState.SECURE,
    prohibited=SessionState.AUTHENTICATED,
    advertise=_advertise_binding_types,
)
