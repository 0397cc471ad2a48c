"""Server dialback (XEP-0220) between two stream machines, no sockets; keys per XEP-0185."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from jaybird.errors import StreamErrorCondition
from jaybird.jid import JID
from jaybird.stream import InitiatingConfig, ReceivingConfig, StreamKind, XMPPStream
from jaybird.stream import events as ev
from jaybird.stream.feature import StreamFeature
from jaybird.stream.features.dialback import (
    DIALBACK_NAME,
    DialbackRequest,
    DialbackVerdict,
    VerifyRequest,
    dialback_feature,
    dialback_key,
)
from jaybird.stream.features.s2s import s2s_features
from jaybird.xml.element import Element

A, B = "a.example", "b.example"
SECRET_A, SECRET_B = "secret of a", "secret of b"


def _initiating(local: str, remote: str, feature: StreamFeature) -> XMPPStream:
    config = InitiatingConfig(JID(local), to=remote, kind=StreamKind.S2S, require_tls=False, tls_available=False)
    return XMPPStream(config, s2s_features(dialback=feature))


def _receiving(domains: list[str], secret: str) -> XMPPStream:
    config = ReceivingConfig(frozenset(domains), kind=StreamKind.S2S, tls_offered=False, tls_required=False)
    return XMPPStream(config, s2s_features(dialback=dialback_feature(secret=secret, local_domains=domains)))


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


def test_key_is_xep_0185_hmac() -> None:
    # XEP-0185 §3: HMAC-SHA256 keyed with the hex SHA-256 of the secret, over "receiving originating id".
    hashed = hashlib.sha256(b"s3cr3t").hexdigest().encode()
    expected = hmac.new(hashed, b"b.example a.example D60000229F", hashlib.sha256).hexdigest()
    assert dialback_key("s3cr3t", B, A, "D60000229F") == expected
    assert dialback_key("s3cr3t", B, A, "other") != expected


def _requested(a: XMPPStream, b: XMPPStream) -> tuple[ev.DialbackRequested, list[ev.Event]]:
    got_a, got_b = _pump(a, b)
    requests = [e for e in got_b if isinstance(e, ev.DialbackRequested)]
    assert len(requests) == 1
    return requests[0], got_a


def test_happy_path_with_authoritative_check() -> None:
    """§2.1: db:result -> (verifier asks the authoritative server with db:verify) -> type='valid'."""
    a = _initiating(A, B, dialback_feature(secret=SECRET_A, local_domains=[A]))
    b = _receiving([B], SECRET_B)
    request, _ = _requested(a, b)
    assert (request.originating, request.receiving) == (A, B)
    assert request.key == dialback_key(SECRET_A, B, A, request.stream_id)
    # The verifier side: a verification-only stream from B to A's authoritative server.
    verify = VerifyRequest(B, A, request.stream_id, request.key)
    asker = _initiating(B, A, dialback_feature(secret=SECRET_B, local_domains=[B], authenticate=False, verify=[verify]))
    authoritative = _receiving([A], SECRET_A)
    got_asker, _ = _pump(asker, authoritative)
    verified = [e for e in got_asker if isinstance(e, ev.DialbackVerified)]
    assert verified == [ev.DialbackVerified(A, B, request.stream_id, True)]
    # B answers the original stream; both ends are then ready and the pair is usable.
    events = b.answer_feature(DIALBACK_NAME, DialbackVerdict(A, B, verified[0].valid))
    assert ev.Ready(JID(A)) in events
    got_a, _ = _pump(a, b)
    assert ev.DialbackResult(A, B, True) in got_a and ev.Ready(JID(B)) in got_a
    a.send(Element("{jabber:client}message", {"from": f"juliet@{A}", "to": f"romeo@{B}"}))
    got = b.receive_data(a.data_to_send())
    assert isinstance(got[0], ev.StanzaReceived)


def test_forged_key_is_invalid_at_the_authoritative_server() -> None:
    verify = VerifyRequest(B, A, "some-id", dialback_key("not the secret", B, A, "some-id"))
    asker = _initiating(B, A, dialback_feature(secret=SECRET_B, local_domains=[B], authenticate=False, verify=[verify]))
    got, _ = _pump(asker, _receiving([A], SECRET_A))
    assert ev.DialbackVerified(A, B, "some-id", False) in got


def test_refused_dialback_closes_with_not_authorized() -> None:
    """XEP-0220 §2.4: with no other pair on the stream, a failed verification ends it (RFC 6120 §4.9.3.12)."""
    a = _initiating(A, B, dialback_feature(secret=SECRET_A, local_domains=[A]))
    b = _receiving([B], SECRET_B)
    _requested(a, b)
    with pytest.raises(ev.StreamViolation) as info:
        b.answer_feature(DIALBACK_NAME, DialbackVerdict(A, B, False))
    assert info.value.error.condition is StreamErrorCondition.NOT_AUTHORIZED
    got_a = a.receive_data(b.data_to_send())
    assert ev.DialbackResult(A, B, False) in got_a
    assert any(isinstance(e, ev.NegotiationFailed) for e in got_a)


def test_unauthenticated_sender_is_invalid_from() -> None:
    """RFC 6120 §4.9.3.9: a stanza from a domain not authenticated on the stream."""
    a = _initiating(A, B, dialback_feature(secret=SECRET_A, local_domains=[A]))
    b = _receiving([B], SECRET_B)
    _requested(a, b)
    b.answer_feature(DIALBACK_NAME, DialbackVerdict(A, B, True))
    _pump(a, b)
    a.send(Element("{jabber:client}message", {"from": "mallory@evil.example", "to": f"romeo@{B}"}))
    with pytest.raises(ev.StreamViolation) as info:
        b.receive_data(a.data_to_send())
    assert info.value.error.condition is StreamErrorCondition.INVALID_FROM


def test_piggybacked_domain_after_ready() -> None:
    """§2.5: a second originating domain on the same stream, verified while stanzas flow."""
    other = "c.example"
    a = _initiating(A, B, dialback_feature(secret=SECRET_A, local_domains=[A, other]))
    b = _receiving([B], SECRET_B)
    _requested(a, b)
    b.answer_feature(DIALBACK_NAME, DialbackVerdict(A, B, True))
    _pump(a, b)
    assert a.answer_feature(DIALBACK_NAME, DialbackRequest(other, B)) == []
    _, got_b = _pump(a, b)
    requests = [e for e in got_b if isinstance(e, ev.DialbackRequested)]
    assert [(r.originating, r.receiving) for r in requests] == [(other, B)]
    # Before the verdict, c.example may not send.
    a.send(Element("{jabber:client}message", {"from": f"x@{other}", "to": f"romeo@{B}"}))
    with pytest.raises(ev.StreamViolation):
        b.receive_data(a.data_to_send())


def test_piggybacked_domain_accepted() -> None:
    other = "c.example"
    a = _initiating(A, B, dialback_feature(secret=SECRET_A, local_domains=[A, other]))
    b = _receiving([B], SECRET_B)
    _requested(a, b)
    b.answer_feature(DIALBACK_NAME, DialbackVerdict(A, B, True))
    _pump(a, b)
    a.answer_feature(DIALBACK_NAME, DialbackRequest(other, B))
    _pump(a, b)
    b.answer_feature(DIALBACK_NAME, DialbackVerdict(other, B, True))
    got_a, _ = _pump(a, b)
    assert ev.DialbackResult(other, B, True) in got_a
    a.send(Element("{jabber:client}message", {"from": f"x@{other}", "to": f"romeo@{B}"}))
    assert isinstance(b.receive_data(a.data_to_send())[0], ev.StanzaReceived)


def test_result_for_a_domain_not_served_is_host_unknown() -> None:
    b = _receiving([B], SECRET_B)
    header = (
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        b"xmlns:db='jabber:server:dialback' from='a.example' to='b.example' version='1.0'>"
    )
    b.receive_data(header)
    with pytest.raises(ev.StreamViolation) as info:
        b.receive_data(b"<db:result from='a.example' to='elsewhere.example'>abc</db:result>")
    assert info.value.error.condition is StreamErrorCondition.HOST_UNKNOWN
