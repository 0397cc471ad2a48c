"""Server dialback (XEP-0220) as one s2s stream feature for both roles, with XEP-0185 keys.

The feature is a value built per stream by :func:`dialback_feature`: the secret that makes our keys, the
domains we answer ``db:verify`` for, and whether this stream authenticates with dialback or only carries
verification requests (a connection opened to the authoritative server just to ask, XEP-0220 §2.1.2).

Dialback runs beside the stream rather than blocking it: several domain pairs may be verified at once on one
stream (XEP-0220 §2.5 piggy-backing), and stanzas keep flowing meanwhile. So the feature is ``persistent``
(its elements are accepted once the stream is ready) and the driver's verdicts come through
``XMPPStream.answer_feature(DIALBACK_NAME, ...)``, never as a blocking answer:

* receiving side: ``db:result`` -> :class:`DialbackRequested`; the driver verifies and answers
  :class:`DialbackVerdict`. A pair that fails while no pair is authenticated closes the stream with
  ``not-authorized`` (RFC 6120 §4.9.3.12); a later pair that fails only gets ``type='invalid'``.
* initiating side: the first ``db:result`` is sent when the feature is offered; further domains are asked for
  with :class:`DialbackRequest`. Verdicts come back as :class:`DialbackResult`.
* authoritative side (either role): ``db:verify`` is answered from the secret alone, no state needed.
* verifier side: the answers to our ``db:verify`` come back as :class:`DialbackVerified`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from jaybird import ns
from jaybird.errors import LocalProtocolError, RemoteProtocolError, StreamError, StreamErrorCondition
from jaybird.jid import JID, JIDError
from jaybird.stream.events import DialbackRequested, DialbackResult, DialbackVerified
from jaybird.stream.feature import Negotiation, NegotiationContext, Offer, Outcome, Step, StreamFeature
from jaybird.stream.state import Role, SessionState
from jaybird.xml.element import Element

__all__ = [
    "DIALBACK_NAME",
    "DialbackRequest",
    "DialbackVerdict",
    "VerifyRequest",
    "dialback_feature",
    "dialback_key",
]

DIALBACK_NAME = ns.clark(ns.DIALBACK_FEATURE, "dialback")
_ERRORS = ns.clark(ns.DIALBACK_FEATURE, "errors")
_RESULT = ns.clark(ns.DIALBACK, "result")
_VERIFY = ns.clark(ns.DIALBACK, "verify")
_C = StreamErrorCondition
#: Verifications one stream may have outstanding: each costs the driver a connection back.
MAX_PENDING = 32


def dialback_key(secret: str, receiving: str, originating: str, stream_id: str) -> str:
    """XEP-0185 §3: ``HMAC-SHA256(SHA256(secret), receiving ' ' originating ' ' id)``, both in lowercase hex.

    Only the authoritative server (we) ever checks our keys, so this is our choice, made the recommended way:
    a key proves nothing beyond one stream id and one domain pair."""
    hashed = hashlib.sha256(secret.encode()).hexdigest().encode()
    message = f"{receiving} {originating} {stream_id}".encode()
    return hmac.new(hashed, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    """A ``db:verify`` to send (verifier side): the key ``originating`` gave us on stream ``stream_id``."""

    receiving: str
    originating: str
    stream_id: str
    key: str


@dataclass(frozen=True, slots=True)
class DialbackVerdict:
    """The driver's answer to :class:`~jaybird.stream.events.DialbackRequested`."""

    originating: str
    receiving: str
    valid: bool


@dataclass(frozen=True, slots=True)
class DialbackRequest:
    """Ask the peer to accept ``local`` as a sender to ``remote`` on this ready stream (piggy-backing)."""

    local: str
    remote: str


@dataclass(frozen=True, slots=True)
class _Options:
    secret: str = field(repr=False)
    #: The domains we are authoritative for: ``db:verify`` for anything else is invalid.
    local_domains: frozenset[str]
    authenticate: bool
    verify: tuple[VerifyRequest, ...]


def _domain(value: str | None) -> str | None:
    if not value:
        return None
    try:
        jid = JID(value)
    except JIDError:
        return None
    return jid.domain if jid.is_domain else None


def _element(name: str, attrs: dict[str, str], text: str = "") -> Element:
    return Element(name, attrs, text=text)


class _Dialback(Negotiation):
    """One per stream, for both roles: dialback elements may go either way once streams are bidirectional."""

    def __init__(self, ctx: NegotiationContext, options: _Options) -> None:
        self._ctx = ctx
        self._options = options
        self._requested: set[tuple[str, str]] = set()  # (originating, receiving) awaiting our verdict
        self._asked: set[tuple[str, str]] = set()  # (local, remote) we sent db:result for
        self._first: tuple[str, str] | None = None  # the pair this stream authenticates with
        self._verifying: set[tuple[str, str, str]] = set()  # (authoritative, receiving, id) we asked about

    # -- initiating ------------------------------------------------------------------------------------------
    def start(self) -> Step:
        ctx = self._ctx
        send: list[Element] = []
        for request in self._options.verify:
            send.append(
                _element(
                    _VERIFY,
                    {"from": request.receiving, "to": request.originating, "id": request.stream_id},
                    request.key,
                )
            )
            self._verifying.add((request.originating, request.receiving, request.stream_id))
        if self._options.authenticate and not ctx.state & SessionState.AUTHENTICATED:
            local = ctx.initiating.jid.domain
            if ctx.stream_id is None:
                return Step(failure="dialback needs the receiving server's stream id")
            self._first = (local, ctx.domain)
            send.append(self._result_request(local, ctx.domain, ctx.stream_id))
        return Step(send=tuple(send))

    def _result_request(self, local: str, remote: str, stream_id: str) -> Element:
        self._asked.add((local, remote))
        key = dialback_key(self._options.secret, remote, local, stream_id)
        return _element(_RESULT, {"from": local, "to": remote}, key)

    # -- elements in -----------------------------------------------------------------------------------------
    def receive(self, element: Element) -> Step:
        kind = element.get("type")
        if element.name == _VERIFY:
            return self._verify_request(element) if kind is None else self._verify_answer(element, kind)
        if element.name == _RESULT:
            return self._result_request_in(element) if kind is None else self._result_answer(element, kind)
        return super().receive(element)

    def _verify_request(self, element: Element) -> Step:
        """Authoritative side (XEP-0220 §2.1.3): is ``key`` one we made for this pair and stream id?"""
        receiving, originating = _domain(element.get("from")), _domain(element.get("to"))
        stream_id = element.get("id")
        if receiving is None or originating is None or not stream_id:
            raise RemoteProtocolError.of(_C.IMPROPER_ADDRESSING, "db:verify needs 'from', 'to' and 'id'")
        valid = False
        if originating in self._options.local_domains:
            expected = dialback_key(self._options.secret, receiving, originating, stream_id)
            valid = hmac.compare_digest(expected.encode(), element.text.strip().encode())
        answer = _element(
            _VERIFY,
            {"from": originating, "to": receiving, "id": stream_id, "type": "valid" if valid else "invalid"},
        )
        return Step(send=(answer,), outcome=self._idle_outcome())

    def _verify_answer(self, element: Element, kind: str) -> Step:
        authoritative, receiving = _domain(element.get("from")), _domain(element.get("to"))
        key = (authoritative or "", receiving or "", element.get("id") or "")
        if key not in self._verifying:
            raise RemoteProtocolError.of(_C.POLICY_VIOLATION, "an answer to a db:verify we did not send")
        self._verifying.discard(key)
        event = DialbackVerified(key[0], key[1], key[2], kind == "valid")
        return Step(events=(event,), outcome=self._idle_outcome())

    def _result_request_in(self, element: Element) -> Step:
        """Receiving side (XEP-0220 §2.1.1): the peer claims ``from``; the driver must verify the key."""
        ctx = self._ctx
        originating, receiving = _domain(element.get("from")), _domain(element.get("to"))
        if originating is None or receiving is None:
            raise RemoteProtocolError.of(_C.IMPROPER_ADDRESSING, "db:result needs 'from' and 'to' domains")
        if receiving not in self._options.local_domains:
            raise RemoteProtocolError.of(_C.HOST_UNKNOWN, f"{receiving} is not served here")
        if ctx.stream_id is None:
            raise LocalProtocolError("a receiving stream without an id")
        pair = (originating, receiving)
        if (receiving, originating) in ctx.domain_pairs:
            return Step(send=(self._verdict(pair, valid=True),), outcome=self._idle_outcome())
        if pair in self._requested:
            return Step(outcome=self._idle_outcome())  # already being verified; the verdict answers both
        if len(self._requested) >= MAX_PENDING:
            raise RemoteProtocolError.of(_C.POLICY_VIOLATION, "too many dialback requests at once")
        self._requested.add(pair)
        event = DialbackRequested(originating, receiving, element.text.strip(), ctx.stream_id)
        return Step(events=(event,), outcome=self._idle_outcome())

    def _result_answer(self, element: Element, kind: str) -> Step:
        """Initiating side: the verdict on a db:result we sent."""
        remote, local = _domain(element.get("from")), _domain(element.get("to"))
        pair = (local or "", remote or "")
        if pair not in self._asked:
            raise RemoteProtocolError.of(_C.INVALID_FROM, "a dialback verdict for a pair we did not ask for")
        self._asked.discard(pair)
        valid = kind == "valid"
        event = DialbackResult(pair[0], pair[1], valid)
        if valid:
            self._ctx.domain_pairs.add((pair[0].lower(), pair[1].lower()))
        if pair != self._first:
            return Step(events=(event,), outcome=self._idle_outcome())
        self._first = None
        if not valid:
            return Step(events=(event,), failure=f"{pair[1]} refused dialback for {pair[0]} ({kind})")
        return Step(events=(event,), outcome=Outcome.FINISHED, gained=SessionState.AUTHENTICATED, identity=JID(pair[1]))

    def _idle_outcome(self) -> Outcome:
        """Whether this negotiation still waits for something on an initiating stream that is negotiating."""
        ctx = self._ctx
        if ctx.role is Role.RECEIVING or ctx.state & SessionState.READY:
            return Outcome.ABANDONED  # nothing blocks: the feature stays available
        if self._first is not None or self._verifying:
            return Outcome.CONTINUE
        return Outcome.FINISHED  # a verification-only stream: every answer is in

    # -- the driver's words ----------------------------------------------------------------------------------
    def answer(self, answer: object) -> Step:
        if isinstance(answer, DialbackVerdict):
            return self._answer_verdict(answer)
        if isinstance(answer, DialbackRequest):
            ctx = self._ctx
            if not ctx.state & SessionState.READY or ctx.stream_id is None:
                raise LocalProtocolError("further domains are asked for on a ready stream only")
            if (answer.local, answer.remote) in self._asked:
                return Step()
            return Step(send=(self._result_request(answer.local, answer.remote, ctx.stream_id),))
        return super().answer(answer)

    def _answer_verdict(self, verdict: DialbackVerdict) -> Step:
        pair = (verdict.originating, verdict.receiving)
        if pair not in self._requested:
            raise LocalProtocolError(f"no dialback request from {pair[0]} to {pair[1]} is pending")
        self._requested.discard(pair)
        ctx = self._ctx
        answer = self._verdict(pair, valid=verdict.valid)
        if verdict.valid:
            ctx.domain_pairs.add((verdict.receiving.lower(), verdict.originating.lower()))
            return Step(
                send=(answer,),
                outcome=Outcome.FINISHED,
                gained=SessionState.AUTHENTICATED,
                identity=JID(verdict.originating),
            )
        if not ctx.domain_pairs:
            # Nothing else rides on this stream: XEP-0220 §2.4 (without dialback errors) ends it.
            error = StreamError(_C.NOT_AUTHORIZED, f"dialback for {verdict.originating} failed")
            return Step(send=(answer,), error=error)
        return Step(send=(answer,))

    @staticmethod
    def _verdict(pair: tuple[str, str], *, valid: bool) -> Element:
        originating, receiving = pair
        return _element(_RESULT, {"from": receiving, "to": originating, "type": "valid" if valid else "invalid"})


def _accepts(element: Element) -> bool:
    return element.name == _RESULT or element.name == _VERIFY


def dialback_feature(
    *,
    secret: str,
    local_domains: Sequence[str],
    authenticate: bool = True,
    verify: Sequence[VerifyRequest] = (),
) -> StreamFeature:
    """The dialback feature of one s2s stream.

    ``secret``: what our keys are made from (:func:`dialback_key`); ``local_domains``: those we answer
    ``db:verify`` and accept ``db:result`` for. Initiating side: ``authenticate`` sends ``db:result`` for the
    stream's own pair when the peer offers dialback; ``verify`` are ``db:verify`` requests to send (a
    verification-only stream sets ``authenticate=False``)."""
    options = _Options(secret, frozenset(d.lower() for d in local_domains), authenticate, tuple(verify))

    def advertise(ctx: NegotiationContext) -> Element | None:
        # Only once TLS is in place when it is required (RFC 6120 §5.3.1); answered with or without SASL.
        if ctx.receiving.tls_required and not ctx.state & SessionState.SECURE:
            return None
        if ctx.state & SessionState.AUTHENTICATED:
            return None
        advertised = Element(DIALBACK_NAME)
        advertised.add(_ERRORS)
        return advertised

    def required(ctx: NegotiationContext) -> bool:
        return not ctx.state & SessionState.AUTHENTICATED

    def wanted(ctx: NegotiationContext, _offer: Offer) -> bool:
        return bool(options.verify) or (options.authenticate and not ctx.state & SessionState.AUTHENTICATED)

    def negotiation(ctx: NegotiationContext) -> Negotiation:
        return _Dialback(ctx, options)

    return StreamFeature(
        name=DIALBACK_NAME,
        advertise=advertise,
        required=required,
        accepts=_accepts,
        receiver=negotiation,
        parse=lambda _element: Offer(required=False),
        wanted=wanted,
        initiator=lambda ctx, _offer: negotiation(ctx),
        persistent=True,
    )
