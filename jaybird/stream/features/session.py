"""The legacy session IQ (RFC 3921 §3; kept optional by draft-cridland-xmpp-session).

The receiving side advertises ``<session><optional/></session>`` and answers the IQ with a result; the
initiating side sends it only when the advertisement lacks ``<optional/>``.
"""

from __future__ import annotations

from typing import Final

from jaybird import ns
from jaybird.errors import RemoteProtocolError, StanzaError, StanzaErrorCondition, StreamErrorCondition
from jaybird.stream.feature import Negotiation, NegotiationContext, Offer, Outcome, Step, StreamFeature
from jaybird.stream.features.bind import iq_error, iq_result
from jaybird.stream.state import SessionState, StreamKind
from jaybird.xml.element import Element

__all__ = ["LEGACY_SESSION"]

_SESSION = ns.clark(ns.SESSION, "session")
_OPTIONAL = ns.clark(ns.SESSION, "optional")
_IQ = ns.clark(ns.CLIENT, "iq")
_ERROR = ns.clark(ns.CLIENT, "error")


def _advertise(ctx: NegotiationContext) -> Element | None:
    if ctx.kind is not StreamKind.C2S or not ctx.receiving.legacy_session:
        return None
    return _OFFER


_OFFER: Final = Element(_SESSION, children=[Element(_OPTIONAL)])  # shared, never changed


def _accepts(element: Element) -> bool:
    return element.name == _IQ and element.find(_SESSION) is not None


class _Receiving(Negotiation):
    def receive(self, element: Element) -> Step:
        request_id = element.get("id")
        if request_id is None:
            raise RemoteProtocolError.of(StreamErrorCondition.BAD_FORMAT, "an <iq/> needs an id")
        if element.get("type") != "set":
            error = StanzaError(StanzaErrorCondition.BAD_REQUEST)
            return Step(send=(iq_error(element, error),), outcome=Outcome.ABANDONED)
        return Step(send=(iq_result(request_id),), outcome=Outcome.FINISHED)


class _Initiating(Negotiation):
    def __init__(self) -> None:
        self._id = "session_1"  # one request per stream: unique enough

    def start(self) -> Step:
        return Step(send=(Element(_IQ, {"type": "set", "id": self._id}, [Element(_SESSION)]),))

    def receive(self, element: Element) -> Step:
        if element.name != _IQ or element.get("id") != self._id:
            return super().receive(element)
        if element.get("type") != "result":
            error_el = element.find(_ERROR)
            text = StanzaError.from_element(error_el) if error_el is not None else "no error given"
            return Step(failure=f"the server refused the session: {text}")
        return Step(outcome=Outcome.FINISHED)


def _parse(element: Element) -> Offer:
    return Offer(required=element.find(_OPTIONAL) is None)


LEGACY_SESSION = StreamFeature(
    name=_SESSION,
    necessary=SessionState.AUTHENTICATED,
    advertise=_advertise,
    accepts=_accepts,
    receiver=lambda _ctx: _Receiving(),
    parse=_parse,
    initiator=lambda _ctx, _offer: _Initiating(),
)
