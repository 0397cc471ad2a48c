"""XEP-0077 registration before authentication as a stream feature: raw bytes into a receiving machine, the
elements it answers with, and the generic request it hands its driver (no sockets, no server core)."""

from __future__ import annotations

import asyncio

import pytest

from jaybird import ns
from jaybird.errors import LocalProtocolError, StanzaError, StanzaErrorCondition, StanzaErrorType
from jaybird.ext.register.feature import INSTRUCTIONS, RegistrationRequest, registration_feature
from jaybird.ext.register.wire import FEATURE, FEATURE_NS, RegisterQuery
from jaybird.jid import JID
from jaybird.sasl import Credentials
from jaybird.stream.config import ReceivingConfig
from jaybird.stream.events import (
    CredentialsRequired,
    Event,
    FeatureRequested,
    FeaturesReceived,
    ServeContext,
    StreamViolation,
)
from jaybird.stream.feature import FeatureAnswered, StreamFeature
from jaybird.stream.features import default_features
from jaybird.stream.machine import Phase, XMPPStream
from jaybird.stream.state import StreamKind
from jaybird.xml.element import Element
from jaybird.xml.parser import ElementReceived, XMLStreamParser
from tests.protocol.conftest import DOMAIN, ClientFactory, fixed_ids
from tests.protocol.pump import Pump, TLSSetup

STREAM_NS = "xmlns:stream='http://etherx.jabber.org/streams'"
CLIENT_HEADER = f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' {STREAM_NS} to='{DOMAIN}' version='1.0'>"
REGISTER_NS = "xmlns='jabber:iq:register'"
IQ = ns.clark(ns.CLIENT, "iq")
C = StanzaErrorCondition


async def _never_called(_u: str | None, _p: str | None, _ip: str) -> JID:
    raise AssertionError("the machine never runs the registrar itself")


def serve(event: FeatureRequested, peer_address: str | None) -> object:
    """Run the request as a driver would (here with a loop of its own)."""

    async def run() -> object:
        return await event.serve(ServeContext(peer_address=peer_address))

    return asyncio.run(run())


def features(feature: StreamFeature | None = None) -> list[StreamFeature]:
    table = list(default_features(StreamKind.C2S))
    return [*table, feature if feature is not None else registration_feature(_never_called)]


class Peer:
    """A receiving machine with the register feature, and a parser reading what it sends back."""

    def __init__(self, header: str = CLIENT_HEADER, **config: object) -> None:
        options: dict[str, object] = {"domains": frozenset({DOMAIN}), "stream_id": fixed_ids()}
        options.update(config)
        self.machine = XMPPStream(ReceivingConfig(**options), features())  # type: ignore[arg-type]
        self.parser = XMLStreamParser()
        self.events: list[Event] = self.machine.receive_data(header.encode())

    def send(self, text: str) -> list[Event]:
        self.events = self.machine.receive_data(text.encode())
        return self.events

    def sent(self) -> list[Element]:
        return [e.element for e in self.parser.feed(self.machine.data_to_send()) if isinstance(e, ElementReceived)]

    def advertised(self) -> list[str]:
        (feats,) = [el for el in self.sent() if el.local == "features"]
        return [child.name for child in feats.elements()]


def secure_peer() -> Peer:
    peer = Peer(already_secure=True)
    assert FEATURE in peer.advertised()
    return peer


def register_set(username: str = "bill", password: str = "a-good-password", *, id: str = "r1") -> str:
    return (
        f"<iq type='set' id='{id}'><query {REGISTER_NS}><username>{username}</username>"
        f"<password>{password}</password></query></iq>"
    )


def requested(peer: Peer, *, id: str = "r1", username: str = "bill") -> FeatureRequested:
    events = peer.send(register_set(username, id=id))
    (event,) = events
    assert isinstance(event, FeatureRequested)
    assert event.feature == FEATURE
    assert event.request == RegistrationRequest(username, "a-good-password")
    assert peer.sent() == []  # nothing is answered before the driver's answer comes
    return event


def only_iq(peer: Peer) -> Element:
    (reply,) = peer.sent()
    assert reply.name == IQ
    return reply


# -- advertisement (XEP-0077 §4) -------------------------------------------------------------------------------
def test_advertised_before_authentication_on_a_secure_stream() -> None:
    peer = Peer(already_secure=True)
    names = peer.advertised()
    assert FEATURE in names
    assert ns.clark(ns.SASL, "mechanisms") in names


def test_not_advertised_before_required_tls() -> None:
    """RFC 6120 §5.3.1: while TLS is mandatory, STARTTLS is the only feature offered."""
    peer = Peer(tls_required=True)
    assert peer.advertised() == [ns.clark(ns.TLS, "starttls")]
    with pytest.raises(StreamViolation) as caught:
        peer.send(register_set())
    assert caught.value.error.condition.value == "not-authorized"


def test_advertised_on_a_plain_stream_when_tls_is_optional() -> None:
    assert FEATURE in Peer(tls_required=False).advertised()


def test_advertised_after_starttls_and_gone_after_sasl(
    make_client: ClientFactory, tls_setup: TLSSetup, accounts: dict[str, Credentials]
) -> None:
    """A full negotiation: the feature appears after TLS, and is no longer offered once authenticated."""
    client = make_client()
    server = XMPPStream(ReceivingConfig(domains=frozenset({DOMAIN}), stream_id=fixed_ids()), features())
    pump = Pump(client, server, accounts=accounts, tls=tls_setup)
    pump.run()
    offered = [e.names for e in pump.client.events if isinstance(e, FeaturesReceived)]
    assert len(offered) == 3  # before TLS, after TLS, after SASL
    assert [FEATURE in names for names in offered] == [False, True, False]
    assert server.phase is Phase.READY


def test_not_on_server_to_server_streams() -> None:
    header = CLIENT_HEADER.replace("'jabber:client'", "'jabber:server'")
    peer = Peer(header, kind=StreamKind.S2S, already_secure=True, tls_required=False)
    assert FEATURE not in peer.advertised()


# -- the form (XEP-0077 §3.1) ----------------------------------------------------------------------------------
def test_get_returns_the_form_without_addresses() -> None:
    peer = secure_peer()
    events = peer.send(f"<iq type='get' id='g1' to='{DOMAIN}'><query {REGISTER_NS}/></iq>")
    assert events == []
    reply = only_iq(peer)
    assert reply.attrs == {"type": "result", "id": "g1"}  # no from / to before authentication
    (payload,) = reply.elements()
    form = RegisterQuery.from_element(payload)
    assert form == RegisterQuery(username="", password="", instructions=INSTRUCTIONS)
    assert peer.machine.phase is Phase.NEGOTIATING


# -- registration: the request to the driver, and its answer -----------------------------------------------------
def test_set_asks_the_driver_then_answers_result_and_sasl_follows() -> None:
    peer = secure_peer()
    requested(peer)
    events = peer.machine.answer(FeatureAnswered(JID(f"bill@{DOMAIN}")))
    assert events == []
    assert only_iq(peer).attrs == {"type": "result", "id": "r1"}
    # The stream goes on with SASL (XEP-0077 §3.1: the client then authenticates).
    auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biwsbj1iaWxsLHI9YWJj</auth>"
    (event,) = peer.send(auth)
    assert event == CredentialsRequired("bill", "SCRAM-SHA-256")


@pytest.mark.parametrize(
    "error",
    [
        StanzaError(C.CONFLICT, text="that username is taken"),
        StanzaError(C.NOT_ACCEPTABLE, text="a username and a password are required"),
        StanzaError(C.NOT_ALLOWED),
        StanzaError(C.NOT_ACCEPTABLE, type=StanzaErrorType.WAIT, text="too many registrations"),
        StanzaError(C.RESOURCE_CONSTRAINT),
    ],
    ids=lambda e: f"{e.condition.value}-{e.error_type.value}",
)
def test_refusal_is_the_error_reply(error: StanzaError) -> None:
    peer = secure_peer()
    requested(peer)
    peer.machine.answer(FeatureAnswered(error))
    reply = only_iq(peer)
    assert reply.attrs == {"type": "error", "id": "r1"}
    err = reply.find(ns.clark(ns.CLIENT, "error"))
    assert err is not None
    got = StanzaError.from_element(err)
    assert (got.condition, got.error_type, got.text) == (error.condition, error.error_type, error.text)


def test_after_a_refusal_another_attempt_is_allowed() -> None:
    peer = secure_peer()
    requested(peer)
    peer.machine.answer(FeatureAnswered(StanzaError(C.CONFLICT)))
    peer.sent()
    requested(peer, id="r2", username="bill2")
    peer.machine.answer(FeatureAnswered(JID(f"bill2@{DOMAIN}")))
    assert only_iq(peer).attrs == {"type": "result", "id": "r2"}


def test_one_registration_per_stream() -> None:
    """XEP-0077 §3.1.1 (security): after one account, further register IQs on the stream get not-allowed."""
    peer = secure_peer()
    requested(peer)
    peer.machine.answer(FeatureAnswered(JID(f"bill@{DOMAIN}")))
    peer.sent()
    for request in (register_set("bob", id="r2"), f"<iq type='get' id='r3'><query {REGISTER_NS}/></iq>"):
        assert peer.send(request) == []  # no request to the driver
        reply = only_iq(peer)
        assert reply.attrs["type"] == "error"
        err = reply.find(ns.clark(ns.CLIENT, "error"))
        assert err is not None and StanzaError.from_element(err).condition is C.NOT_ALLOWED


def test_elements_arriving_while_waiting_are_held_in_order() -> None:
    peer = secure_peer()
    events = peer.send(register_set() + f"<iq type='get' id='g2'><query {REGISTER_NS}/></iq>")
    assert [type(e) for e in events] == [FeatureRequested]
    assert peer.sent() == []
    peer.machine.answer(FeatureAnswered(JID(f"bill@{DOMAIN}")))
    first, second = peer.sent()
    assert (first.attrs["id"], first.attrs["type"]) == ("r1", "result")
    assert (second.attrs["id"], second.attrs["type"]) == ("g2", "error")  # the one registration is made


def test_removal_before_authentication_is_not_allowed() -> None:
    peer = secure_peer()
    assert peer.send(f"<iq type='set' id='x1'><query {REGISTER_NS}><remove/></query></iq>") == []
    err = only_iq(peer).find(ns.clark(ns.CLIENT, "error"))
    assert err is not None and StanzaError.from_element(err).condition is C.NOT_ALLOWED


def test_answer_misuse_is_a_local_error() -> None:
    peer = secure_peer()
    with pytest.raises(LocalProtocolError):  # nothing waits
        peer.machine.answer(FeatureAnswered(JID(f"bill@{DOMAIN}")))
    requested(peer)
    with pytest.raises(LocalProtocolError):  # not the feature's kind of value
        peer.machine.answer(FeatureAnswered("bill"))


def test_serve_runs_the_registrar_with_the_peer_address_and_returns_refusals() -> None:
    calls: list[tuple[str | None, str | None, str]] = []

    async def registrar(username: str | None, password: str | None, ip: str) -> JID:
        calls.append((username, password, ip))
        if username == "taken":
            raise StanzaError(C.CONFLICT)
        return JID.from_parts(username, DOMAIN)

    feature = registration_feature(registrar)
    machine = XMPPStream(
        ReceivingConfig(domains=frozenset({DOMAIN}), already_secure=True, stream_id=fixed_ids()), features(feature)
    )
    machine.receive_data(CLIENT_HEADER.encode())
    (ok,) = machine.receive_data(register_set("bill").encode())
    assert isinstance(ok, FeatureRequested)
    assert serve(ok, "192.0.2.7") == JID(f"bill@{DOMAIN}")
    machine.answer(FeatureAnswered(JID(f"bill@{DOMAIN}")))
    other = XMPPStream(
        ReceivingConfig(domains=frozenset({DOMAIN}), already_secure=True, stream_id=fixed_ids()), features(feature)
    )
    other.receive_data(CLIENT_HEADER.encode())
    (refused,) = other.receive_data(register_set("taken").encode())
    assert isinstance(refused, FeatureRequested)
    value = serve(refused, None)
    assert isinstance(value, StanzaError) and value.condition is C.CONFLICT
    assert calls == [("bill", "a-good-password", "192.0.2.7"), ("taken", "a-good-password", "unknown")]


# -- everything else before authentication (RFC 6120 §4.9.3.12) ---------------------------------------------------
@pytest.mark.parametrize(
    "stanza",
    [
        "<message to='someone@example.net'><body>hi</body></message>",
        "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
        f"<iq type='result' id='x'><query {REGISTER_NS}/></iq>",
        "<presence/>",
    ],
)
def test_other_stanzas_before_authentication_are_not_authorized(stanza: str) -> None:
    peer = secure_peer()
    with pytest.raises(StreamViolation) as caught:
        peer.send(stanza)
    assert caught.value.error.condition.value == "not-authorized"


def test_without_the_feature_a_register_iq_is_not_authorized() -> None:
    """Registration off: the module contributes no feature, so the core's rule applies to the IQ too."""
    machine = XMPPStream(
        ReceivingConfig(domains=frozenset({DOMAIN}), already_secure=True, stream_id=fixed_ids()),
        default_features(StreamKind.C2S),
    )
    machine.receive_data(CLIENT_HEADER.encode())
    assert FEATURE_NS.encode() not in machine.data_to_send()
    with pytest.raises(StreamViolation) as caught:
        machine.receive_data(f"<iq type='get' id='g'><query {REGISTER_NS}/></iq>".encode())
    assert caught.value.error.condition.value == "not-authorized"
