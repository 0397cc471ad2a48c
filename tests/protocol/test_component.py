"""The XEP-0114 component handshake, both sides, as wire transcripts and machine-to-machine runs (no sockets)."""

from __future__ import annotations

import pytest

from jaybird.errors import StreamError, StreamErrorCondition
from jaybird.jid import JID
from jaybird.stream.config import InitiatingConfig, ReceivingConfig
from jaybird.stream.events import (
    Event,
    Ready,
    StanzaReceived,
    StreamClosed,
    StreamErrorReceived,
    StreamOpened,
    StreamViolation,
)
from jaybird.stream.features.handshake import handshake_digest
from jaybird.stream.machine import Phase, XMPPStream
from jaybird.stream.state import SessionState, StreamKind
from jaybird.xml.element import Element

COMPONENT = "gateway.example.net"
OTHER = "bridge.example.net"
SECRETS = {COMPONENT: "sesame", OTHER: "other-secret"}
HEADER = "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'"
_C = StreamErrorCondition


def component(secret: str | None = "sesame", domain: str = COMPONENT) -> XMPPStream:
    return XMPPStream(InitiatingConfig(jid=JID(domain), kind=StreamKind.COMPONENT, password=secret, lang=None))


def server(*, stream_id: str = "3BF96D32", secrets: dict[str, str] | None = None) -> XMPPStream:
    table = SECRETS if secrets is None else secrets
    config = ReceivingConfig(
        domains=frozenset(table),
        kind=StreamKind.COMPONENT,
        tls_offered=False,
        tls_required=False,
        stream_id=lambda: stream_id,
        component_secret=table.get,
    )
    return XMPPStream(config)


def ready_server(domain: str = COMPONENT, secret: str = "sesame") -> XMPPStream:
    srv = server()
    srv.receive_data(f"{HEADER} to='{domain}'>".encode())
    events = srv.receive_data(f"<handshake>{handshake_digest('3BF96D32', secret)}</handshake>".encode())
    assert events == [Ready(JID(domain))]
    srv.data_to_send()
    return srv


def violation(machine: XMPPStream, data: bytes) -> StreamViolation:
    with pytest.raises(StreamViolation) as raised:
        machine.receive_data(data)
    assert machine.closed
    return raised.value


def pump(a: XMPPStream, b: XMPPStream) -> tuple[list[Event], list[Event]]:
    """Move bytes both ways until neither side has anything to say (bounded: a stuck pair fails)."""
    events_a: list[Event] = []
    events_b: list[Event] = []
    for _ in range(20):
        to_b, to_a = a.data_to_send(), b.data_to_send()
        if not to_a and not to_b:
            return events_a, events_b
        if to_b:
            events_b += b.receive_data(to_b)
        if to_a:
            events_a += a.receive_data(to_a)
    raise AssertionError("the machines kept talking")


def test_digest_is_lowercase_hex_sha1_of_id_then_secret() -> None:
    # XEP-0114 §3 steps 1-4; reference value from coreutils: printf '3BF96D32sesame' | sha1sum
    assert handshake_digest("3BF96D32", "sesame") == "7a98dc4c9e92493d7fd66a25364c862637789c45"


def test_component_side_transcript() -> None:
    """XEP-0114 §3: header to the component's domain without version, then the handshake, then ready."""
    comp = component()
    assert comp.data_to_send() == (
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept'"
        b" xmlns:stream='http://etherx.jabber.org/streams' to='gateway.example.net'>"
    )
    # Prosody answers with version='1.0' and no features: both are fine.
    events = comp.receive_data(f"{HEADER} from='{COMPONENT}' id='3BF96D32' version='1.0'>".encode())
    assert events == [StreamOpened("3BF96D32", COMPONENT, None, "1.0", None)]
    assert comp.data_to_send() == b"<handshake>7a98dc4c9e92493d7fd66a25364c862637789c45</handshake>"
    assert comp.receive_data(b"<handshake/>") == [Ready(JID(COMPONENT))]
    assert comp.identity == JID(COMPONENT)
    assert comp.state & SessionState.AUTHENTICATED
    # Stanzas are written in the stream's default namespace, jabber:component:accept.
    comp.send(Element("{jabber:client}message", {"from": f"bot@{COMPONENT}", "to": "juliet@example.net"}))
    assert comp.data_to_send() == b'<message from="bot@gateway.example.net" to="juliet@example.net"/>'
    events = comp.receive_data(b"<iq type='get' id='v1' from='juliet@example.net/b' to='gateway.example.net'/>")
    assert [type(e) for e in events] == [StanzaReceived]
    assert events[0].element.name == "{jabber:client}iq"  # type: ignore[union-attr]


def test_server_side_transcript() -> None:
    srv = server()
    events = srv.receive_data(f"{HEADER} to='{COMPONENT}'>".encode())
    assert events == [StreamOpened(None, None, COMPONENT, None, None)]
    # No version and no <stream:features/> (XEP-0114 §3).
    assert srv.data_to_send() == (
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept'"
        b" xmlns:stream='http://etherx.jabber.org/streams' from='gateway.example.net' id='3BF96D32'"
        b" xml:lang='en'>"
    )
    # §3 only asks the sender to lowercase; an uppercase digest is the same digest.
    events = srv.receive_data(b"<handshake>7A98DC4C9E92493D7FD66A25364C862637789C45</handshake>")
    assert events == [Ready(JID(COMPONENT))]
    assert srv.data_to_send() == b"<handshake/>"
    assert srv.identity == JID(COMPONENT)


def test_both_machines_agree_and_exchange_stanzas() -> None:
    comp, srv = component(), server(stream_id="a-random-id")
    comp_events, srv_events = pump(comp, srv)
    assert comp_events[-1] == Ready(JID(COMPONENT)) and srv_events[-1] == Ready(JID(COMPONENT))
    assert comp.phase is Phase.READY and srv.phase is Phase.READY
    comp.send(Element("{jabber:client}message", {"from": COMPONENT, "to": "juliet@example.net"}, text="hi"))
    srv.send(Element("{jabber:client}presence", {"from": "juliet@example.net/b", "to": f"bot@{COMPONENT}"}))
    comp_events, srv_events = pump(comp, srv)
    assert [type(e) for e in srv_events] == [StanzaReceived]
    assert [type(e) for e in comp_events] == [StanzaReceived]
    assert srv_events[0].element.text == "hi"  # type: ignore[union-attr]


def test_each_domain_has_its_own_secret() -> None:
    comp, srv = component("other-secret", domain=OTHER), server()
    comp_events, _ = pump(comp, srv)
    assert comp_events[-1] == Ready(JID(OTHER))
    # The secret of another component does not open this one.
    comp, srv = component("sesame", domain=OTHER), server()
    with pytest.raises(StreamViolation) as raised:
        pump(comp, srv)
    assert raised.value.error.condition is _C.NOT_AUTHORIZED


def test_wrong_secret_is_not_authorized_on_both_sides() -> None:
    """XEP-0114 §3: bad credentials close the stream with not-authorized."""
    comp, srv = component("not-the-secret"), server()
    srv.receive_data(comp.data_to_send())
    comp.receive_data(srv.data_to_send())
    raised = violation(srv, comp.data_to_send())
    assert raised.error.condition is _C.NOT_AUTHORIZED
    wire = srv.data_to_send()
    assert b'<not-authorized xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>' in wire
    assert wire.endswith(b"</stream:stream>")
    events = comp.receive_data(wire)
    assert isinstance(events[0], StreamErrorReceived) and events[0].error.condition is _C.NOT_AUTHORIZED
    assert isinstance(events[-1], StreamClosed)
    assert comp.closed and comp.phase is not Phase.READY


@pytest.mark.parametrize(
    "handshake",
    [
        b"<handshake/>",
        b"<handshake>0000000000000000000000000000000000000000</handshake>",
        "<handshake>\u00e9t\u00e9</handshake>".encode(),  # non-ASCII must not crash compare_digest
        b"<handshake><x/>7a98dc4c9e92493d7fd66a25364c862637789c45</handshake>",
    ],
)
def test_malformed_or_wrong_handshakes_are_refused(handshake: bytes) -> None:
    srv = server()
    srv.receive_data(f"{HEADER} to='{COMPONENT}'>".encode())
    assert violation(srv, handshake).error.condition is _C.NOT_AUTHORIZED


def test_domain_without_a_secret_can_never_authenticate() -> None:
    config = ReceivingConfig(
        domains=frozenset({COMPONENT}),
        kind=StreamKind.COMPONENT,
        tls_offered=False,
        tls_required=False,
        stream_id=lambda: "id",
    )
    srv = XMPPStream(config)
    srv.receive_data(f"{HEADER} to='{COMPONENT}'>".encode())
    digest = handshake_digest("id", "")
    assert violation(srv, f"<handshake>{digest}</handshake>".encode()).error.condition is _C.NOT_AUTHORIZED


@pytest.mark.parametrize("to", ["unknown.example.net", None])
def test_unknown_component_domain_is_host_unknown(to: str | None) -> None:
    """XEP-0114 §3: a name the server will not service gets a stream error, after a header of its own."""
    srv = server()
    attr = f" to='{to}'" if to else ""
    raised = violation(srv, f"{HEADER}{attr}>".encode())
    assert raised.error.condition is _C.HOST_UNKNOWN
    wire = srv.data_to_send()
    assert wire.startswith(b"<?xml version='1.0'?><stream:stream") and b"<host-unknown" in wire


def test_stanza_before_the_handshake_is_not_authorized() -> None:
    srv = server()
    srv.receive_data(f"{HEADER} to='{COMPONENT}'>".encode())
    raised = violation(srv, f"<message from='{COMPONENT}' to='juliet@example.net'/>".encode())
    assert raised.error.condition is _C.NOT_AUTHORIZED


def test_component_refuses_a_non_empty_server_handshake() -> None:
    comp = component()
    comp.receive_data(f"{HEADER} from='{COMPONENT}' id='x'>".encode())
    comp.data_to_send()
    assert violation(comp, b"<handshake>surprise</handshake>").error.condition is _C.BAD_FORMAT


def test_component_needs_the_stream_id() -> None:
    comp = component()
    assert violation(comp, f"{HEADER} from='{COMPONENT}'>".encode()).error.condition is _C.BAD_FORMAT


def test_stanzas_are_checked_once_ready() -> None:
    srv = ready_server()
    ok = [
        f"<message from='{COMPONENT}' to='juliet@example.net'/>",
        f"<presence from='bot@{COMPONENT}/r' to='juliet@example.net'/>",
        "<iq type='get' id='1' from='Bot@GATEWAY.example.net' to='example.net'><q xmlns='urn:x'/></iq>",
    ]
    events = srv.receive_data("".join(ok).encode())
    assert [type(e) for e in events] == [StanzaReceived] * 3


@pytest.mark.parametrize(
    ("stanza", "condition"),
    [
        # XEP-0114 §3: the domain of 'from' is the component's; RFC 6120 §4.9.3.9.
        ("<message from='juliet@example.net' to='romeo@example.net'/>", _C.INVALID_FROM),
        (f"<message from='x@{OTHER}' to='juliet@example.net'/>", _C.INVALID_FROM),
        (f"<message from='evil.{COMPONENT}' to='juliet@example.net'/>", _C.INVALID_FROM),
        # XEP-0114 §3: every stanza carries 'from' and 'to'; RFC 6120 §4.9.3.7.
        ("<message to='juliet@example.net'/>", _C.IMPROPER_ADDRESSING),
        (f"<iq type='get' id='1' from='{COMPONENT}'/>", _C.IMPROPER_ADDRESSING),
        # Nothing but stanzas after the handshake; RFC 6120 §4.9.3.24.
        (f"<handshake>{'0' * 40}</handshake>", _C.UNSUPPORTED_STANZA_TYPE),
    ],
)
def test_bad_stanzas_close_the_stream(stanza: str, condition: StreamErrorCondition) -> None:
    srv = ready_server()
    good = f"<message from='{COMPONENT}' to='juliet@example.net'/>"
    raised = violation(srv, (good + stanza).encode())
    assert raised.error.condition is condition
    # The stanza that came whole before the bad one is still handed over (h11's convention).
    assert [type(e) for e in raised.events] == [StanzaReceived]
    assert f"<{condition.value}".encode() in srv.data_to_send()


def test_stanza_in_the_same_read_as_the_handshake_is_checked_too() -> None:
    srv = server()
    srv.receive_data(f"{HEADER} to='{COMPONENT}'>".encode())
    digest = handshake_digest("3BF96D32", "sesame")
    raised = violation(srv, f"<handshake>{digest}</handshake><message to='a@b'/>".encode())
    assert raised.error.condition is _C.IMPROPER_ADDRESSING
    assert raised.events == (Ready(JID(COMPONENT)),)


def test_component_without_a_secret_gives_up() -> None:
    comp = component(None)
    events = comp.receive_data(f"{HEADER} from='{COMPONENT}' id='x'>".encode())
    assert any(type(e).__name__ == "NegotiationFailed" for e in events)
    assert comp.data_to_send().endswith(b"</stream:stream>")


def test_conflict_is_left_to_the_server() -> None:
    """Two components for one domain both pass the handshake: refusing the second (``conflict``) needs the
    server's view of connected components, which a single stream does not have."""
    first, second = ready_server(), ready_server()
    assert first.identity == second.identity == JID(COMPONENT)
    second.close(StreamError(_C.CONFLICT, "component already connected"))
    assert b"<conflict" in second.data_to_send() and second.closed
