"""s2s streams between two machines: SASL EXTERNAL (XEP-0178), fallback to dialback, bidi (XEP-0288), headers
and addressing (RFC 6120 §4.7.1, §4.9.3). The connection counts as TLS from the start (``already_secure``): what
the certificate proves is the driver's verdict, handed in as ``certificate_valid``."""

from __future__ import annotations

import pytest

from jaybird.errors import StreamErrorCondition
from jaybird.jid import JID
from jaybird.stream import InitiatingConfig, ReceivingConfig, StreamKind, XMPPStream
from jaybird.stream import events as ev
from jaybird.stream.features.dialback import DIALBACK_NAME, DialbackVerdict, dialback_feature
from jaybird.stream.features.s2s import bidi_feature, s2s_features, sasl_external_feature
from jaybird.xml.element import Element

A, B = "a.example", "b.example"


def _pair(*, valid_for: set[str], dialback: bool = True, bidi: bool = False) -> tuple[XMPPStream, XMPPStream]:
    initiating = InitiatingConfig(JID(A), to=B, kind=StreamKind.S2S, already_secure=True)
    receiving = ReceivingConfig(
        frozenset({B}), kind=StreamKind.S2S, tls_offered=False, tls_required=False, already_secure=True
    )
    a = XMPPStream(
        initiating,
        s2s_features(
            dialback=dialback_feature(secret="a", local_domains=[A]) if dialback else None,
            external=sasl_external_feature(use=True),
            bidi=bidi_feature(use=bidi),
        ),
    )
    b = XMPPStream(
        receiving,
        s2s_features(
            dialback=dialback_feature(secret="b", local_domains=[B]) if dialback else None,
            external=sasl_external_feature(certificate_valid=lambda domain: domain in valid_for),
            bidi=bidi_feature(offer=True),
        ),
    )
    return a, b


def _pump(a: XMPPStream, b: XMPPStream) -> tuple[list[ev.Event], list[ev.Event]]:
    got_a: list[ev.Event] = []
    got_b: list[ev.Event] = []
    for _ in range(20):
        data_a, data_b = a.data_to_send(), b.data_to_send()
        if not data_a and not data_b:
            break
        if data_a:
            got_b += b.receive_data(data_a)
        if data_b:
            got_a += a.receive_data(data_b)
    return got_a, got_b


def test_initiating_header_names_the_originating_domain() -> None:
    """RFC 6120 §4.7.1: an s2s initiator says who it is ('from'), TLS or not; dialback needs it."""
    a, _ = _pair(valid_for=set())
    header = a.data_to_send()
    assert b"from='a.example'" in header and b"to='b.example'" in header and b"xmlns:db=" in header


def test_external_when_the_certificate_is_valid() -> None:
    a, b = _pair(valid_for={A})
    got_a, got_b = _pump(a, b)
    assert ev.Authenticated(JID(B), "EXTERNAL") in got_a and ev.Ready(JID(B)) in got_a
    assert ev.Authenticated(JID(A), "EXTERNAL") in got_b and ev.Ready(JID(A)) in got_b
    # XEP-0178 §3: the authzid sent is the originating domain.
    assert not any(isinstance(e, ev.DialbackRequested) for e in got_b)
    a.send(Element("{jabber:client}iq", {"type": "get", "id": "1", "from": A, "to": B}))
    assert isinstance(b.receive_data(a.data_to_send())[0], ev.StanzaReceived)


def test_dialback_when_the_certificate_is_not_valid() -> None:
    a, b = _pair(valid_for=set())  # EXTERNAL not offered
    _, got_b = _pump(a, b)
    requests = [e for e in got_b if isinstance(e, ev.DialbackRequested)]
    assert len(requests) == 1
    assert ev.Ready(JID(A)) in b.answer_feature(DIALBACK_NAME, DialbackVerdict(A, B, True))


def test_no_external_no_dialback_never_ready() -> None:
    """Policy without dialback and without a valid certificate: nothing can authenticate the peer."""
    a, b = _pair(valid_for=set(), dialback=False)
    got_a, got_b = _pump(a, b)
    assert not any(isinstance(e, ev.Ready) for e in got_b)
    assert not any(isinstance(e, ev.Ready) for e in got_a)
    assert any(isinstance(e, ev.NegotiationFailed) for e in got_a)


def test_external_with_a_foreign_authzid_is_refused() -> None:
    """RFC 6120 §6.3.8 / XEP-0178: the authzid must be the stream's 'from'; the stream stays for dialback."""
    _, b = _pair(valid_for={A})
    b.receive_data(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        b"xmlns:db='jabber:server:dialback' from='a.example' to='b.example' version='1.0'>"
    )
    assert b"EXTERNAL" in b.data_to_send()
    got = b.receive_data(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>ZXZpbC5leGFtcGxl</auth>")
    assert any(isinstance(e, ev.AuthenticationFailed) for e in got)
    assert b"invalid-authzid" in b.data_to_send()
    got = b.receive_data(b"<db:result from='a.example' to='b.example'>k</db:result>")
    assert any(isinstance(e, ev.DialbackRequested) for e in got)


def test_bidi_requested_before_authentication() -> None:
    a, b = _pair(valid_for={A}, bidi=True)
    _, got_b = _pump(a, b)
    assert ev.BidiRequested() in got_b
    # XEP-0288: with bidi, the receiving server may send back over the same stream; the initiator checks it.
    b.send(Element("{jabber:client}message", {"from": f"romeo@{B}", "to": f"juliet@{A}"}))
    assert isinstance(a.receive_data(b.data_to_send())[0], ev.StanzaReceived)


@pytest.mark.parametrize(
    ("attrs", "condition"),
    [
        ({"to": f"romeo@{B}"}, StreamErrorCondition.IMPROPER_ADDRESSING),
        ({"from": f"juliet@{A}"}, StreamErrorCondition.IMPROPER_ADDRESSING),
        ({"from": "x@c.example", "to": f"romeo@{B}"}, StreamErrorCondition.INVALID_FROM),
        ({"from": f"juliet@{A}", "to": "romeo@c.example"}, StreamErrorCondition.HOST_UNKNOWN),
    ],
)
def test_addressing_is_checked(attrs: dict[str, str], condition: StreamErrorCondition) -> None:
    """RFC 6120 §4.9.3.7 / .9 / .6 on an authenticated stream."""
    a, b = _pair(valid_for={A})
    _pump(a, b)
    a.send(Element("{jabber:client}message", attrs))
    with pytest.raises(ev.StreamViolation) as info:
        b.receive_data(a.data_to_send())
    assert info.value.error.condition is condition
