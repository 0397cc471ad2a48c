"""STARTTLS (RFC 6120 §5) for both sides. The TLS handshake itself is the driver's job."""

from __future__ import annotations

from typing import Final

from jaybird import ns
from jaybird.errors import LocalProtocolError, RemoteProtocolError, StreamErrorCondition
from jaybird.stream.events import TLSRequested
from jaybird.stream.feature import (
    Answer,
    Negotiation,
    NegotiationContext,
    Offer,
    Outcome,
    Step,
    StreamFeature,
    TLSEstablished,
)
from jaybird.stream.state import SessionState
from jaybird.xml.element import Element

__all__ = ["STARTTLS"]

_STARTTLS = ns.clark(ns.TLS, "starttls")
_PROCEED = ns.clark(ns.TLS, "proceed")
_FAILURE = ns.clark(ns.TLS, "failure")
_REQUIRED = ns.clark(ns.TLS, "required")


def _advertise(ctx: NegotiationContext) -> Element | None:
    config = ctx.receiving
    if not config.tls_offered:
        return None
    return _OFFER_REQUIRED if config.tls_required else _OFFER  # §5.4.1


# Shared, never changed: the stream machine serialises an advertisement it has seen before only once.
_OFFER: Final = Element(_STARTTLS)
_OFFER_REQUIRED: Final = Element(_STARTTLS, children=[Element(_REQUIRED)])


def _required(ctx: NegotiationContext) -> bool:
    return ctx.receiving.tls_required


def _accepts(element: Element) -> bool:
    return element.name == _STARTTLS


def _tls_done(answer: Answer) -> Step:
    if not isinstance(answer, TLSEstablished):
        raise LocalProtocolError(f"{type(answer).__name__} is not expected during STARTTLS")
    # §5.4.3.3: both sides restart the stream over the new layer.
    return Step(outcome=Outcome.FINISHED, gained=SessionState.SECURE, restart=True)


class _Receiving(Negotiation):
    def receive(self, element: Element) -> Step:
        if element.name != _STARTTLS or element.children:
            raise RemoteProtocolError.of(StreamErrorCondition.BAD_FORMAT, "malformed <starttls/>")
        # §5.4.2.3: <proceed/>, then the driver runs the handshake.
        return Step(send=(Element(_PROCEED),), events=(TLSRequested(),), awaiting=True)

    def resume(self, answer: Answer) -> Step:
        return _tls_done(answer)


class _Initiating(Negotiation):
    def start(self) -> Step:
        return Step(send=(Element(_STARTTLS),))

    def receive(self, element: Element) -> Step:
        if element.name == _PROCEED:
            return Step(events=(TLSRequested(),), awaiting=True)
        if element.name == _FAILURE:
            # §5.4.2.2: the receiving entity closes the stream after <failure/>.
            return Step(failure="the server could not proceed with STARTTLS")
        return super().receive(element)

    def resume(self, answer: Answer) -> Step:
        return _tls_done(answer)


def _wanted(ctx: NegotiationContext, _offer: Offer) -> bool:
    return ctx.initiating.tls_available


def _needed(ctx: NegotiationContext) -> bool:
    return ctx.initiating.require_tls


STARTTLS = StreamFeature(
    name=_STARTTLS,
    prohibited=SessionState.SECURE,
    advertise=_advertise,
    required=_required,
    accepts=_accepts,
    receiver=lambda _ctx: _Receiving(),
    wanted=_wanted,
    needed=_needed,
    initiator=lambda _ctx, _offer: _Initiating(),
)
