"""One negotiation over every framing: WebSocket (RFC 7395) and BOSH (XEP-0124 / XEP-0206), machine to machine.

The frame pump below plays the transport: over WebSocket every frame is one message; over BOSH the frames a
side queued become one ``<body/>`` (stream-level body frames merged into its attributes), as a BOSH client or a
connection manager would build it.
"""

from __future__ import annotations

from typing import Any

import pytest

from jaybird import ns
from jaybird.errors import LocalProtocolError, StanzaError, StanzaErrorCondition, StreamErrorCondition
from jaybird.jid import JID
from jaybird.sasl import Credentials
from jaybird.stream.config import InitiatingConfig, ReceivingConfig
from jaybird.stream.events import (
    Authenticated,
    BindRequested,
    CredentialsRequired,
    Event,
    FeaturesReceived,
    StanzaReceived,
    StreamClosed,
    StreamErrorReceived,
    StreamOpened,
    StreamViolation,
)
from jaybird.stream.framing import (
    BODY,
    XBOSH_RESTART,
    XBOSH_VERSION,
    Framing,
    body_frame,
    body_frame_attrs,
    is_body_frame,
    wrap_body,
)
from jaybird.stream.machine import Phase, XMPPStream
from jaybird.xml import parser
from jaybird.xml.element import Element
from tests.protocol.conftest import DOMAIN, PASSWORD, USER, fixed_ids

MAX_ROUNDS = 50
OPEN = ns.clark(ns.FRAMING, "open")
MESSAGE = ns.clark(ns.CLIENT, "message")


def client(framing: Framing, **overrides: Any) -> XMPPStream:
    # wss:// and https:// are TLS from the first byte: STARTTLS has no place on a framed stream.
    options: dict[str, Any] = {
        "jid": JID(f"{USER}@{DOMAIN}"),
        "password": PASSWORD,
        "already_secure": True,
        "tls_available": False,
        "resource": "web",
    }
    options.update(overrides)
    return XMPPStream(InitiatingConfig(**options), framing=framing)


def server(framing: Framing, **overrides: Any) -> XMPPStream:
    options: dict[str, Any] = {
        "domains": frozenset({DOMAIN}),
        "stream_id": fixed_ids(),
        "already_secure": True,
        "tls_offered": False,
    }
    options.update(overrides)
    return XMPPStream(ReceivingConfig(**options), framing=framing)


def parse_frame(frame: bytes) -> Element:
    """RFC 7395 §3.3.3: every frame is exactly one complete, namespace-declaring element."""
    events = parser.XMLStreamParser(root=None).feed(frame)
    assert len(events) == 1 and isinstance(events[0], parser.ElementReceived), frame
    return events[0].element


class FramePump:
    def __init__(
        self,
        a: XMPPStream,
        b: XMPPStream,
        accounts: dict[str, Credentials],
        *,
        refuse_bind: StanzaError | None = None,
    ) -> None:
        self.client, self.server = a, b
        self.refuse_bind = refuse_bind
        self.accounts = accounts
        self.events: dict[str, list[Event]] = {"client": [], "server": []}
        self.wire: dict[str, list[bytes]] = {"client": [], "server": []}  # frames, or BOSH bodies

    def run(self) -> None:
        for _ in range(MAX_ROUNDS):
            moved = self._move("client", self.client, self.server)
            moved = self._move("server", self.server, self.client) or moved
            if not moved:
                return
        raise AssertionError("the pump did not settle")

    def _move(self, name: str, source: XMPPStream, target: XMPPStream) -> bool:
        frames = source.frames_to_send()
        if not frames:
            return False
        other = "server" if name == "client" else "client"
        if source.framing is Framing.WEBSOCKET:
            messages = frames
        else:
            attrs: dict[str, str] = {}
            payload = []
            for frame in frames:
                if is_body_frame(frame):
                    attrs.update(body_frame_attrs(frame))
                else:
                    payload.append(frame)
            if name == "server":
                attrs.setdefault("sid", "session-1")  # what a connection manager adds
            messages = [wrap_body(attrs, payload)]
        for message in messages:
            self.wire[name].append(message)
            if not target.closed:
                self._handle(other, target, target.receive_data(message))
        return True

    def _handle(self, name: str, machine: XMPPStream, events: list[Event]) -> None:
        for event in events:
            self.events[name].append(event)
            if isinstance(event, CredentialsRequired):
                self._handle(name, machine, machine.provide_credentials(self.accounts.get(event.username)))
            elif isinstance(event, BindRequested):
                identity = machine.identity
                assert identity is not None
                if self.refuse_bind is not None:
                    self._handle(name, machine, machine.fail_bind(self.refuse_bind))
                else:
                    jid = identity.with_resource(event.resource or "x")
                    self._handle(name, machine, machine.complete_bind(jid))


def of_type(events: list[Event], kind: type[Event]) -> list[Event]:
    return [e for e in events if isinstance(e, kind)]


# -- WebSocket --------------------------------------------------------------------------------------------------


def test_websocket_negotiation_one_element_per_frame(accounts: dict[str, Credentials]) -> None:
    a, b = client(Framing.WEBSOCKET), server(Framing.WEBSOCKET)
    pump = FramePump(a, b, accounts)
    pump.run()
    assert a.phase is Phase.READY and b.phase is Phase.READY
    assert a.jid == JID(f"{USER}@{DOMAIN}/web")
    assert of_type(pump.events["client"], Authenticated)
    # RFC 7395 §3.3.1: the client opens with <open to= version='1.0'/> in the framing namespace ...
    first = parse_frame(pump.wire["client"][0])
    assert first.name == OPEN and first.attrs == {"to": DOMAIN, "version": "1.0", ns.clark(ns.XML, "lang"): "en"}
    # ... the server answers with <open from= id= version='1.0'/> (§3.3.2) ...
    answer = parse_frame(pump.wire["server"][0])
    assert answer.name == OPEN and answer.get("from") == DOMAIN and answer.get("id") == "s1"
    # ... and every frame either side sent is one element (§3.3.3); the stream restarts after SASL with a new
    # <open/> (§3.5), never a stream header.
    for frame in pump.wire["client"] + pump.wire["server"]:
        parse_frame(frame)
        assert b"stream:stream" not in frame
    opens = [f for f in pump.wire["client"] if parse_frame(f).name == OPEN]
    assert len(opens) == 2
    assert len(of_type(pump.events["client"], StreamOpened)) == 2
    assert len(of_type(pump.events["client"], FeaturesReceived)) == 2


def test_websocket_stanzas_declare_jabber_client(accounts: dict[str, Credentials]) -> None:
    a, b = client(Framing.WEBSOCKET), server(Framing.WEBSOCKET)
    FramePump(a, b, accounts).run()
    a.send(Element(MESSAGE, {"to": "romeo@example.net"}, children=[Element(ns.clark(ns.CLIENT, "body"), text="hi")]))
    (frame,) = a.frames_to_send()
    # RFC 7395 §3.4: no stream supplies a default namespace, so the stanza carries its own.
    assert frame.startswith(b'<message xmlns="jabber:client"')
    (event,) = b.receive_data(frame)
    assert isinstance(event, StanzaReceived)
    assert event.element.name == MESSAGE and event.element.find_text(ns.clark(ns.CLIENT, "body")) == "hi"


def test_websocket_close_is_answered_with_close(accounts: dict[str, Credentials]) -> None:
    a, b = client(Framing.WEBSOCKET), server(Framing.WEBSOCKET)
    FramePump(a, b, accounts).run()
    a.close()
    (close,) = a.frames_to_send()
    assert close == b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
    assert of_type(b.receive_data(close), StreamClosed)
    (answer,) = b.frames_to_send()  # RFC 7395 §3.6: the receiver answers <close/> with <close/>
    assert parse_frame(answer).name == ns.clark(ns.FRAMING, "close")
    assert of_type(a.receive_data(answer), StreamClosed)
    assert a.closed and b.closed


def test_websocket_see_other_uri_is_reported_as_redirect() -> None:
    a = client(Framing.WEBSOCKET)
    a.frames_to_send()
    a.receive_data(b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='example.net' id='x' version='1.0'/>")
    events = a.receive_data(
        b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing' see-other-uri='wss://other.example.net/ws'/>"
    )
    # RFC 7395 §3.6.1: the new endpoint comes with <close/>; the driver sees it where TCP's see-other-host goes.
    errors = of_type(events, StreamErrorReceived)
    assert len(errors) == 1 and isinstance(errors[0], StreamErrorReceived)
    assert errors[0].error.condition is StreamErrorCondition.SEE_OTHER_HOST
    assert errors[0].error.other_host == "wss://other.example.net/ws"
    assert of_type(events, StreamClosed) and a.closed


def test_websocket_see_other_host_from_server_config() -> None:
    a, b = client(Framing.WEBSOCKET), server(Framing.WEBSOCKET, see_other_host="alt.example.net")
    pump = FramePump(a, b, {})
    pump.run()
    errors = [e for e in pump.events["client"] if isinstance(e, StreamErrorReceived)]
    assert errors and errors[0].error.other_host == "alt.example.net"
    assert parse_frame(pump.wire["server"][-1]).name == ns.clark(ns.FRAMING, "close")


def test_websocket_open_without_version_is_refused() -> None:
    b = server(Framing.WEBSOCKET)
    with pytest.raises(StreamViolation) as info:
        b.receive_data(b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.net'/>")
    assert info.value.error.condition is StreamErrorCondition.UNSUPPORTED_VERSION
    frames = [parse_frame(f).name for f in b.frames_to_send()]
    # RFC 6120 §4.9.1.2 over RFC 7395: our <open/>, the error, then <close/>.
    assert frames == [OPEN, ns.clark(ns.STREAM, "error"), ns.clark(ns.FRAMING, "close")]


def test_framed_stream_refuses_data_to_send() -> None:
    a = client(Framing.WEBSOCKET)
    with pytest.raises(LocalProtocolError):
        a.data_to_send()
    tcp = XMPPStream(InitiatingConfig(jid=JID(f"{USER}@{DOMAIN}"), password=PASSWORD))
    (chunk,) = tcp.frames_to_send()
    assert chunk.startswith(b"<?xml version='1.0'?><stream:stream")


# -- BOSH -------------------------------------------------------------------------------------------------------


def body_of(raw: bytes) -> Element:
    element = parse_frame(raw)
    assert element.name == BODY
    return element


def test_bosh_negotiation(accounts: dict[str, Credentials]) -> None:
    a, b = client(Framing.BOSH), server(Framing.BOSH)
    pump = FramePump(a, b, accounts)
    pump.run()
    assert a.phase is Phase.READY and b.phase is Phase.READY
    assert a.jid == JID(f"{USER}@{DOMAIN}/web")
    # XEP-0206 §4: the session request carries to= and xmpp:version='1.0' ...
    creation = body_of(pump.wire["client"][0])
    assert creation.get("to") == DOMAIN and creation.get(XBOSH_VERSION) == "1.0"
    assert creation.get(XBOSH_RESTART) is None and not list(creation.elements())
    # ... the response carries authid, xmpp:version and the features inline ...
    response = body_of(pump.wire["server"][0])
    assert response.get("authid") == "s1" and response.get(XBOSH_VERSION) == "1.0"
    assert response.find(ns.clark(ns.STREAM, "features")) is not None
    # ... and after SASL success the client asks for a restart with xmpp:restart='true' (§5).
    restarts = [body_of(raw) for raw in pump.wire["client"] if body_of(raw).get(XBOSH_RESTART) == "true"]
    assert len(restarts) == 1 and restarts[0].get("to") == DOMAIN and not list(restarts[0].elements())
    assert len(of_type(pump.events["client"], FeaturesReceived)) == 2
    opened = of_type(pump.events["client"], StreamOpened)
    assert len(opened) == 2 and all(isinstance(e, StreamOpened) and e.stream_id for e in opened)

    a.send(Element(MESSAGE, {"to": "romeo@example.net"}))
    (frame,) = a.frames_to_send()
    assert frame == b'<message xmlns="jabber:client" to="romeo@example.net"/>'
    (event,) = b.receive_data(wrap_body({"rid": "7", "sid": "session-1"}, [frame]))
    assert isinstance(event, StanzaReceived) and event.element.name == MESSAGE


def test_bosh_client_close_is_a_terminate_body(accounts: dict[str, Credentials]) -> None:
    a, b = client(Framing.BOSH), server(Framing.BOSH)
    FramePump(a, b, accounts).run()
    a.close()
    (frame,) = a.frames_to_send()
    assert is_body_frame(frame) and body_frame_attrs(frame) == {"type": "terminate"}  # XEP-0124 §13
    events = b.receive_data(wrap_body({"sid": "session-1", "rid": "9", "type": "terminate"}, []))
    assert of_type(events, StreamClosed) and b.closed


def test_bosh_terminal_condition_becomes_stream_error() -> None:
    a = client(Framing.BOSH)
    a.frames_to_send()
    events = a.receive_data(wrap_body({"type": "terminate", "condition": "improper-addressing"}, []))
    errors = of_type(events, StreamErrorReceived)
    assert len(errors) == 1 and isinstance(errors[0], StreamErrorReceived)
    assert errors[0].error.condition is StreamErrorCondition.IMPROPER_ADDRESSING
    assert of_type(events, StreamClosed) and a.closed
    assert a.frames_to_send() == []  # the session is gone: a terminate would find no sid (XEP-0124 §13)


def test_bosh_unknown_terminal_condition_and_see_other_uri() -> None:
    a = client(Framing.BOSH)
    events = a.receive_data(wrap_body({"type": "terminate", "condition": "item-not-found"}, []))
    (error,) = [e for e in events if isinstance(e, StreamErrorReceived)]
    assert error.error.condition is StreamErrorCondition.UNDEFINED_CONDITION and "item-not-found" in str(error.error)
    b = client(Framing.BOSH)
    uri = b"<uri xmlns='http://jabber.org/protocol/httpbind'>https://alt.example.net/bosh</uri>"
    events = b.receive_data(wrap_body({"type": "terminate", "condition": "see-other-uri"}, [uri]))
    (error,) = [e for e in events if isinstance(e, StreamErrorReceived)]
    assert error.error.condition is StreamErrorCondition.SEE_OTHER_HOST
    assert error.error.other_host == "https://alt.example.net/bosh"


def test_bosh_empty_poll_response_is_not_a_header() -> None:
    a = client(Framing.BOSH)
    a.frames_to_send()
    assert a.receive_data(wrap_body({}, [])) == []  # an answered long poll, nothing in it
    assert a.phase is Phase.HEADER
    features = b"<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>"
    events = a.receive_data(wrap_body({"sid": "s", "authid": "abc", XBOSH_VERSION: "1.0", "from": DOMAIN}, [features]))
    assert isinstance(events[0], StreamOpened) and events[0].stream_id == "abc"
    assert isinstance(events[1], FeaturesReceived)


def test_bosh_session_without_version_is_refused() -> None:
    b = server(Framing.BOSH)
    with pytest.raises(StreamViolation) as info:
        b.receive_data(wrap_body({"to": DOMAIN, "rid": "1", "wait": "60"}, []))
    assert info.value.error.condition is StreamErrorCondition.UNSUPPORTED_VERSION


def test_body_frames_round_trip() -> None:
    frame = body_frame({"to": DOMAIN, XBOSH_RESTART: "true", ns.clark(ns.XML, "lang"): "en"})
    assert b"xmpp:restart='true'" in frame and b"xml:lang='en'" in frame
    assert body_frame_attrs(frame) == {"to": DOMAIN, XBOSH_RESTART: "true", ns.clark(ns.XML, "lang"): "en"}
    with pytest.raises(ValueError):
        body_frame_attrs(b"<message xmlns='jabber:client'/>")
    with pytest.raises(ValueError):
        wrap_body({}, [frame])


def test_bind_refusal_travels_as_a_frame(accounts: dict[str, Credentials]) -> None:
    a, b = client(Framing.WEBSOCKET), server(Framing.WEBSOCKET)
    pump = FramePump(a, b, accounts, refuse_bind=StanzaError(StanzaErrorCondition.CONFLICT))
    pump.run()
    assert a.phase is not Phase.READY
    assert any(b"<iq" in f and b'type="error"' in f and b"jabber:client" in f for f in pump.wire["server"])


def test_framed_stream_ignores_a_starttls_offer() -> None:
    # XEP-0206 §8 / RFC 7395 §3.7: TLS is the HTTP layer's. Prosody 0.12's mod_bosh still offers STARTTLS as
    # required; taking the offer seriously would make every BOSH login fail.
    a = client(Framing.BOSH)
    a.frames_to_send()
    features = (
        b"<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
        b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
        b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms>"
        b"</stream:features>"
    )
    a.receive_data(wrap_body({"sid": "s", "authid": "x", XBOSH_VERSION: "1.0"}, [features]))
    (frame,) = a.frames_to_send()
    assert parse_frame(frame).name == ns.clark(ns.SASL, "auth") and a.phase is Phase.NEGOTIATING
