"""Wire transcripts: raw bytes into one machine, the exact bytes it answers with (RFC 6120)."""

from __future__ import annotations

import base64

import pytest

from jaybird import ns
from jaybird.errors import (
    LocalProtocolError,
    SASLCondition,
    StanzaError,
    StanzaErrorCondition,
    StreamError,
    StreamErrorCondition,
)
from jaybird.jid import JID
from jaybird.sasl import Credentials
from jaybird.stream.events import (
    Authenticated,
    AuthenticationFailed,
    BindRequested,
    Bound,
    CredentialsRequired,
    FeaturesReceived,
    NegotiationFailed,
    Ready,
    StanzaReceived,
    StreamClosed,
    StreamErrorReceived,
    StreamOpened,
    StreamViolation,
    TLSRequested,
)
from jaybird.stream.features.sasl import decode_payload, encode_payload
from jaybird.stream.machine import Phase, XMPPStream
from jaybird.stream.state import SessionState, StreamKind
from jaybird.xml.element import Element
from tests.protocol.conftest import DOMAIN, PASSWORD, USER, ClientFactory, ServerFactory

STREAM_NS = "xmlns:stream='http://etherx.jabber.org/streams'"
CLIENT_HEADER = f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' {STREAM_NS} to='{DOMAIN}' version='1.0'>"
SASL_NS = 'xmlns="urn:ietf:params:xml:ns:xmpp-sasl"'
STREAMS_NS = 'xmlns="urn:ietf:params:xml:ns:xmpp-streams"'
STANZAS_NS = 'xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"'
BIND_NS = 'xmlns="urn:ietf:params:xml:ns:xmpp-bind"'
CLOSE = b"</stream:stream>"


def server_header(stream_id: str, *, from_: str | None = DOMAIN, extra: str = "") -> bytes:
    sender = f" from='{from_}'" if from_ else ""
    return (
        f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' {STREAM_NS}{sender}{extra}"
        f" id='{stream_id}' version='1.0' xml:lang='en'>"
    ).encode()


def stream_error(condition: str, text: str | None = None) -> bytes:
    described = f"<text {STREAMS_NS}>{text}</text>" if text else ""
    return f"<stream:error><{condition} {STREAMS_NS}/>{described}</stream:error>".encode() + CLOSE


NOT_AUTHORIZED = stream_error("not-authorized", "stream negotiation is not complete")


def violation(machine: XMPPStream, data: bytes) -> StreamViolation:
    with pytest.raises(StreamViolation) as caught:
        machine.receive_data(data)
    assert machine.closed
    return caught.value


def plain(user: str = USER, password: str = PASSWORD) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def authenticated(make_server: ServerFactory, accounts: dict[str, Credentials], **config: object) -> XMPPStream:
    """A receiving machine past SASL (PLAIN over direct TLS), its output drained, at the post-auth features."""
    server = make_server(already_secure=True, **config)
    server.receive_data(CLIENT_HEADER.encode())
    events = server.receive_data(f"<auth {SASL_NS} mechanism='PLAIN'>{plain()}</auth>".encode())
    if events and isinstance(events[-1], CredentialsRequired):
        events = server.provide_credentials(accounts[USER])
    assert isinstance(events[-1], Authenticated)
    server.receive_data(CLIENT_HEADER.encode())
    server.data_to_send()
    return server


# -- stream headers (§4.7) and header errors (§4.9.3) -----------------------------------------------------------
def test_response_header_and_required_starttls(make_server: ServerFactory) -> None:
    """§4.7: from/id/version/xml:lang; §4.3.2 features follow; §5.4.1 <required/> when TLS is mandatory."""
    server = make_server()
    events = server.receive_data(CLIENT_HEADER.encode())
    assert events == [StreamOpened(None, None, DOMAIN, "1.0", None)]
    assert server.data_to_send() == server_header("s1") + (
        b'<stream:features><starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"><required/></starttls></stream:features>'
    )
    assert server.phase is Phase.NEGOTIATING


def test_response_header_echoes_from_and_lang(make_server: ServerFactory) -> None:
    """§4.7.2: the response's 'to' is the initiator's 'from'; §4.7.4 xml:lang follows the initiator's."""
    server = make_server(tls_required=False)
    header = CLIENT_HEADER.replace(" version='1.0'>", f" from='{USER}@{DOMAIN}' xml:lang='fr' version='1.0'>")
    server.receive_data(header.encode())
    out = server.data_to_send()
    assert out.startswith(
        f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' {STREAM_NS} from='{DOMAIN}'"
        f" to='{USER}@{DOMAIN}' id='s1' version='1.0' xml:lang='fr'>".encode()
    )
    # TLS offered but not required: SASL is advertised next to it.
    assert b'<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>' in out
    assert b"<mechanism>SCRAM-SHA-512</mechanism>" in out and b"PLAIN" not in out


def test_stream_ids_are_random_and_long() -> None:
    """§4.7.3: unpredictable ids; the default generator gives 128 bits."""
    from jaybird.stream.config import random_stream_id

    ids = {random_stream_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)


@pytest.mark.parametrize("to", ["other.example", None])
def test_unknown_host(make_server: ServerFactory, to: str | None) -> None:
    """§4.9.3.6 host-unknown; §4.9.1.2 the error travels on a response header."""
    server = make_server()
    header = CLIENT_HEADER.replace(f" to='{DOMAIN}'", f" to='{to}'" if to else "")
    error = violation(server, header.encode())
    assert error.error.condition is StreamErrorCondition.HOST_UNKNOWN
    assert server.data_to_send() == server_header("s1", from_=None) + stream_error(
        "host-unknown", "this server does not serve that domain"
    )


def test_wrong_stream_namespace(make_server: ServerFactory) -> None:
    """§4.8.1 / §4.9.3.10: the stream namespace must be http://etherx.jabber.org/streams."""
    server = make_server()
    header = CLIENT_HEADER.replace("http://etherx.jabber.org/streams", "urn:example:wrong")
    violation(server, header.encode())
    out = server.data_to_send()
    assert out.startswith(b"<?xml version='1.0'?><stream:stream ")
    assert f"<stream:error><invalid-namespace {STREAMS_NS}/>".encode() in out
    assert out.endswith(b"</stream:error>" + CLOSE)


def test_wrong_content_namespace(make_server: ServerFactory) -> None:
    """§4.8.2 / §4.9.3.10: a c2s stream must declare jabber:client."""
    server = make_server()
    header = CLIENT_HEADER.replace("xmlns='jabber:client'", "xmlns='jabber:server'")
    violation(server, header.encode())
    assert server.data_to_send() == server_header("s1") + stream_error(
        "invalid-namespace", "this stream speaks jabber:client"
    )


@pytest.mark.parametrize("version", [None, "0.9", "2.0", "x.y"])
def test_unsupported_version(make_server: ServerFactory, version: str | None) -> None:
    """§4.7.5: no version (pre-1.0) or another major version -> §4.9.3.25 unsupported-version."""
    server = make_server()
    replacement = f" version='{version}'" if version else ""
    violation(server, CLIENT_HEADER.replace(" version='1.0'>", replacement + ">").encode())
    assert server.data_to_send() == server_header("s1") + stream_error("unsupported-version", "XMPP 1.0 is required")


def test_higher_minor_version_is_accepted(make_server: ServerFactory) -> None:
    """§4.7.5: a higher minor version is answered with the version we speak."""
    server = make_server()
    server.receive_data(CLIENT_HEADER.replace("'1.0'>", "'1.1'>").encode())
    assert server.data_to_send().startswith(server_header("s1"))


def test_s2s_header_declares_dialback(make_server: ServerFactory) -> None:
    """XEP-0220: the db: prefix is declared on server-to-server streams."""
    server = make_server(kind=StreamKind.S2S)
    header = CLIENT_HEADER.replace("jabber:client", "jabber:server").replace(
        " version='1.0'>", " xmlns:db='jabber:server:dialback' version='1.0'>"
    )
    server.receive_data(header.encode())
    assert server.data_to_send().startswith(
        f"<?xml version='1.0'?><stream:stream xmlns='jabber:server' {STREAM_NS}"
        f" xmlns:db='jabber:server:dialback' from='{DOMAIN}' id='s1'".encode()
    )
    assert server.state & SessionState.S2S


def test_see_other_host(make_server: ServerFactory, make_client: ClientFactory) -> None:
    """§4.9.3.19: the redirect carries the other host; the client reports it."""
    server = make_server(see_other_host="other.example.net:5222")
    server.receive_data(CLIENT_HEADER.encode())
    out = server.data_to_send()
    assert (
        out
        == server_header("s1")
        + (
            f"<stream:error><see-other-host {STREAMS_NS}>other.example.net:5222</see-other-host></stream:error>"
        ).encode()
        + CLOSE
    )
    assert server.closed

    client = make_client()
    client.data_to_send()
    events = client.receive_data(out)
    assert isinstance(events[0], StreamOpened)
    assert isinstance(events[1], StreamErrorReceived)
    assert events[1].error.condition is StreamErrorCondition.SEE_OTHER_HOST
    assert events[1].error.other_host == "other.example.net:5222"
    assert events[2:] == [StreamClosed()]
    assert client.data_to_send() == CLOSE  # §4.4: our own close tag answers theirs
    assert client.closed


# -- closing (§4.4) and stream errors we send (§4.9) -----------------------------------------------------------------
def test_close_with_error(make_server: ServerFactory) -> None:
    server = make_server()
    server.receive_data(CLIENT_HEADER.encode())
    server.data_to_send()
    server.close(StreamError(StreamErrorCondition.SYSTEM_SHUTDOWN, "maintenance"))
    assert (
        server.data_to_send()
        == (
            f"<stream:error><system-shutdown {STREAMS_NS}/>"
            f'<text xmlns="urn:ietf:params:xml:ns:xmpp-streams">maintenance</text></stream:error>'
        ).encode()
        + CLOSE
    )
    assert server.closed
    server.close()
    assert server.data_to_send() == b""


def test_close_before_the_header_still_sends_one(make_server: ServerFactory) -> None:
    """§4.9.1.2: an error before the response header needs a header to travel on."""
    server = make_server()
    server.close(StreamError(StreamErrorCondition.CONNECTION_TIMEOUT))
    assert server.data_to_send() == server_header("s1", from_=None) + stream_error("connection-timeout")


def test_peer_close_is_answered_once(make_server: ServerFactory) -> None:
    server = make_server()
    server.receive_data(CLIENT_HEADER.encode())
    server.data_to_send()
    assert server.receive_data(CLOSE) == [StreamClosed()]
    assert server.data_to_send() == CLOSE
    assert server.closed
    server.close()
    assert server.data_to_send() == b""
    assert server.receive_data(b"<message/>") == []


def test_stream_error_received_then_close(make_server: ServerFactory) -> None:
    """§4.9: the peer's stream error is reported; its close tag then ends the stream."""
    server = make_server()
    server.receive_data(CLIENT_HEADER.encode())
    server.data_to_send()
    events = server.receive_data(f"<stream:error><reset {STREAMS_NS}/></stream:error>".encode())
    assert len(events) == 1 and isinstance(events[0], StreamErrorReceived)
    assert events[0].error.condition is StreamErrorCondition.RESET
    assert server.receive_data(CLOSE) == [StreamClosed()]
    assert server.data_to_send() == CLOSE


# -- negotiation-order errors -----------------------------------------------------------------------------------------
def test_stanza_before_authentication(make_server: ServerFactory) -> None:
    """§4.9.3.12 not-authorized: data before the stream is authenticated is not processed."""
    server = make_server(tls_required=False)
    server.receive_data(CLIENT_HEADER.encode())
    server.data_to_send()
    error = violation(server, b"<message to='romeo@example.net'><body>hi</body></message>")
    assert error.error.condition is StreamErrorCondition.NOT_AUTHORIZED
    assert server.data_to_send() == NOT_AUTHORIZED


def test_auth_before_mandatory_tls(make_server: ServerFactory) -> None:
    """§5.3.1: with TLS mandatory only STARTTLS is offered; SASL before it is refused."""
    server = make_server()
    server.receive_data(CLIENT_HEADER.encode())
    server.data_to_send()
    violation(server, f"<auth {SASL_NS} mechanism='PLAIN'>{plain()}</auth>".encode())
    assert server.data_to_send() == NOT_AUTHORIZED


def test_stanza_before_bind(make_server: ServerFactory, accounts: dict[str, Credentials]) -> None:
    """§7.1 / §4.9.3.12: stanzas wait for a bound resource."""
    server = authenticated(make_server, accounts)
    violation(server, b"<presence/>")
    assert server.data_to_send() == NOT_AUTHORIZED


def test_send_before_ready_is_a_local_error(make_server: ServerFactory) -> None:
    server = make_server()
    with pytest.raises(LocalProtocolError):
        server.send(Element(ns.clark(ns.CLIENT, "message")))
    with pytest.raises(LocalProtocolError):
        server.tls_established(None)
    with pytest.raises(LocalProtocolError):
        server.complete_bind(JID(f"{USER}@{DOMAIN}/x"))


def test_malformed_xml_after_ready(make_server: ServerFactory, accounts: dict[str, Credentials]) -> None:
    """§4.9.3.13 not-well-formed, detected by the parser, ends even a ready stream."""
    server = authenticated(make_server, accounts)
    server.receive_data(f"<iq type='set' id='b'><bind {BIND_NS}/></iq>".encode())
    server.complete_bind(JID(f"{USER}@{DOMAIN}/r"))
    server.data_to_send()
    assert len(server.receive_data(b"<message><body>one</body></message>")) == 1
    error = violation(server, b"<message></iq>")
    assert error.error.condition is StreamErrorCondition.NOT_WELL_FORMED
    out = server.data_to_send()
    assert out.startswith(f"<stream:error><not-well-formed {STREAMS_NS}/>".encode()) and out.endswith(CLOSE)


def test_violation_keeps_the_events_before_it(make_server: ServerFactory) -> None:
    """Events produced by the same input before the violation travel on the exception."""
    server = sasl_server(make_server, max_auth_attempts=2)
    error = violation(server, f"<auth {SASL_NS} mechanism='X-ONE'/><auth {SASL_NS} mechanism='X-TWO'/>".encode())
    assert [type(e) for e in error.events] == [AuthenticationFailed, AuthenticationFailed]
    assert error.error.condition is StreamErrorCondition.POLICY_VIOLATION


# -- STARTTLS (§5.4) --------------------------------------------------------------------------------------------------
def test_starttls_proceed_and_restart(make_server: ServerFactory) -> None:
    """§5.4.2.3 <proceed/>; §5.4.3.3 restart over TLS with a new id and the post-TLS features."""
    server = make_server()
    server.receive_data(CLIENT_HEADER.encode())
    server.data_to_send()
    events = server.receive_data(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    assert events == [TLSRequested()]
    assert server.data_to_send() == b'<proceed xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>'
    assert server.tls_established(None) == []
    assert server.state & SessionState.SECURE
    assert server.phase is Phase.HEADER
    assert server.data_to_send() == b""  # the initiator speaks first after a restart
    server.receive_data(CLIENT_HEADER.encode())
    out = server.data_to_send()
    assert out.startswith(server_header("s2"))
    assert b"starttls" not in out
    assert b"<mechanism>SCRAM-SHA-256</mechanism>" in out and b"<mechanism>PLAIN</mechanism>" in out
    assert b"-PLUS" not in out  # no channel binding was given


def test_starttls_failure_on_the_initiating_side(make_client: ClientFactory) -> None:
    """§5.4.2.2: <failure/> ends the attempt; we report it and close."""
    client = make_client()
    client.data_to_send()
    client.receive_data(server_header("s1"))
    client.receive_data(
        b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"
    )
    assert client.data_to_send() == b'<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>'
    events = client.receive_data(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    assert events == [NegotiationFailed("the server could not proceed with STARTTLS")]
    assert client.data_to_send() == CLOSE


def test_initiating_side_checks_the_response_header(make_client: ClientFactory) -> None:
    client = make_client()
    client.data_to_send()
    error = violation(client, server_header("s1").replace(b"version='1.0'", b"version='2.0'"))
    assert error.error.condition is StreamErrorCondition.UNSUPPORTED_VERSION
    assert client.data_to_send() == stream_error("unsupported-version", "XMPP 1.0 is required")


def test_initiating_header_hides_our_address_until_tls(make_client: ClientFactory) -> None:
    """§4.7.1: 'from' only on a protected stream."""
    assert (
        make_client().data_to_send()
        == (
            f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' {STREAM_NS} to='{DOMAIN}'"
            " version='1.0' xml:lang='en'>"
        ).encode()
    )
    assert f"from='{USER}@{DOMAIN}'".encode() in make_client(already_secure=True).data_to_send()


# -- SASL (§6.4, §6.5) -------------------------------------------------------------------------------------------------
def sasl_server(make_server: ServerFactory, **config: object) -> XMPPStream:
    server = make_server(already_secure=True, **config)
    server.receive_data(CLIENT_HEADER.encode())
    server.data_to_send()
    return server


def sasl_failure(condition: str) -> bytes:
    return f"<failure {SASL_NS}><{condition}/></failure>".encode()


def test_plain_success(make_server: ServerFactory, accounts: dict[str, Credentials]) -> None:
    server = sasl_server(make_server)
    events = server.receive_data(f"<auth {SASL_NS} mechanism='PLAIN'>{plain()}</auth>".encode())
    if events == [CredentialsRequired(USER, "PLAIN")]:
        events = server.provide_credentials(accounts[USER])
    assert events == [Authenticated(JID(f"{USER}@{DOMAIN}"), "PLAIN")]
    assert server.data_to_send() == f"<success {SASL_NS}/>".encode()  # §6.4.6: no additional data
    assert server.phase is Phase.HEADER  # restart


def test_plain_wrong_password(make_server: ServerFactory, accounts: dict[str, Credentials]) -> None:
    server = sasl_server(make_server)
    events = server.receive_data(f"<auth {SASL_NS} mechanism='PLAIN'>{plain(password='x')}</auth>".encode())
    if events == [CredentialsRequired(USER, "PLAIN")]:
        events = server.provide_credentials(accounts[USER])
    assert len(events) == 1 and isinstance(events[0], AuthenticationFailed)
    assert events[0].error.condition is SASLCondition.NOT_AUTHORIZED and events[0].retry_allowed
    assert server.data_to_send() == sasl_failure("not-authorized")  # §6.5.10


def test_incorrect_encoding(make_server: ServerFactory) -> None:
    """§6.4.2 base64 is mandatory; §6.5.2 incorrect-encoding."""
    server = sasl_server(make_server)
    events = server.receive_data(f"<auth {SASL_NS} mechanism='PLAIN'>not*base64!</auth>".encode())
    assert isinstance(events[0], AuthenticationFailed)
    assert server.data_to_send() == sasl_failure("incorrect-encoding")


def test_invalid_mechanism(make_server: ServerFactory) -> None:
    """§6.5.5: a mechanism we did not offer."""
    server = sasl_server(make_server)
    server.receive_data(f"<auth {SASL_NS} mechanism='DIGEST-MD5'/>".encode())
    assert server.data_to_send() == sasl_failure("invalid-mechanism")


def test_abort(make_server: ServerFactory, accounts: dict[str, Credentials]) -> None:
    """§6.4.4 <abort/> -> §6.5.1 aborted."""
    server = sasl_server(make_server)
    events = server.receive_data(f"<auth {SASL_NS} mechanism='SCRAM-SHA-256'>{encode_scram_first()}</auth>".encode())
    assert events == [CredentialsRequired(USER, "SCRAM-SHA-256")]
    assert server.receive_data(f"<abort {SASL_NS}/>".encode()) == []  # held until the answer
    events = server.provide_credentials(accounts[USER])
    assert server.data_to_send().startswith(f"<challenge {SASL_NS}>".encode())
    assert len(events) == 1 and isinstance(events[0], AuthenticationFailed)
    assert events[0].error.condition is SASLCondition.ABORTED


def encode_scram_first() -> str:
    return base64.b64encode(f"n,,n={USER},r=abcdefghijklmnop".encode()).decode()


def test_response_without_exchange(make_server: ServerFactory) -> None:
    """§6.5.7 malformed-request: nothing to respond to."""
    server = sasl_server(make_server)
    server.receive_data(f"<response {SASL_NS}>AAAA</response>".encode())
    assert server.data_to_send() == (
        f"<failure {SASL_NS}><malformed-request/><text>no challenge to respond to</text></failure>".encode()
    )


def test_retries_are_bounded(make_server: ServerFactory) -> None:
    """§6.4.5: after max_auth_attempts failures the stream ends (policy-violation, §4.9.3.18)."""
    server = sasl_server(make_server, max_auth_attempts=2)
    events = server.receive_data(f"<auth {SASL_NS} mechanism='X-ONE'/>".encode())
    assert len(events) == 1 and isinstance(events[0], AuthenticationFailed)
    assert events[0].error.condition is SASLCondition.INVALID_MECHANISM and events[0].retry_allowed
    error = violation(server, f"<auth {SASL_NS} mechanism='X-TWO'/>".encode())
    assert [type(e) for e in error.events] == [AuthenticationFailed]
    assert server.data_to_send() == (
        sasl_failure("invalid-mechanism")
        + sasl_failure("invalid-mechanism")
        + f"<stream:error><policy-violation {STREAMS_NS}/>".encode()
        + b'<text xmlns="urn:ietf:params:xml:ns:xmpp-streams">too many failed authentications</text>'
        + b"</stream:error>"
        + CLOSE
    )


def test_payload_encoding() -> None:
    """§6.4.2: '=' is data of zero length; an empty element is no data at all."""
    assert encode_payload(None) == ""
    assert encode_payload(b"") == "="
    assert encode_payload(b"\x00a") == "AGE="
    assert decode_payload("", absent=None) is None
    assert decode_payload("=", absent=None) == b""
    assert decode_payload("AG\nE=", absent=None) == b"\x00a"


def client_at_sasl(make_client: ClientFactory, mechanisms: str = "SCRAM-SHA-256") -> XMPPStream:
    client = make_client(already_secure=True)
    client.receive_data(server_header("s1"))
    offer = "".join(f"<mechanism>{m}</mechanism>" for m in mechanisms.split())
    events = client.receive_data(
        f"<stream:features><mechanisms {SASL_NS}>{offer}</mechanisms></stream:features>".encode()
    )
    assert events == [FeaturesReceived((ns.clark(ns.SASL, "mechanisms"),))]
    client.data_to_send()
    return client


@pytest.mark.parametrize("condition", list(SASLCondition))
def test_every_sasl_failure_condition(make_client: ClientFactory, condition: SASLCondition) -> None:
    """§6.5: each defined condition reaches the initiating side; only some are worth retrying."""
    client = client_at_sasl(make_client)
    events = client.receive_data(sasl_failure(condition.value))
    failed = events[0]
    assert isinstance(failed, AuthenticationFailed)
    assert failed.error.condition is condition
    retryable = condition in {
        SASLCondition.NOT_AUTHORIZED,
        SASLCondition.TEMPORARY_AUTH_FAILURE,
        SASLCondition.CREDENTIALS_EXPIRED,
    }
    assert failed.retry_allowed is retryable
    if retryable:
        assert client.phase is Phase.NEGOTIATING and not client.closed
        client.retry_authentication()
        assert client.data_to_send().startswith(f'<auth {SASL_NS} mechanism="SCRAM-SHA-256">'.encode())
    else:
        assert isinstance(events[1], NegotiationFailed)
        assert client.data_to_send() == CLOSE


def test_forged_success_is_refused(make_client: ClientFactory) -> None:
    """SCRAM's server signature must verify: a <success/> without it is not success."""
    client = client_at_sasl(make_client)
    events = client.receive_data(f"<success {SASL_NS}>{base64.b64encode(b'v=AAAA').decode()}</success>".encode())
    assert len(events) == 1 and isinstance(events[0], NegotiationFailed)
    assert client.identity is None
    assert client.data_to_send() == CLOSE


def test_no_common_mechanism(make_client: ClientFactory) -> None:
    client = make_client(already_secure=True)
    client.receive_data(server_header("s1"))
    events = client.receive_data(
        f"<stream:features><mechanisms {SASL_NS}><mechanism>X-OTHER</mechanism></mechanisms></stream:features>".encode()
    )
    assert isinstance(events[-1], NegotiationFailed)
    assert "X-OTHER" in events[-1].reason


# -- resource binding (§7) and the legacy session -------------------------------------------------------------------
def bind_request(resource: str | None, *, iq_type: str = "set", iq_id: str = "b1") -> bytes:
    inner = f"<resource>{resource}</resource>" if resource is not None else ""
    return f"<iq type='{iq_type}' id='{iq_id}'><bind {BIND_NS}>{inner}</bind></iq>".encode()


def test_post_auth_features(make_server: ServerFactory, accounts: dict[str, Credentials]) -> None:
    server = make_server(already_secure=True)
    server.receive_data(CLIENT_HEADER.encode())
    events = server.receive_data(f"<auth {SASL_NS} mechanism='PLAIN'>{plain()}</auth>".encode())
    if events == [CredentialsRequired(USER, "PLAIN")]:
        server.provide_credentials(accounts[USER])
    server.data_to_send()
    server.receive_data(CLIENT_HEADER.encode())
    assert (
        server.data_to_send()
        == server_header("s2")
        + (
            f"<stream:features><bind {BIND_NS}/>"
            '<session xmlns="urn:ietf:params:xml:ns:xmpp-session"><optional/></session></stream:features>'
        ).encode()
    )


def test_bind_client_chosen_resource(make_server: ServerFactory, accounts: dict[str, Credentials]) -> None:
    """§7.6 with a client-chosen resource; §7.6.1 the result carries the full JID."""
    server = authenticated(make_server, accounts)
    assert server.receive_data(bind_request("balcony")) == [BindRequested("balcony")]
    jid = JID(f"{USER}@{DOMAIN}/balcony")
    assert server.complete_bind(jid) == [Bound(jid), Ready(jid)]
    assert server.data_to_send() == (f'<iq type="result" id="b1"><bind {BIND_NS}><jid>{jid}</jid></bind></iq>'.encode())
    assert server.state & SessionState.READY


def test_bind_server_generated_resource(make_server: ServerFactory, accounts: dict[str, Credentials]) -> None:
    """§7.6: no resource (or an empty one) asks the server to generate it."""
    for resource in (None, ""):
        server = authenticated(make_server, accounts)
        assert server.receive_data(bind_request(resource)) == [BindRequested(None)]
        server.complete_bind(JID(f"{USER}@{DOMAIN}/abc123"))
        assert b"<jid>juliet@example.net/abc123</jid>" in server.data_to_send()


def test_bind_bad_request(make_server: ServerFactory, accounts: dict[str, Credentials]) -> None:
    """§7.7.2.1 bad-request: a bind that is not a set."""
    server = authenticated(make_server, accounts)
    assert server.receive_data(bind_request("r", iq_type="get")) == []
    assert (
        server.data_to_send()
        == (
            f'<iq type="error" id="b1"><bind {BIND_NS}><resource>r</resource></bind>'
            f'<error type="modify"><bad-request {STANZAS_NS}/></error></iq>'
        ).encode()
    )


@pytest.mark.parametrize(
    ("condition", "kind"), [(StanzaErrorCondition.CONFLICT, "cancel"), (StanzaErrorCondition.NOT_ALLOWED, "cancel")]
)
def test_bind_refused_then_retried(
    make_server: ServerFactory, accounts: dict[str, Credentials], condition: StanzaErrorCondition, kind: str
) -> None:
    """§7.7.2.2 conflict / §7.7.2.3 not-allowed come from the server core; the client may try again."""
    server = authenticated(make_server, accounts)
    server.receive_data(bind_request("balcony"))
    assert server.fail_bind(StanzaError(condition)) == []
    assert (
        server.data_to_send()
        == (
            f'<iq type="error" id="b1"><bind {BIND_NS}><resource>balcony</resource></bind>'
            f'<error type="{kind}"><{condition.value} {STANZAS_NS}/></error></iq>'
        ).encode()
    )
    assert server.receive_data(bind_request("orchard", iq_id="b2")) == [BindRequested("orchard")]
    jid = JID(f"{USER}@{DOMAIN}/orchard")
    assert server.complete_bind(jid) == [Bound(jid), Ready(jid)]


def test_complete_bind_checks_the_jid(make_server: ServerFactory, accounts: dict[str, Credentials]) -> None:
    server = authenticated(make_server, accounts)
    server.receive_data(bind_request("r"))
    with pytest.raises(LocalProtocolError):
        server.complete_bind(JID(f"romeo@{DOMAIN}/r"))  # not the authenticated account
    with pytest.raises(LocalProtocolError):
        server.complete_bind(JID(f"{USER}@{DOMAIN}"))  # not a full JID
    jid = JID(f"{USER}@{DOMAIN}/r")
    assert server.complete_bind(jid) == [Bound(jid), Ready(jid)]


def test_elements_wait_while_bind_is_pending(make_server: ServerFactory, accounts: dict[str, Credentials]) -> None:
    """A client that pipelines presence after its bind request is not punished for it."""
    server = authenticated(make_server, accounts)
    assert server.receive_data(bind_request("r") + b"<presence/>") == [BindRequested("r")]
    jid = JID(f"{USER}@{DOMAIN}/r")
    assert server.complete_bind(jid) == [
        Bound(jid),
        Ready(jid),
        StanzaReceived(Element(ns.clark(ns.CLIENT, "presence"))),
    ]


def test_legacy_session(make_server: ServerFactory, accounts: dict[str, Credentials]) -> None:
    """RFC 3921 §3 session IQ, advertised optional: answered with a result, then stanzas flow."""
    server = authenticated(make_server, accounts)
    server.receive_data(bind_request("r"))
    server.complete_bind(JID(f"{USER}@{DOMAIN}/r"))
    server.data_to_send()
    session = b"<iq type='set' id='sess'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
    assert server.receive_data(session) == []
    assert server.data_to_send() == b'<iq type="result" id="sess"/>'
    presence = Element(ns.clark(ns.CLIENT, "presence"))
    assert server.receive_data(b"<presence/>") == [StanzaReceived(presence)]
    # After the first stanza, a session IQ is an ordinary stanza for the server core.
    events = server.receive_data(session)
    assert len(events) == 1 and isinstance(events[0], StanzaReceived)


def test_client_sends_session_only_when_required(make_client: ClientFactory) -> None:
    client = make_client(already_secure=True, resource="r")
    client.receive_data(server_header("s1"))
    client.receive_data(
        f"<stream:features><mechanisms {SASL_NS}><mechanism>PLAIN</mechanism></mechanisms></stream:features>".encode()
    )
    client.data_to_send()
    client.receive_data(f"<success {SASL_NS}/>".encode())
    client.data_to_send()
    client.receive_data(server_header("s2"))
    client.receive_data(
        f"<stream:features><bind {BIND_NS}/>"
        "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>".encode()
    )
    assert client.data_to_send() == (
        f'<iq type="set" id="bind_1"><bind {BIND_NS}><resource>r</resource></bind></iq>'.encode()
    )
    jid = JID(f"{USER}@{DOMAIN}/r")
    events = client.receive_data(f"<iq type='result' id='bind_1'><bind {BIND_NS}><jid>{jid}</jid></bind></iq>".encode())
    assert events == [Bound(jid)]
    assert client.data_to_send() == (
        b'<iq type="set" id="session_1"><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/></iq>'
    )
    assert client.receive_data(b"<iq type='result' id='session_1'/>") == [Ready(jid)]


def test_component_header_without_version(make_server: ServerFactory) -> None:
    """XEP-0114 §3: a component's header carries no version; the stream has no <stream:features/> and is not
    ready before the handshake (tests/protocol/test_component.py covers the handshake itself)."""
    server = make_server(kind=StreamKind.COMPONENT, tls_offered=False, tls_required=False)
    header = "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'"
    events = server.receive_data(f"{header} to='{DOMAIN}'>".encode())
    assert isinstance(events[0], StreamOpened) and events[1:] == []
    sent = server.data_to_send()
    assert sent.endswith(b">") and b"features" not in sent and b"version=" not in sent.split(b"?>", 1)[1]


def test_data_after_our_close_is_still_delivered(make_server: ServerFactory, accounts: dict[str, Credentials]) -> None:
    """§4.4: the closing side waits for the peer's close tag and still takes what the peer had in flight."""
    server = authenticated(make_server, accounts)
    server.receive_data(bind_request("r"))
    server.complete_bind(JID(f"{USER}@{DOMAIN}/r"))
    server.close()
    assert server.phase is Phase.CLOSING
    events = server.receive_data(b"<message><body>last</body></message></stream:stream>")
    assert [type(e) for e in events] == [StanzaReceived, StreamClosed]
    assert server.closed
