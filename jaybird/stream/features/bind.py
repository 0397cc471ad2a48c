"""Resource binding (RFC 6120 §7) for both sides. The server core picks or refuses resources."""

from __future__ import annotations

from typing import Final

from jaybird import ns
from jaybird.errors import (
    LocalProtocolError,
    RemoteProtocolError,
    StanzaError,
    StanzaErrorCondition,
    StreamErrorCondition,
)
from jaybird.jid import JID, JIDError
from jaybird.stream.events import BindFailed, BindRequested, Bound
from jaybird.stream.feature import (
    Answer,
    BindAccepted,
    BindRefused,
    Negotiation,
    NegotiationContext,
    Offer,
    Outcome,
    Step,
    StreamFeature,
)
from jaybird.stream.state import SessionState, StreamKind
from jaybird.xml.element import Element

__all__ = ["BIND", "iq_error", "iq_result"]

_BIND = ns.clark(ns.BIND, "bind")
_RESOURCE = ns.clark(ns.BIND, "resource")
_JID = ns.clark(ns.BIND, "jid")
_IQ = ns.clark(ns.CLIENT, "iq")
_ERROR = ns.clark(ns.CLIENT, "error")


def iq_result(request_id: str, payload: Element | None = None) -> Element:
    iq = Element(_IQ, {"type": "result", "id": request_id})
    if payload is not None:
        iq.append(payload)
    return iq


def iq_error(request: Element, error: StanzaError) -> Element:
    """An error reply carrying the request's payload (RFC 6120 §8.3.1 allows including it)."""
    iq = Element(_IQ, {"type": "error", "id": request.attrs.get("id", "")})
    iq.children.extend(request.elements())
    iq.append(error.to_element())
    return iq


def _is_bind_request(element: Element) -> bool:
    return element.name == _IQ and element.find(_BIND) is not None


class _Receiving(Negotiation):
    def __init__(self, ctx: NegotiationContext) -> None:
        self._ctx = ctx
        self._request: Element | None = None

    def receive(self, element: Element) -> Step:
        if element.get("id") is None:
            # Without an id no reply can be addressed (§8.2.3): the stanza itself is unusable.
            raise RemoteProtocolError.of(StreamErrorCondition.BAD_FORMAT, "an <iq/> needs an id")
        bind = element.find(_BIND)
        assert bind is not None
        resources = bind.find_all(_RESOURCE)
        if element.get("type") != "set" or len(resources) > 1:
            return self._refuse(element, StanzaError(StanzaErrorCondition.BAD_REQUEST))
        resource = resources[0].text.strip() if resources else ""
        self._request = element
        # §7.6: no (or an empty) resource asks the server to generate one.
        return Step(events=(BindRequested(resource or None),), awaiting=True)

    def resume(self, answer: Answer) -> Step:
        request = self._request
        if request is None or not isinstance(answer, BindAccepted | BindRefused):
            raise LocalProtocolError(f"{type(answer).__name__} is not expected now")
        if isinstance(answer, BindRefused):
            self._request = None
            return self._refuse(request, answer.error)
        jid = answer.jid
        if jid.resource is None or (self._ctx.identity is not None and jid.bare != self._ctx.identity):
            raise LocalProtocolError(f"{jid} is not a full JID of {self._ctx.identity}")
        self._request = None
        payload = Element(_BIND)
        payload.add(_JID, text=str(jid))
        return Step(
            send=(iq_result(request.attrs.get("id", ""), payload),),
            events=(Bound(jid),),
            outcome=Outcome.FINISHED,
            gained=SessionState.BOUND,
            jid=jid,
        )

    @staticmethod
    def _refuse(request: Element, error: StanzaError) -> Step:
        # §7.7.2: the client may try again (another resource, or none).
        return Step(send=(iq_error(request, error),), outcome=Outcome.ABANDONED)


class _Initiating(Negotiation):
    def __init__(self, ctx: NegotiationContext, _offer: Offer) -> None:
        self._ctx = ctx
        self._id = "bind_1"  # one request per stream: unique enough

    def start(self) -> Step:
        config = self._ctx.initiating
        resource = config.resource if config.resource is not None else config.jid.resource
        bind = Element(_BIND)
        if resource:
            bind.add(_RESOURCE, text=resource)
        return Step(send=(Element(_IQ, {"type": "set", "id": self._id}, [bind]),))

    def receive(self, element: Element) -> Step:
        if element.name != _IQ or element.get("id") != self._id:
            return super().receive(element)
        if element.get("type") == "error":
            error_el = element.find(_ERROR)
            error = (
                StanzaError.from_element(error_el)
                if error_el is not None
                else StanzaError(StanzaErrorCondition.UNDEFINED_CONDITION)
            )
            return Step(events=(BindFailed(error),), failure=f"resource binding failed: {error}")
        bind = element.find(_BIND)
        text = bind.find_text(_JID) if bind is not None else None
        try:
            jid = JID(text or "")
        except JIDError as e:
            raise RemoteProtocolError.of(StreamErrorCondition.INVALID_XML, f"bad bound JID: {e}") from e
        if jid.resource is None or jid.bare != self._ctx.initiating.jid.bare:
            raise RemoteProtocolError.of(StreamErrorCondition.INVALID_XML, f"{jid} is not one of our JIDs")
        return Step(events=(Bound(jid),), outcome=Outcome.FINISHED, gained=SessionState.BOUND, jid=jid)


def _c2s(ctx: NegotiationContext) -> bool:
    return ctx.kind is StreamKind.C2S


def _advertise(ctx: NegotiationContext) -> Element | None:
    return _OFFER if _c2s(ctx) else None


_OFFER: Final = Element(_BIND)  # shared, never changed (the machine caches what it serialised)


BIND = StreamFeature(
    name=_BIND,
    necessary=SessionState.AUTHENTICATED,
    prohibited=SessionState.BOUND,
    advertise=_advertise,
    required=_c2s,
    accepts=_is_bind_request,
    receiver=_Receiving,
    parse=lambda _el: Offer(required=True),
    wanted=lambda ctx, _offer: _c2s(ctx),
    needed=_c2s,
    initiator=_Initiating,
)
