"""Account registration before authentication (XEP-0077 §3.1, §4) as a receiving-side stream feature.

The feature is advertised as ``<register xmlns='http://jabber.org/features/iq-register'/>`` among the
pre-authentication features of a client stream (after STARTTLS when TLS is required: RFC 6120 §5.3.1 lets only
STARTTLS be offered before it), and takes the register IQs a client sends before SASL: a get is answered with
the form, a set asks the driver (through :class:`~jaybird.stream.events.FeatureRequested`) to run the
registration it carries. Neither ends negotiation: SASL stays required, and the stream goes on with it.

Choices: one registration per stream (XEP-0077 §3.1.1 security considerations: further register IQs on it get
``not-allowed``); ``<remove/>`` before authentication is ``not-allowed`` (§3.2 is for a logged-in entity); the
replies carry no ``from`` / ``to``, as nothing is addressed before authentication (the client's stream has
no JID yet).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from jaybird import ns
from jaybird.errors import LocalProtocolError, StanzaError, StanzaErrorCondition
from jaybird.ext.register.wire import FEATURE, NAME, RegisterQuery
from jaybird.jid import JID
from jaybird.stanza import Iq, IqType
from jaybird.stream.events import FeatureRequested, ServeContext
from jaybird.stream.feature import (
    Answer,
    FeatureAnswered,
    Negotiation,
    NegotiationContext,
    Outcome,
    Step,
    StreamFeature,
)
from jaybird.stream.state import SessionState, StreamKind
from jaybird.xml.element import Element

__all__ = ["INSTRUCTIONS", "Registrar", "RegistrationRequest", "registration_feature"]

INSTRUCTIONS: Final = "Choose a username and password for use with this service."
#: Creates an account (username, password, peer IP) and returns its JID; raises StanzaError when refused.
Registrar = Callable[[str | None, str | None, str], Awaitable[JID]]

_IQ: Final = ns.clark(ns.CLIENT, "iq")
_C = StanzaErrorCondition
#: What the throttle counts a peer under when the transport cannot tell its address.
_UNKNOWN_PEER: Final = "unknown"


@dataclass(frozen=True, slots=True)
class RegistrationRequest:
    """What a pre-authentication set asks for (the ``request`` of the :class:`FeatureRequested` event)."""

    username: str | None
    password: str | None = field(repr=False)


def _advertise(ctx: NegotiationContext) -> Element | None:
    if ctx.kind is not StreamKind.C2S:
        return None
    if ctx.receiving.tls_required and not ctx.state & SessionState.SECURE:
        return None
    return _OFFER


_OFFER: Final = Element(FEATURE)  # shared, never changed (the machine caches what it serialised)


def _accepts(element: Element) -> bool:
    return element.name == _IQ and element.attrs.get("type") in ("get", "set") and element.find(NAME) is not None


def _reply(iq: Iq) -> Iq:
    """``iq`` without its addresses, so that its result or error carries none either."""
    attrs = {key: value for key, value in iq.element.attrs.items() if key not in ("from", "to")}
    return Iq(Element(iq.element.name, attrs))


class _Receiving(Negotiation):
    """The register IQs of one stream. Each exchange is over once answered (outcome ABANDONED: the feature is
    never "negotiated", so it keeps taking register IQs until SASL succeeds)."""

    def __init__(self, registrar: Registrar) -> None:
        self._registrar = registrar
        self._registered = False
        self._pending: Iq | None = None

    def receive(self, element: Element) -> Step:
        iq = _reply(Iq(element))
        payload = element.find(NAME)
        assert payload is not None, "accepted only with a register query"
        if self._registered:
            return self._error(iq, StanzaError(_C.NOT_ALLOWED, text="one registration per stream"))
        if iq.type is IqType.GET:
            form = RegisterQuery(instructions=INSTRUCTIONS, username="", password="")  # §3.1: fields to fill in
            return Step(send=(iq.result(form).element,), outcome=Outcome.ABANDONED)
        query = RegisterQuery.from_element(payload)
        if query.remove:
            return self._error(iq, StanzaError(_C.NOT_ALLOWED, text="log in to remove an account"))
        self._pending = iq
        request = RegistrationRequest(query.username, query.password)
        registrar = self._registrar

        async def serve(context: ServeContext) -> JID | StanzaError:
            try:
                return await registrar(request.username, request.password, context.peer_address or _UNKNOWN_PEER)
            except StanzaError as exc:
                return exc

        return Step(events=(FeatureRequested(FEATURE, request, serve),), awaiting=True)

    def resume(self, answer: Answer) -> Step:
        iq, self._pending = self._pending, None
        if iq is None or not isinstance(answer, FeatureAnswered):
            raise LocalProtocolError(f"{type(answer).__name__} is not expected by registration")
        value = answer.value
        if isinstance(value, StanzaError):
            return self._error(iq, value)
        if not isinstance(value, JID):
            raise LocalProtocolError(f"registration answered with a {type(value).__name__}, not a JID")
        self._registered = True
        return Step(send=(iq.result().element,), outcome=Outcome.ABANDONED)

    @staticmethod
    def _error(iq: Iq, error: StanzaError) -> Step:
        return Step(send=(iq.error_reply(error).element,), outcome=Outcome.ABANDONED)


def registration_feature(registrar: Registrar) -> StreamFeature:
    """The receiving-side feature, creating accounts through ``registrar`` (a host's registration policy)."""
    return StreamFeature(
        name=FEATURE,
        prohibited=SessionState.AUTHENTICATED | SessionState.S2S,
        advertise=_advertise,
        accepts=_accepts,
        receiver=lambda _ctx: _Receiving(registrar),
    )
