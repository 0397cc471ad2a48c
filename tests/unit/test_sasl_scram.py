"""SCRAM on both sides: RFC test vectors, GS2 header rules, and every way an exchange can fail."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pytest

from jaybird.errors import AuthenticationError, LocalProtocolError, SASLCondition
from jaybird.sasl import (
    Challenge,
    ChannelBinding,
    ClientScram,
    NeedCredentials,
    ServerScram,
    Success,
    make_scram_credentials,
)
from tests.unit.test_sasl import STORE, exchange


@dataclass(frozen=True)
class Vector:
    """An RFC example exchange: user "user", password "pencil", 4096 iterations."""

    name: str
    c_nonce: str
    s_nonce: str
    salt: str
    client_first: bytes
    server_first: bytes
    client_final: bytes
    server_final: bytes


RFC5802 = Vector(  # RFC 5802 §5
    "SCRAM-SHA-1",
    "fyko+d2lbbFgONRv9qkxdawL",
    "3rfcNHYJY1ZVvWVs7j",
    "QSXCR+Q6sek8bf92",
    b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
)
RFC7677 = Vector(  # RFC 7677 §3
    "SCRAM-SHA-256",
    "rOprNGfwEbeRWgbNEkqO",
    "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    "W22ZaJ0SNY7soEsUEjb6gQ==",
    b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
)
VECTORS = pytest.mark.parametrize("v", [RFC5802, RFC7677], ids=["rfc5802", "rfc7677"])
CB = ChannelBinding("tls-server-end-point", b"\x01" * 32)
OTHER_CB = ChannelBinding("tls-server-end-point", b"\x02" * 32)


def client(
    name: str = "SCRAM-SHA-256",
    *,
    channel_binding: ChannelBinding | None = None,
    authzid: str | None = None,
    nonce: str | None = None,
) -> ClientScram:
    return ClientScram(
        name, username="juliet", password="pencil", authzid=authzid, channel_binding=channel_binding, nonce=nonce
    )


def server_to_final(server: ServerScram, cl: ClientScram) -> bytes:
    """Run the exchange up to the client-final message and return it."""
    step = server.start(cl.initial_response())
    assert isinstance(step, NeedCredentials)
    step = server.provide(STORE.get(step.username))
    assert isinstance(step, Challenge)
    return cl.challenge(step.data)


def condition(e: pytest.ExceptionInfo[AuthenticationError]) -> SASLCondition:
    return e.value.condition


@VECTORS
def test_client_matches_the_rfc_vector(v: Vector) -> None:
    cl = ClientScram(v.name, username="user", password="pencil", nonce=v.c_nonce)
    assert cl.initial_response() == v.client_first
    assert cl.challenge(v.server_first) == v.client_final
    cl.success(v.server_final)


@VECTORS
def test_server_matches_the_rfc_vector(v: Vector) -> None:
    server = ServerScram(v.name, nonce=v.s_nonce)
    assert server.start(v.client_first) == NeedCredentials("user")
    creds = make_scram_credentials("pencil", v.name, 4096, base64.b64decode(v.salt))
    assert server.provide([creds]) == Challenge(v.server_first)
    assert server.respond(v.client_final) == Success("user", None, v.server_final)


@VECTORS
def test_client_rejects_a_forged_server_signature(v: Vector) -> None:
    cl = ClientScram(v.name, username="user", password="pencil", nonce=v.c_nonce)
    cl.initial_response()
    cl.challenge(v.server_first)
    forged = base64.b64encode(b"\0" * (20 if v is RFC5802 else 32))
    with pytest.raises(AuthenticationError) as e:
        cl.success(b"v=" + forged)
    assert condition(e) is SASLCondition.NOT_AUTHORIZED


def test_wrong_password_is_not_authorized() -> None:
    cl = ClientScram("SCRAM-SHA-256", username="juliet", password="pencil2")
    with pytest.raises(AuthenticationError) as e:
        exchange(cl, ServerScram("SCRAM-SHA-256"), STORE)
    assert condition(e) is SASLCondition.NOT_AUTHORIZED


def test_unknown_user_gets_a_stable_decoy_then_not_authorized() -> None:
    # No user enumeration: the server answers server-first with a salt as for a real account, the same salt
    # every time, and fails only at the proof, with the same condition and text as a wrong password.
    salts = []
    for _ in range(2):
        server = ServerScram("SCRAM-SHA-256")
        step = server.start(client().initial_response())
        assert step == NeedCredentials("juliet")
        first = server.provide(None)
        assert isinstance(first, Challenge)
        attrs = dict(part.split("=", 1) for part in first.data.decode().split(","))
        assert attrs["i"] == "4096" and len(base64.b64decode(attrs["s"])) == 16
        salts.append(attrs["s"])
    assert salts[0] == salts[1]
    with pytest.raises(AuthenticationError) as unknown:
        exchange(client(), ServerScram("SCRAM-SHA-256"), {})
    with pytest.raises(AuthenticationError) as wrong:
        exchange(ClientScram("SCRAM-SHA-256", username="juliet", password="x"), ServerScram("SCRAM-SHA-256"), STORE)
    assert (condition(unknown), str(unknown.value)) == (condition(wrong), str(wrong.value))


def test_credentials_of_another_hash_do_not_count() -> None:
    only_sha1 = {"juliet": [make_scram_credentials("pencil", "SCRAM-SHA-1")]}
    with pytest.raises(AuthenticationError) as e:
        exchange(client("SCRAM-SHA-256"), ServerScram("SCRAM-SHA-256"), only_sha1)
    assert condition(e) is SASLCondition.NOT_AUTHORIZED
    assert exchange(client("SCRAM-SHA-1"), ServerScram("SCRAM-SHA-1"), only_sha1).username == "juliet"


def test_authzid_goes_in_the_gs2_header_with_escaping() -> None:
    # RFC 5802 §5.1 saslname: "," and "=" are escaped in a= and n=.
    cl = ClientScram("SCRAM-SHA-256", username="juliet", password="pencil", authzid="a,b=c@example.com")
    first = cl.initial_response()
    assert first is not None and first.startswith(b"n,a=a=2Cb=3Dc@example.com,n=juliet,r=")
    server = ServerScram("SCRAM-SHA-256")
    server.start(first)
    step = server.provide(STORE["juliet"])
    assert isinstance(step, Challenge)
    final = cl.challenge(step.data)
    # c= carries the whole header, authzid included (RFC 5802 §7 cbind-input).
    assert final.startswith(b"c=" + base64.b64encode(b"n,a=a=2Cb=3Dc@example.com,") + b",")
    done = server.respond(final)
    assert isinstance(done, Success) and done.authzid == "a,b=c@example.com"
    cl.success(done.additional)


def test_authzid_with_channel_binding() -> None:
    cl = client("SCRAM-SHA-1-PLUS", channel_binding=CB, authzid="romeo@example.net")
    first = cl.initial_response()
    assert first is not None and first.startswith(b"p=tls-server-end-point,a=romeo@example.net,n=")
    server = ServerScram("SCRAM-SHA-1-PLUS", channel_bindings=[CB])
    step = server.start(first)
    assert isinstance(step, NeedCredentials)
    step = server.provide(STORE["juliet"])
    assert isinstance(step, Challenge)
    final = cl.challenge(step.data)
    cbind = b"p=tls-server-end-point,a=romeo@example.net," + CB.data
    assert final.startswith(b"c=" + base64.b64encode(cbind) + b",")
    done = server.respond(final)
    assert isinstance(done, Success)
    cl.success(done.additional)


def test_gs2_flags_sent_by_the_client() -> None:
    # RFC 5802 §6: "n" without binding support, "y" when able to bind but no -PLUS was offered, "p" for -PLUS.
    assert (client().initial_response() or b"").startswith(b"n,,n=juliet,")
    assert (client(channel_binding=CB).initial_response() or b"").startswith(b"y,,n=juliet,")
    plus = client("SCRAM-SHA-256-PLUS", channel_binding=CB).initial_response()
    assert (plus or b"").startswith(b"p=tls-server-end-point,,n=juliet,")


def test_y_flag_to_a_server_offering_plus_is_a_downgrade() -> None:
    server = ServerScram("SCRAM-SHA-256", channel_bindings=[CB])
    with pytest.raises(AuthenticationError) as e:
        server.start(client(channel_binding=CB).initial_response())
    assert condition(e) is SASLCondition.NOT_AUTHORIZED


def test_y_flag_to_a_server_without_binding_is_fine() -> None:
    assert exchange(client(channel_binding=CB), ServerScram("SCRAM-SHA-256"), STORE).username == "juliet"


def test_channel_binding_mismatch_fails() -> None:
    # A man in the middle terminates TLS: the client sees another certificate than the server's own.
    cl = client("SCRAM-SHA-256-PLUS", channel_binding=OTHER_CB)
    server = ServerScram("SCRAM-SHA-256-PLUS", channel_bindings=[CB])
    final = server_to_final(server, cl)
    with pytest.raises(AuthenticationError) as e:
        server.respond(final)
    assert condition(e) is SASLCondition.NOT_AUTHORIZED


def test_binding_type_the_server_lacks_fails() -> None:
    cl = client("SCRAM-SHA-256-PLUS", channel_binding=ChannelBinding("tls-unique", b"\x03" * 12))
    with pytest.raises(AuthenticationError) as e:
        ServerScram("SCRAM-SHA-256-PLUS", channel_bindings=[CB]).start(cl.initial_response())
    assert condition(e) is SASLCondition.NOT_AUTHORIZED


def test_server_picks_the_binding_the_client_names() -> None:
    unique = ChannelBinding("tls-unique", b"\x03" * 12)
    cl = client("SCRAM-SHA-256-PLUS", channel_binding=unique)
    assert exchange(cl, ServerScram("SCRAM-SHA-256-PLUS", channel_bindings=[CB, unique]), STORE)


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("SCRAM-SHA-256-PLUS", b"n,,n=juliet,r=abcdef"),  # -PLUS needs p=
        ("SCRAM-SHA-256-PLUS", b"y,,n=juliet,r=abcdef"),
        ("SCRAM-SHA-256", b"p=tls-server-end-point,,n=juliet,r=abcdef"),  # non-PLUS cannot bind
        ("SCRAM-SHA-256", b"n=juliet,r=abcdef"),  # no GS2 header
        ("SCRAM-SHA-256", b"x,,n=juliet,r=abcdef"),  # bad flag
        ("SCRAM-SHA-256", b"n,z=bob,n=juliet,r=abcdef"),  # bad authzid
        ("SCRAM-SHA-256", b"n,a=b=ob,n=juliet,r=abcdef"),  # bad escape in the authzid
        ("SCRAM-SHA-256", b"n,,m=ext,n=juliet,r=abcdef"),  # reserved mandatory extension (RFC 5802 §5.1)
        ("SCRAM-SHA-256", b"n,,n=jul=iet,r=abcdef"),  # bad escape in the username
        ("SCRAM-SHA-256", b"n,,n=juliet,r=ab\xffcd"),  # not UTF-8
    ],
)
def test_malformed_client_first(name: str, first: bytes) -> None:
    server = ServerScram(name, channel_bindings=[CB])
    with pytest.raises(AuthenticationError) as e:
        server.start(first)
    assert condition(e) is SASLCondition.MALFORMED_REQUEST


def test_client_first_missing_nonce_fails_once_scramp_parses_it() -> None:
    server = ServerScram("SCRAM-SHA-256")
    assert server.start(b"n,,n=juliet") == NeedCredentials("juliet")
    with pytest.raises(AuthenticationError) as e:
        server.provide(STORE["juliet"])
    assert condition(e) is SASLCondition.MALFORMED_REQUEST


def _tamper(final: bytes, key: bytes, value: bytes) -> bytes:
    parts = [p if not p.startswith(key + b"=") else key + b"=" + value for p in final.split(b",")]
    return b",".join(parts)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (b"p", b"!!not-base64!!", SASLCondition.INCORRECT_ENCODING),
        (b"c", b"!!not-base64!!", SASLCondition.INCORRECT_ENCODING),
        (b"r", b"someoneelsesnonce", SASLCondition.MALFORMED_REQUEST),  # nonce mismatch
        (b"c", base64.b64encode(b"y,,"), SASLCondition.NOT_AUTHORIZED),  # header changed after client-first
        (b"p", base64.b64encode(b"\0" * 32), SASLCondition.NOT_AUTHORIZED),  # wrong proof
    ],
)
def test_tampered_client_final(key: bytes, value: bytes, expected: SASLCondition) -> None:
    server = ServerScram("SCRAM-SHA-256")
    final = server_to_final(server, client())
    with pytest.raises(AuthenticationError) as e:
        server.respond(_tamper(final, key, value))
    assert condition(e) is expected


def test_garbage_client_final() -> None:
    server = ServerScram("SCRAM-SHA-256")
    server_to_final(server, client())
    with pytest.raises(AuthenticationError) as e:
        server.respond(b"hello")
    assert condition(e) is SASLCondition.MALFORMED_REQUEST


def _client_after_first(nonce: str = "clientnonce") -> ClientScram:
    cl = client(nonce=nonce)
    cl.initial_response()
    return cl


@pytest.mark.parametrize(
    ("server_first", "expected"),
    [
        (b"r=othernonceXYZ,s=QSXCR+Q6sek8bf92,i=4096", SASLCondition.MALFORMED_REQUEST),  # not our nonce
        (b"r=clientnonce,s=QSXCR+Q6sek8bf92,i=4096", SASLCondition.MALFORMED_REQUEST),  # nothing appended
        (b"r=clientnonceXYZ,s=QSXCR+Q6sek8bf92,i=1024", SASLCondition.MECHANISM_TOO_WEAK),  # RFC 7677 §4
        (b"r=clientnonceXYZ,s=!!!,i=4096", SASLCondition.INCORRECT_ENCODING),
        (b"e=other-error", SASLCondition.NOT_AUTHORIZED),
        (b"garbage", SASLCondition.MALFORMED_REQUEST),
        (b"r=clientnonce\xff,s=QSXCR+Q6sek8bf92,i=4096", SASLCondition.MALFORMED_REQUEST),
    ],
)
def test_client_rejects_bad_server_first(server_first: bytes, expected: SASLCondition) -> None:
    with pytest.raises(AuthenticationError) as e:
        _client_after_first().challenge(server_first)
    assert condition(e) is expected


def test_client_rejects_bad_server_final() -> None:
    for final, expected in [
        (b"e=invalid-proof", SASLCondition.NOT_AUTHORIZED),
        (b"x=1", SASLCondition.MALFORMED_REQUEST),
        (b"v=!!!", SASLCondition.INCORRECT_ENCODING),
    ]:
        cl = client()
        server_to_final(ServerScram("SCRAM-SHA-256"), cl)
        with pytest.raises(AuthenticationError) as e:
            cl.success(final)
        assert condition(e) is expected


def test_success_without_server_proof_is_refused() -> None:
    # RFC 6120 §6.3.10: SCRAM's server-final must arrive, in <success/> or in a last challenge.
    cl = client()
    server_to_final(ServerScram("SCRAM-SHA-256"), cl)
    with pytest.raises(AuthenticationError) as e:
        cl.success(None)
    assert condition(e) is SASLCondition.NOT_AUTHORIZED
    early = client()
    early.initial_response()
    with pytest.raises(AuthenticationError):
        early.success(None)


def test_server_final_as_a_challenge() -> None:
    cl = client()
    server = ServerScram("SCRAM-SHA-256")
    done = server.respond(server_to_final(server, cl))
    assert isinstance(done, Success) and done.additional is not None
    assert cl.challenge(done.additional) == b""
    cl.success(None)
    with pytest.raises(AuthenticationError):
        cl.challenge(b"more")


def test_exchange_without_initial_response() -> None:
    cl = client()
    server = ServerScram("SCRAM-SHA-256")
    assert server.start(None) == Challenge(b"")
    assert server.respond(cl.challenge(b"")) == NeedCredentials("juliet")
    step = server.provide(STORE["juliet"])
    assert isinstance(step, Challenge)
    done = server.respond(cl.challenge(step.data))
    assert isinstance(done, Success)
    cl.success(done.additional)


def test_username_is_case_mapped_on_the_server() -> None:
    # A third-party client may send the localpart unprepared; RFC 7622 §3.3 maps it for the account lookup.
    server = ServerScram("SCRAM-SHA-256")
    assert server.start(b"n,,n=JULIET,r=abcdef") == NeedCredentials("juliet")
    with pytest.raises(AuthenticationError) as e:
        ServerScram("SCRAM-SHA-256").start(b"n,,n=jul iet,r=abcdef")
    assert condition(e) is SASLCondition.NOT_AUTHORIZED


def test_misuse_is_a_local_error() -> None:
    server = ServerScram("SCRAM-SHA-256")
    with pytest.raises(LocalProtocolError):
        server.respond(b"x")
    with pytest.raises(LocalProtocolError):
        server.provide(None)
    cl = client()
    cl.initial_response()
    with pytest.raises(LocalProtocolError):
        cl.initial_response()


def test_construction_checks() -> None:
    with pytest.raises(ValueError):
        client("SCRAM-SHA-256-PLUS")  # no binding
    with pytest.raises(ValueError):
        client("SCRAM-MD5")
    with pytest.raises(ValueError):
        client(channel_binding=ChannelBinding("tls-exporter", b"k" * 32))
    with pytest.raises(ValueError):
        ServerScram("SCRAM-SHA-1-PLUS")


def test_independent_client_with_authzid_and_tls_unique() -> None:
    # slixmpp's own SCRAM code (not scramp) as the peer: checks the GS2 header with authzid and p= binding.
    from slixmpp.util.sasl.client import choose

    unique = ChannelBinding("tls-unique", b"\x07" * 12)
    creds = {
        "username": b"juliet",
        "password": b"pencil",
        "authzid": b"romeo@example.net",
        "channel_binding": unique.data,
    }
    security = {"encrypted": True, "unencrypted_scram": False, "tls_version": "TLSv1.2", "binding_proposed": True}

    mech: Any = choose(["SCRAM-SHA-256-PLUS"], lambda _req, _opt: dict(creds), lambda _values: dict(security))
    server = ServerScram("SCRAM-SHA-256-PLUS", channel_bindings=[unique])
    assert server.start(mech.process()) == NeedCredentials("juliet")
    step = server.provide(STORE["juliet"])
    assert isinstance(step, Challenge)
    done = server.respond(mech.process(step.data))
    assert isinstance(done, Success) and done.authzid == "romeo@example.net"
    mech.process(done.additional)  # slixmpp verifies our server signature; raises if wrong


def test_the_server_nonce_is_fresh_random_printable_text_after_the_client_nonce() -> None:
    # RFC 5802 §5.1 "r": the client's nonce followed by the server's random printable characters (no ",").
    nonces = []
    for _ in range(2):
        server = ServerScram("SCRAM-SHA-1")
        assert isinstance(server.start(b"n,,n=juliet,r=abc"), NeedCredentials)
        challenge = server.provide(STORE.get("juliet"))
        assert isinstance(challenge, Challenge)
        nonce = dict(part.split("=", 1) for part in challenge.data.decode().split(","))["r"]
        assert nonce.startswith("abc")
        nonces.append(nonce[3:])
    assert nonces[0] != nonces[1]
    for nonce in nonces:
        assert len(nonce) >= 24 and all(0x21 <= ord(c) <= 0x7E and c != "," for c in nonce)
