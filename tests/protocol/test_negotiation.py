"""Full negotiations between an initiating and a receiving machine, pumped in memory (RFC 6120 §4-§7)."""

from __future__ import annotations

import pytest

from jaybird import ns
from jaybird.errors import (
    LocalProtocolError,
    SASLCondition,
    StanzaError,
    StanzaErrorCondition,
    StreamErrorCondition,
)
from jaybird.jid import JID
from jaybird.sasl import Credentials
from jaybird.stream.events import (
    Authenticated,
    AuthenticationFailed,
    BindFailed,
    BindRequested,
    Bound,
    CredentialsRequired,
    Event,
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
from jaybird.stream.machine import Phase
from jaybird.stream.state import SessionState
from jaybird.xml.element import Element
from tests.protocol.conftest import DOMAIN, PASSWORD, USER, ClientFactory, ServerFactory
from tests.protocol.pump import BindPolicy, Pump, TLSSetup

CB_ADVERT = "{urn:xmpp:sasl-cb:0}sasl-channel-binding"

BARE = JID(f"{USER}@{DOMAIN}")


def of_type(events: list[Event], kind: type[Event]) -> list[Event]:
    return [e for e in events if isinstance(e, kind)]


def kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


@pytest.mark.parametrize(
    "mechanism",
    ["SCRAM-SHA-256", "SCRAM-SHA-1", "SCRAM-SHA-512", "PLAIN", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-512-PLUS"],
)
def test_starttls_sasl_bind_ready(
    make_client: ClientFactory,
    make_server: ServerFactory,
    tls_setup: TLSSetup,
    accounts: dict[str, Credentials],
    mechanism: str,
) -> None:
    """§5 STARTTLS with a real TLS handshake, §6 SASL, §7 bind; -PLUS binds to tls-server-end-point."""
    client = make_client()
    server = make_server(mechanisms_secure=(mechanism,))
    pump = Pump(client, server, accounts=accounts, tls=tls_setup)
    pump.run()

    assert kinds(pump.client.events) == [
        "StreamOpened",
        "FeaturesReceived",  # <starttls><required/></starttls> only (§5.3.1)
        "TLSRequested",
        "StreamOpened",  # §4.3.3 restart after TLS
        "FeaturesReceived",
        "Authenticated",
        "StreamOpened",  # restart after SASL
        "FeaturesReceived",
        "Bound",
        "Ready",
    ]
    features = of_type(pump.client.events, FeaturesReceived)
    assert features[0] == FeaturesReceived((ns.clark(ns.TLS, "starttls"),))
    # XEP-0440: the channel-binding types the server can check travel beside the mechanisms.
    assert features[1] == FeaturesReceived((ns.clark(ns.SASL, "mechanisms"), CB_ADVERT))
    assert features[2] == FeaturesReceived((ns.clark(ns.BIND, "bind"), ns.clark(ns.SESSION, "session")))
    assert of_type(pump.client.events, Authenticated) == [Authenticated(BARE, mechanism)]
    assert of_type(pump.server.events, Authenticated) == [Authenticated(BARE, mechanism)]
    if mechanism != "PLAIN":
        assert of_type(pump.server.events, CredentialsRequired) == [CredentialsRequired(USER, mechanism)]
    bound = of_type(pump.client.events, Bound)
    assert len(bound) == 1 and isinstance(bound[0], Bound)
    jid = bound[0].jid
    assert jid.bare == BARE and jid.resource == "generated-1"
    assert of_type(pump.server.events, Ready) == [Ready(jid)]
    assert of_type(pump.client.events, Ready) == [Ready(jid)]
    full = SessionState.SECURE | SessionState.AUTHENTICATED | SessionState.BOUND | SessionState.READY
    assert client.state == full
    assert server.state == full | SessionState.RECEIVED
    # §4.3.3: every restart gets a fresh id from the receiving entity.
    ids = [e.stream_id for e in pump.client.events if isinstance(e, StreamOpened)]
    assert ids == ["s1", "s2", "s3"]


def test_requested_resource_and_stanzas_both_ways(
    make_client: ClientFactory, make_server: ServerFactory, tls_setup: TLSSetup, accounts: dict[str, Credentials]
) -> None:
    client = make_client(resource="balcony")
    server = make_server()
    pump = Pump(client, server, accounts=accounts, tls=tls_setup)
    pump.run()
    assert client.jid == JID(f"{USER}@{DOMAIN}/balcony")
    assert server.jid == client.jid

    message = Element(ns.clark(ns.CLIENT, "message"), {"to": "romeo@example.net", "type": "chat"})
    message.add(ns.clark(ns.CLIENT, "body"), text="Wherefore art thou? <&>")
    client.send(message)
    presence = Element(ns.clark(ns.CLIENT, "presence"))
    client.send(presence)
    reply = Element(ns.clark(ns.CLIENT, "message"), {"from": "romeo@example.net"})
    reply.add(ns.clark(ns.CLIENT, "body"), text="Here.")
    server.send(reply)
    before_server, before_client = len(pump.server.events), len(pump.client.events)
    pump.run()
    assert pump.server.events[before_server:] == [StanzaReceived(message), StanzaReceived(presence)]
    assert pump.client.events[before_client:] == [StanzaReceived(reply)]


def test_wrong_password_then_retry(
    make_client: ClientFactory, make_server: ServerFactory, tls_setup: TLSSetup, accounts: dict[str, Credentials]
) -> None:
    """§6.4.5: a failed attempt may be retried on the same stream."""
    client = make_client(password="wrong")
    server = make_server()
    pump = Pump(client, server, accounts=accounts, tls=tls_setup, retry_password=PASSWORD)
    pump.run()
    client_failures = of_type(pump.client.events, AuthenticationFailed)
    assert len(client_failures) == 1 and isinstance(client_failures[0], AuthenticationFailed)
    assert client_failures[0].error.condition is SASLCondition.NOT_AUTHORIZED
    assert client_failures[0].retry_allowed
    server_failures = of_type(pump.server.events, AuthenticationFailed)
    assert len(server_failures) == 1 and isinstance(server_failures[0], AuthenticationFailed)
    assert server_failures[0].retry_allowed
    assert client.phase is Phase.READY and server.phase is Phase.READY
    assert client.identity == BARE


def test_unknown_account_fails_like_a_wrong_password(
    make_client: ClientFactory, make_server: ServerFactory, tls_setup: TLSSetup, accounts: dict[str, Credentials]
) -> None:
    client = make_client(jid=JID(f"nobody@{DOMAIN}"))
    pump = Pump(client, make_server(), accounts=accounts, tls=tls_setup)
    pump.run()
    failures = of_type(pump.client.events, AuthenticationFailed)
    assert [f.error.condition for f in failures if isinstance(f, AuthenticationFailed)] == [
        SASLCondition.NOT_AUTHORIZED
    ]
    assert client.phase is Phase.NEGOTIATING  # waiting for retry_authentication() or close()
    client.close()
    pump.run()
    assert client.closed and server_closed(pump)


def server_closed(pump: Pump) -> bool:
    return pump.server.machine.closed and of_type(pump.server.events, StreamClosed) == [StreamClosed()]


def test_too_many_failures_close_the_stream(
    make_client: ClientFactory, make_server: ServerFactory, tls_setup: TLSSetup, accounts: dict[str, Credentials]
) -> None:
    """§6.4.5 retries are bounded; the last failure is followed by <policy-violation/> (our choice)."""
    client = make_client(password="wrong")
    server = make_server(max_auth_attempts=2)
    pump = Pump(client, server, accounts=accounts, tls=tls_setup, retry_password="still wrong")
    with pytest.raises(StreamViolation) as caught:
        pump.run()
    assert caught.value.error.condition is StreamErrorCondition.POLICY_VIOLATION
    assert [type(e) for e in caught.value.events] == [AuthenticationFailed]
    # The server still delivered its <failure/> and the stream error before closing.
    pump.client.deliver(pump.server.flush())
    failures = of_type(pump.client.events, AuthenticationFailed)
    assert len(failures) == 2
    errors = of_type(pump.client.events, StreamErrorReceived)
    assert len(errors) == 1 and isinstance(errors[0], StreamErrorReceived)
    assert errors[0].error.condition is StreamErrorCondition.POLICY_VIOLATION
    assert of_type(pump.client.events, StreamClosed) == [StreamClosed()]
    assert server.closed


@pytest.mark.parametrize("chunk", [1, 7])
def test_chunked_delivery_gives_the_same_events(
    make_client: ClientFactory,
    make_server: ServerFactory,
    tls_setup: TLSSetup,
    accounts: dict[str, Credentials],
    chunk: int,
) -> None:
    whole = Pump(make_client(), make_server(), accounts=accounts, tls=tls_setup)
    whole.run()
    pieces = Pump(make_client(), make_server(), accounts=accounts, tls=tls_setup, chunk=chunk)
    pieces.run()
    assert pieces.client.events == whole.client.events
    assert pieces.server.events == whole.server.events
    assert pieces.client.machine.phase is Phase.READY


def test_without_tls_when_both_allow_it(
    make_client: ClientFactory, make_server: ServerFactory, accounts: dict[str, Credentials]
) -> None:
    client = make_client(require_tls=False, tls_available=False)
    server = make_server(tls_offered=False, tls_required=False)
    pump = Pump(client, server, accounts=accounts)
    pump.run()
    assert of_type(pump.client.events, TLSRequested) == []
    authenticated = of_type(pump.client.events, Authenticated)
    assert authenticated == [Authenticated(BARE, "SCRAM-SHA-512")]
    assert client.phase is Phase.READY
    assert not client.state & SessionState.SECURE


def test_plain_is_refused_on_an_unencrypted_stream(
    make_client: ClientFactory, make_server: ServerFactory, accounts: dict[str, Credentials]
) -> None:
    """The client does not send its password in clear unless told to (allow_plain)."""
    client = make_client(require_tls=False)
    server = make_server(tls_offered=False, tls_required=False, mechanisms_plain=("PLAIN",))
    pump = Pump(client, server, accounts=accounts)
    pump.run()
    failed = of_type(pump.client.events, NegotiationFailed)
    assert len(failed) == 1 and isinstance(failed[0], NegotiationFailed)
    assert "mechanism-too-weak" in failed[0].reason
    assert client.closed and server.closed

    client = make_client(require_tls=False, allow_plain=True)
    server = make_server(tls_offered=False, tls_required=False, mechanisms_plain=("PLAIN",))
    pump = Pump(client, server, accounts=accounts)
    pump.run()
    assert of_type(pump.client.events, Authenticated) == [Authenticated(BARE, "PLAIN")]


def test_client_requiring_tls_refuses_a_server_without_starttls(
    make_client: ClientFactory, make_server: ServerFactory, accounts: dict[str, Credentials]
) -> None:
    client = make_client()  # require_tls=True by default
    server = make_server(tls_offered=False, tls_required=False)
    pump = Pump(client, server, accounts=accounts)
    pump.run()
    failed = of_type(pump.client.events, NegotiationFailed)
    assert failed == [
        NegotiationFailed(f"the peer does not offer {ns.clark(ns.TLS, 'starttls')}, which this side requires")
    ]
    assert of_type(pump.server.events, CredentialsRequired) == []  # no credentials went out
    assert client.closed and server.closed


def test_client_that_cannot_do_tls_fails_clearly_on_required_starttls(
    make_client: ClientFactory, make_server: ServerFactory
) -> None:
    """§5.4.1: <required/> STARTTLS that this side cannot negotiate ends the attempt."""
    client = make_client(require_tls=False, tls_available=False)
    pump = Pump(client, make_server())
    pump.run()
    assert of_type(pump.client.events, NegotiationFailed) == [
        NegotiationFailed(f"the peer requires {ns.clark(ns.TLS, 'starttls')}, which this side cannot negotiate")
    ]
    assert client.closed


def test_direct_tls_skips_starttls(
    make_client: ClientFactory, make_server: ServerFactory, accounts: dict[str, Credentials]
) -> None:
    """XEP-0368: on an already encrypted connection STARTTLS is neither offered nor needed."""
    client = make_client(already_secure=True)
    server = make_server(already_secure=True)
    pump = Pump(client, server, accounts=accounts)
    pump.run()
    assert of_type(pump.client.events, TLSRequested) == []
    assert client.phase is Phase.READY
    assert client.state & SessionState.SECURE


@pytest.mark.parametrize(
    "condition",
    [StanzaErrorCondition.CONFLICT, StanzaErrorCondition.NOT_ALLOWED, StanzaErrorCondition.BAD_REQUEST],
)
def test_bind_refused(
    make_client: ClientFactory,
    make_server: ServerFactory,
    accounts: dict[str, Credentials],
    condition: StanzaErrorCondition,
) -> None:
    """§7.7.2: the server core's refusal reaches the client as a stanza error."""
    policy = BindPolicy(refuse=StanzaError(condition))
    client = make_client(already_secure=True, resource="balcony")
    pump = Pump(client, make_server(already_secure=True), accounts=accounts, bind=policy)
    pump.run()
    assert of_type(pump.server.events, BindRequested) == [BindRequested("balcony")]
    failed = of_type(pump.client.events, BindFailed)
    assert len(failed) == 1 and isinstance(failed[0], BindFailed)
    assert failed[0].error.condition is condition
    assert of_type(pump.client.events, NegotiationFailed) != []
    assert client.closed


def test_bind_conflict_on_a_taken_resource(
    make_client: ClientFactory, make_server: ServerFactory, accounts: dict[str, Credentials]
) -> None:
    policy = BindPolicy(taken={"balcony"})
    client = make_client(already_secure=True, resource="balcony")
    pump = Pump(client, make_server(already_secure=True), accounts=accounts, bind=policy)
    pump.run()
    failed = of_type(pump.client.events, BindFailed)
    assert [f.error.condition for f in failed if isinstance(f, BindFailed)] == [StanzaErrorCondition.CONFLICT]


@pytest.mark.parametrize("closer", ["client", "server"])
def test_close_handshake(
    make_client: ClientFactory, make_server: ServerFactory, accounts: dict[str, Credentials], closer: str
) -> None:
    """§4.4: one side closes, the other answers with its own close tag, both end closed."""
    pump = Pump(make_client(already_secure=True), make_server(already_secure=True), accounts=accounts)
    pump.run()
    first, second = (pump.client, pump.server) if closer == "client" else (pump.server, pump.client)
    first.machine.close()
    assert first.machine.phase is Phase.CLOSING
    assert first.machine.data_to_send() == b"</stream:stream>"
    second.deliver(b"</stream:stream>")
    assert second.events[-1] == StreamClosed()
    assert second.machine.closed
    assert second.machine.data_to_send() == b"</stream:stream>"
    second.machine.close()  # already answered: nothing more goes out
    assert second.machine.data_to_send() == b""
    first.deliver(b"</stream:stream>")
    assert first.events[-1] == StreamClosed()
    assert first.machine.closed
    assert first.machine.data_to_send() == b""
    with pytest.raises(LocalProtocolError):
        first.machine.send(Element(ns.clark(ns.CLIENT, "presence")))


def test_direct_tls_channel_binding_given_up_front(accounts: dict[str, Credentials]) -> None:
    """XEP-0368 + RFC 5929: with TLS from the first byte the binding is known at construction; -PLUS follows."""
    from jaybird.errors import LocalProtocolError
    from jaybird.sasl import ChannelBinding
    from jaybird.stream.config import InitiatingConfig, ReceivingConfig
    from jaybird.stream.machine import XMPPStream
    from tests.protocol.conftest import fixed_ids

    binding = ChannelBinding("tls-server-end-point", b"\x01" * 32)
    client = XMPPStream(
        InitiatingConfig(jid=JID(f"{USER}@{DOMAIN}"), password=PASSWORD, already_secure=True),
        channel_binding=binding,
    )
    server = XMPPStream(
        ReceivingConfig(domains=frozenset({DOMAIN}), stream_id=fixed_ids(), already_secure=True),
        channel_binding=binding,
    )
    pump = Pump(client, server, accounts=accounts)
    pump.run()
    assert of_type(pump.client.events, Authenticated) == [Authenticated(BARE, "SCRAM-SHA-512-PLUS")]
    with pytest.raises(LocalProtocolError):
        XMPPStream(InitiatingConfig(jid=JID(f"{USER}@{DOMAIN}"), password=PASSWORD), channel_binding=binding)


def _direct_tls_pair(
    client_bindings: tuple[object, ...], server_bindings: tuple[object, ...], *, advertise_types: bool = True
) -> tuple[object, object]:
    from jaybird.stream.config import InitiatingConfig, ReceivingConfig
    from jaybird.stream.features import BIND, LEGACY_SESSION, SASL, SASL_CHANNEL_BINDING, STARTTLS
    from jaybird.stream.machine import XMPPStream
    from tests.protocol.conftest import fixed_ids

    client = XMPPStream(
        InitiatingConfig(jid=JID(f"{USER}@{DOMAIN}"), password=PASSWORD, already_secure=True),
        channel_binding=client_bindings,  # type: ignore[arg-type]
    )
    table = (STARTTLS, SASL, SASL_CHANNEL_BINDING, BIND, LEGACY_SESSION) if advertise_types else None
    server = XMPPStream(
        ReceivingConfig(domains=frozenset({DOMAIN}), stream_id=fixed_ids(), already_secure=True),
        table if table is not None else (STARTTLS, SASL, BIND, LEGACY_SESSION),
        channel_binding=server_bindings,  # type: ignore[arg-type]
    )
    return client, server


def _gs2_header(pump: Pump) -> bytes:
    """The SCRAM client-first message the client sent in its <auth/> (RFC 5802 §7: it starts with the gs2 header)."""
    import base64
    import re

    wire = b"".join(pump.client.plaintext_out)
    match = re.search(rb"<auth [^>]*>([^<]+)</auth>", wire)
    assert match is not None
    return base64.b64decode(match.group(1))


def test_xep0440_advertised_types_pick_the_best_common_binding(accounts: dict[str, Credentials]) -> None:
    """XEP-0440: the client binds to the best type the server lists, not to its own default (tls-unique)."""
    from jaybird.sasl import ChannelBinding

    unique = ChannelBinding("tls-unique", b"\x02" * 12)
    end_point = ChannelBinding("tls-server-end-point", b"\x01" * 32)
    client, server = _direct_tls_pair((unique, end_point), (end_point,))
    pump = Pump(client, server, accounts=accounts)  # type: ignore[arg-type]
    pump.run()
    assert of_type(pump.client.events, Authenticated) == [Authenticated(BARE, "SCRAM-SHA-512-PLUS")]
    assert _gs2_header(pump).startswith(b"p=tls-server-end-point,")


def test_without_xep0440_the_default_binding_is_used(accounts: dict[str, Credentials]) -> None:
    """No advertised types: the driver's first binding (tls-unique, RFC 5802 §6's default) is the one sent."""
    from jaybird.sasl import ChannelBinding

    unique = ChannelBinding("tls-unique", b"\x02" * 12)
    end_point = ChannelBinding("tls-server-end-point", b"\x01" * 32)
    client, server = _direct_tls_pair((unique, end_point), (unique, end_point), advertise_types=False)
    pump = Pump(client, server, accounts=accounts)  # type: ignore[arg-type]
    pump.run()
    assert of_type(pump.client.events, Authenticated) == [Authenticated(BARE, "SCRAM-SHA-512-PLUS")]
    assert _gs2_header(pump).startswith(b"p=tls-unique,")


def test_features_text_follows_each_streams_advertisements() -> None:
    """§4.3.2: the features a stream gets are those its features advertise now. Shared advertisements are
    serialised once and reused (same bytes); a feature that builds a new child each time is written afresh."""
    from jaybird.stream.config import ReceivingConfig
    from jaybird.stream.feature import StreamFeature, always
    from jaybird.stream.machine import XMPPStream
    from tests.protocol.conftest import fixed_ids

    counter = iter(range(100))
    shared = StreamFeature(name="{urn:example:shared}s", advertise=always(Element("{urn:example:shared}s")))
    fresh = StreamFeature(
        name="{urn:example:fresh}f",
        advertise=lambda _ctx: Element("{urn:example:fresh}f", {"n": str(next(counter))}),
    )
    header = (
        f"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' "
        "version='1.0'>"
    ).encode()

    def features_of(table: tuple[StreamFeature, ...]) -> bytes:
        server = XMPPStream(
            ReceivingConfig(domains=frozenset({DOMAIN}), stream_id=fixed_ids(), tls_offered=False, tls_required=False),
            table,
        )
        server.receive_data(header)
        out = server.data_to_send()
        return out[out.index(b"<stream:features") :]

    assert (
        features_of((shared,))
        == features_of((shared,))
        == b'<stream:features><s xmlns="urn:example:shared"/></stream:features>'
    )
    first, second = features_of((shared, fresh)), features_of((shared, fresh))
    assert b'<f xmlns="urn:example:fresh" n="0"/>' in first
    assert b'<f xmlns="urn:example:fresh" n="1"/>' in second
    assert features_of(()) == b"<stream:features/>"
