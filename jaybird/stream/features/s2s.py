"""What server-to-server streams add to the machine: SASL EXTERNAL with certificates (XEP-0178), bidirectional
streams (XEP-0288), the check every received stanza passes (RFC 6120 §4.9.3), and the feature table.

The driver decides what certificates prove (it ran TLS and knows which CAs it trusts): it hands the receiving
side a function telling whether the peer's certificate is valid for a domain, and tells the initiating side
whether its own certificate should satisfy the peer. SASL EXTERNAL is tried first; dialback (XEP-0220) is the
fallback on the same stream when EXTERNAL is not offered or fails (XEP-0178 §3, last step).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from jaybird import ns
from jaybird.errors import AuthenticationError, RemoteProtocolError, SASLCondition, StreamErrorCondition
from jaybird.jid import JID
from jaybird.stream.events import Authenticated, AuthenticationFailed, BidiRequested
from jaybird.stream.feature import Negotiation, NegotiationContext, Offer, Outcome, Step, StreamFeature
from jaybird.stream.features.starttls import STARTTLS
from jaybird.stream.state import SessionState
from jaybird.xml.element import Element

__all__ = ["BIDI_NAME", "bidi_feature", "s2s_features", "s2s_stanza_check", "sasl_external_feature"]

_STANZAS: Final = frozenset(ns.clark(ns.CLIENT, local) for local in ("message", "presence", "iq"))
_MECHANISMS = ns.clark(ns.SASL, "mechanisms")
_MECHANISM = ns.clark(ns.SASL, "mechanism")
_AUTH = ns.clark(ns.SASL, "auth")
_RESPONSE = ns.clark(ns.SASL, "response")
_ABORT = ns.clark(ns.SASL, "abort")
_SUCCESS = ns.clark(ns.SASL, "success")
_FAILURE = ns.clark(ns.SASL, "failure")
BIDI_NAME = ns.clark("urn:xmpp:features:bidi", "bidi")
_BIDI_REQUEST = ns.clark("urn:xmpp:bidi", "bidi")
_C = StreamErrorCondition
_S = SASLCondition


def _domain_of(address: str) -> str:
    # The domain part of local@domain/resource, without preparing the whole JID for every stanza.
    return address.partition("/")[0].rpartition("@")[2].lower()


def s2s_stanza_check(ctx: NegotiationContext) -> Callable[[Element], None]:
    """The check every element a ready s2s stream receives passes (either role: XEP-0288 lets stanzas come
    back over an outgoing stream). It reads ``ctx.domain_pairs`` live, so pairs dialback adds later count.

    Only stanzas (§4.9.3.24 ``unsupported-stanza-type``), with both addresses (§4.9.3.7
    ``improper-addressing``), from a domain authenticated on this stream (§4.9.3.9 ``invalid-from``) to one
    of ours it was authenticated for (§4.9.3.6 ``host-unknown``)."""
    pairs = ctx.domain_pairs

    def check(element: Element) -> None:
        if element.name not in _STANZAS:
            raise RemoteProtocolError.of(_C.UNSUPPORTED_STANZA_TYPE, f"{element.name} is not a stanza")
        attrs = element.attrs
        sender, to = attrs.get("from"), attrs.get("to")
        if not sender or not to:
            raise RemoteProtocolError.of(_C.IMPROPER_ADDRESSING, "s2s stanzas need 'from' and 'to'")
        remote, local = _domain_of(sender), _domain_of(to)
        if (local, remote) in pairs:
            return
        if any(known == remote for _, known in pairs):
            raise RemoteProtocolError.of(_C.HOST_UNKNOWN, f"{local} was not negotiated on this stream")
        raise RemoteProtocolError.of(_C.INVALID_FROM, f"{remote} is not authenticated on this stream")

    return check


# -- SASL EXTERNAL (XEP-0178) ---------------------------------------------------------------------------------
def _failure(condition: SASLCondition, text: str | None = None) -> Element:
    return AuthenticationError(condition, text).to_element()


class _ReceivingExternal(Negotiation):
    """The receiving server: the certificate was checked by the driver; the authzid must be the stream's
    'from' domain, or empty to mean it (XEP-0178 §3 steps 8-9; RFC 6120 §6.3.8)."""

    def __init__(self, ctx: NegotiationContext) -> None:
        self._ctx = ctx

    def receive(self, element: Element) -> Step:
        if element.name == _ABORT:
            return self._fail(AuthenticationError(_S.ABORTED))
        if element.name != _AUTH or element.get("mechanism") != "EXTERNAL":
            return self._fail(AuthenticationError(_S.INVALID_MECHANISM, "only EXTERNAL is offered"))
        peer = (self._ctx.peer_domain or "").lower()
        text = "".join(element.text.split())
        try:
            authzid = base64.b64decode(text, validate=True).decode() if text not in ("", "=") else ""
        except (binascii.Error, ValueError):
            return self._fail(AuthenticationError(_S.INCORRECT_ENCODING))
        if authzid and authzid.lower() != peer:
            return self._fail(AuthenticationError(_S.INVALID_AUTHZID, "the authzid must be the stream's 'from'"))
        identity = JID(peer)
        self._ctx.domain_pairs.add((self._ctx.domain.lower(), peer))
        return Step(
            send=(Element(_SUCCESS),),
            events=(Authenticated(identity, "EXTERNAL"),),
            outcome=Outcome.FINISHED,
            gained=SessionState.AUTHENTICATED,
            restart=True,
            identity=identity,
        )

    @staticmethod
    def _fail(error: AuthenticationError) -> Step:
        # The stream stays open: dialback may still authenticate it (XEP-0178 §3).
        return Step(send=(error.to_element(),), events=(AuthenticationFailed(error, False),), outcome=Outcome.ABANDONED)


@dataclass(frozen=True, slots=True)
class _MechanismsOffer(Offer):
    mechanisms: tuple[str, ...] = ()


class _InitiatingExternal(Negotiation):
    def __init__(self, ctx: NegotiationContext, tried: list[bool]) -> None:
        self._ctx = ctx
        self._tried = tried

    def start(self) -> Step:
        self._tried[0] = True
        local = self._ctx.initiating.jid.domain
        payload = base64.b64encode(local.encode()).decode()
        return Step(send=(Element(_AUTH, {"mechanism": "EXTERNAL"}, text=payload),))

    def receive(self, element: Element) -> Step:
        ctx = self._ctx
        if element.name == _SUCCESS:
            identity = JID(ctx.domain)
            ctx.domain_pairs.add((ctx.initiating.jid.domain.lower(), ctx.domain.lower()))
            return Step(
                events=(Authenticated(identity, "EXTERNAL"),),
                outcome=Outcome.FINISHED,
                gained=SessionState.AUTHENTICATED,
                restart=True,
                identity=identity,
            )
        if element.name == _FAILURE:
            error = AuthenticationError.from_element(element)
            # Not fatal: dialback comes next in the table, if the peer offers it.
            return Step(events=(AuthenticationFailed(error, False),), outcome=Outcome.ABANDONED)
        return super().receive(element)


def sasl_external_feature(
    *, certificate_valid: Callable[[str], bool] = lambda _domain: False, use: bool = False
) -> StreamFeature:
    """SASL EXTERNAL for one s2s stream. Receiving side: offered once the peer named itself in the header
    and ``certificate_valid(that domain)``. Initiating side: tried once when offered and ``use``."""
    tried = [False]

    def advertise(ctx: NegotiationContext) -> Element | None:
        peer = ctx.peer_domain
        if not ctx.state & SessionState.SECURE or not peer or not certificate_valid(peer):
            return None
        advertised = Element(_MECHANISMS)
        advertised.add(_MECHANISM, text="EXTERNAL")
        return advertised

    def parse(element: Element) -> Offer:
        names = tuple(child.text.strip() for child in element.find_all(_MECHANISM))
        return _MechanismsOffer(required=False, mechanisms=names)  # dialback is the alternative

    def wanted(ctx: NegotiationContext, offer: Offer) -> bool:
        offered = offer.mechanisms if isinstance(offer, _MechanismsOffer) else ()
        return use and not tried[0] and "EXTERNAL" in offered and bool(ctx.state & SessionState.SECURE)

    return StreamFeature(
        name=_MECHANISMS,
        prohibited=SessionState.AUTHENTICATED,
        advertise=advertise,
        required=lambda ctx: not ctx.state & SessionState.AUTHENTICATED,
        accepts=lambda element: element.name in (_AUTH, _RESPONSE, _ABORT),
        receiver=_ReceivingExternal,
        parse=parse,
        wanted=wanted,
        initiator=lambda ctx, _offer: _InitiatingExternal(ctx, tried),
    )


# -- XEP-0288 bidirectional streams -------------------------------------------------------------------------
class _ReceivingBidi(Negotiation):
    def receive(self, element: Element) -> Step:
        return Step(events=(BidiRequested(),), outcome=Outcome.FINISHED)


class _InitiatingBidi(Negotiation):
    def start(self) -> Step:
        # XEP-0288 §2: a request with no answer, sent before authenticating.
        return Step(send=(Element(_BIDI_REQUEST),), outcome=Outcome.FINISHED)


def bidi_feature(*, offer: bool = True, use: bool = True) -> StreamFeature:
    """XEP-0288: the receiving side advertises ``<bidi xmlns='urn:xmpp:features:bidi'/>``; the initiating side
    answers with ``<bidi xmlns='urn:xmpp:bidi'/>`` before authenticating."""

    def advertise(ctx: NegotiationContext) -> Element | None:
        if not offer or (ctx.receiving.tls_required and not ctx.state & SessionState.SECURE):
            return None
        return Element(BIDI_NAME)

    return StreamFeature(
        name=BIDI_NAME,
        prohibited=SessionState.AUTHENTICATED,
        advertise=advertise,
        accepts=lambda element: element.name == _BIDI_REQUEST,
        receiver=lambda _ctx: _ReceivingBidi(),
        parse=lambda _element: Offer(required=False),
        wanted=lambda _ctx, _offer: use,
        initiator=lambda _ctx, _offer: _InitiatingBidi(),
    )


def s2s_features(
    *,
    dialback: StreamFeature | None,
    external: StreamFeature | None = None,
    bidi: StreamFeature | None = None,
    extra: Sequence[StreamFeature] = (),
) -> tuple[StreamFeature, ...]:
    """The table of one s2s stream, in negotiation order: STARTTLS, bidi (before authentication, XEP-0288),
    SASL EXTERNAL, then dialback."""
    table: list[StreamFeature] = [STARTTLS]
    for feature in (bidi, external, dialback):
        if feature is not None:
            table.append(feature)
    return (*table, *extra)
