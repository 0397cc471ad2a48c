"""PLAIN, EXTERNAL and ANONYMOUS on both sides, and the stored credentials PLAIN is checked against."""

from __future__ import annotations

import pytest
from scramp import ScramMechanism

from jaybird.errors import AuthenticationError, LocalProtocolError, SASLCondition
from jaybird.sasl import (
    Challenge,
    ClientAnonymous,
    ClientExternal,
    ClientPlain,
    NeedCredentials,
    ScramCredentials,
    ServerAnonymous,
    ServerExternal,
    ServerPlain,
    Success,
    make_scram_credentials,
)
from jaybird.sasl.credentials import stored_key_for
from jaybird.sasl.prep import prepare_password, prepare_username
from tests.unit.test_sasl import exchange, store

# ---- stored credentials -------------------------------------------------------------------------------


def test_credentials_match_scramp_and_hide_the_password() -> None:
    salt = b"0123456789abcdef"
    creds = make_scram_credentials("pencil", "SCRAM-SHA-256-PLUS", 5000, salt)
    _, stored, server, _ = ScramMechanism("SCRAM-SHA-256").make_auth_info("pencil", 5000, salt)
    assert creds == ScramCredentials("SCRAM-SHA-256", salt, 5000, stored, server)
    assert "pencil" not in repr(creds) and stored.hex() not in repr(creds)


def test_credentials_prepare_the_password() -> None:
    # OpaqueString maps non-ASCII spaces to U+0020 (RFC 8265 §4.2.1), so both spellings are one password.
    salt = b"0123456789abcdef"
    assert make_scram_credentials("pen\u00a0cil", salt=salt) == make_scram_credentials("pen cil", salt=salt)


def test_credentials_get_fresh_salts() -> None:
    a, b = make_scram_credentials("pencil"), make_scram_credentials("pencil")
    assert a.salt != b.salt and len(a.salt) == 16 and a.iterations == 4096


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("pencil", "SCRAM-MD5"), {}),
        (("pencil",), {"iterations": 1000}),  # under RFC 7677 §4's 4096
        (("pencil",), {"salt": b"short"}),
        (("pen\u0007cil",), {}),  # a control character: OpaqueString refuses it
        (("",), {}),
    ],
)
def test_credentials_refuse_bad_input(args: tuple[str, ...], kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_scram_credentials(*args, **kwargs)  # type: ignore[arg-type]


def test_precis_profiles() -> None:
    assert prepare_username("Juliet") == "juliet"  # UsernameCaseMapped (RFC 7622 §3.3)
    assert prepare_username("\uff2a\uff55\uff4c") == "jul"  # fullwidth is width-mapped
    with pytest.raises(ValueError):
        prepare_username("juliet capulet")  # no spaces in an identifier
    assert prepare_password("Pencil\u2003") == "Pencil "  # OpaqueString keeps case, maps spaces
    with pytest.raises(ValueError):
        prepare_password("pen\x00cil")


# ---- PLAIN (RFC 4616) ---------------------------------------------------------------------------------


def test_plain_message_layout() -> None:
    assert ClientPlain(username="Juliet", password="pencil").initial_response() == b"\0juliet\0pencil"
    message = ClientPlain(username="juliet", password="pencil", authzid="romeo@example.net").initial_response()
    assert message == b"romeo@example.net\0juliet\0pencil"


@pytest.mark.parametrize(
    "families",
    [["SCRAM-SHA-1"], ["SCRAM-SHA-256"], ["SCRAM-SHA-1", "SCRAM-SHA-256"], ["SCRAM-SHA-512"]],
)
def test_plain_checks_against_stored_scram_keys(families: list[str]) -> None:
    accounts = {"juliet": [make_scram_credentials("pencil", f) for f in families]}
    result = exchange(ClientPlain(username="juliet", password="pencil"), ServerPlain(), accounts)
    assert result == Success("juliet", None, None)
    with pytest.raises(AuthenticationError) as e:
        exchange(ClientPlain(username="juliet", password="pencil!"), ServerPlain(), accounts)
    assert e.value.condition is SASLCondition.NOT_AUTHORIZED


def test_plain_uses_the_strongest_stored_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[str] = []

    def spy(creds: ScramCredentials, password: str) -> bytes:
        used.append(creds.mechanism)
        return stored_key_for(creds, password)

    monkeypatch.setattr("jaybird.sasl.plain.stored_key_for", spy)
    accounts = {"juliet": [make_scram_credentials("pencil", f) for f in ("SCRAM-SHA-1", "SCRAM-SHA-256")]}
    exchange(ClientPlain(username="juliet", password="pencil"), ServerPlain(), accounts)
    assert used == ["SCRAM-SHA-256"]


def test_plain_unknown_user_does_the_work_anyway(monkeypatch: pytest.MonkeyPatch) -> None:
    # No timing oracle for user enumeration: an unknown account derives keys with the same hash and
    # iteration count as a wrong password for an account stored with every family.
    calls: list[tuple[str, int]] = []

    def spy(creds: ScramCredentials, password: str) -> bytes:
        calls.append((creds.mechanism, creds.iterations))
        return stored_key_for(creds, password)

    monkeypatch.setattr("jaybird.sasl.plain.stored_key_for", spy)
    errors = []
    for accounts in ({}, store("other")):
        with pytest.raises(AuthenticationError) as e:
            exchange(ClientPlain(username="juliet", password="pencil"), ServerPlain(), accounts)
        errors.append((e.value.condition, e.value.text))
    assert calls == [("SCRAM-SHA-512", 4096)] * 2
    assert errors[0] == errors[1] == (SASLCondition.NOT_AUTHORIZED, None)


def test_plain_decoy_follows_the_configured_families(monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[str] = []

    def spy(creds: ScramCredentials, password: str) -> bytes:
        used.append(creds.mechanism)
        return stored_key_for(creds, password)

    monkeypatch.setattr("jaybird.sasl.plain.stored_key_for", spy)
    with pytest.raises(AuthenticationError):
        exchange(ClientPlain(username="juliet", password="x"), ServerPlain(scram=["SCRAM-SHA-1"]), {})
    assert used == ["SCRAM-SHA-1"]


def test_plain_prepares_both_fields_on_the_server() -> None:
    server = ServerPlain()
    assert server.start(b"\0JULIET\0pen\xc2\xa0cil") == NeedCredentials("juliet")
    assert server.provide(store("pen cil")["juliet"]) == Success("juliet", None, None)


def test_plain_authzid_is_passed_to_the_driver() -> None:
    server = ServerPlain()
    server.start(b"romeo@example.net\0juliet\0pencil")
    assert server.provide(store()["juliet"]) == Success("juliet", "romeo@example.net", None)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (b"juliet\0pencil", SASLCondition.MALFORMED_REQUEST),  # two fields
        (b"\0juliet\0pencil\0extra", SASLCondition.MALFORMED_REQUEST),
        (b"\0\0pencil", SASLCondition.MALFORMED_REQUEST),  # empty authcid
        (b"\0juliet\0", SASLCondition.MALFORMED_REQUEST),  # empty password
        (b"\0" + b"j" * 256 + b"\0pencil", SASLCondition.MALFORMED_REQUEST),  # over 255 octets
        (b"\0jul\xffiet\0pencil", SASLCondition.MALFORMED_REQUEST),  # not UTF-8
        (b"\0juliet capulet\0pencil", SASLCondition.NOT_AUTHORIZED),  # no account can have this name
    ],
)
def test_plain_malformed(message: bytes, expected: SASLCondition) -> None:
    with pytest.raises(AuthenticationError) as e:
        ServerPlain().start(message)
    assert e.value.condition is expected


def test_plain_without_initial_response_and_misuse() -> None:
    client, server = ClientPlain(username="juliet", password="pencil"), ServerPlain()
    assert server.start(None) == Challenge(b"")
    assert server.respond(client.challenge(b"")) == NeedCredentials("juliet")
    with pytest.raises(LocalProtocolError):
        server.respond(b"again")
    with pytest.raises(AuthenticationError):
        client.challenge(b"unexpected")


# ---- EXTERNAL (RFC 4422 App. A, XEP-0178) ------------------------------------------------------------


def test_external_client_sends_empty_or_authzid() -> None:
    # An empty initial response is present (b""), which the stream machine writes as "=" (RFC 6120 §6.4.2).
    assert ClientExternal().initial_response() == b""
    assert ClientExternal("capulet.example").initial_response() == b"capulet.example"


def test_external_empty_response_takes_the_preferred_identity() -> None:
    server = ServerExternal(["juliet@example.com", "juliet@example.net"])
    assert server.start(b"") == Success("juliet@example.com", None, None)


def test_external_authzid_must_be_verified() -> None:
    server = ServerExternal(["capulet.example", "www.capulet.example"])
    assert server.start(b"WWW.Capulet.example") == Success("www.capulet.example", "WWW.Capulet.example", None)
    with pytest.raises(AuthenticationError) as e:
        ServerExternal(["capulet.example"]).start(b"montague.example")
    assert e.value.condition is SASLCondition.INVALID_AUTHZID


def test_external_without_verified_identity_fails() -> None:
    with pytest.raises(AuthenticationError) as e:
        ServerExternal([]).start(b"")
    assert e.value.condition is SASLCondition.NOT_AUTHORIZED
    with pytest.raises(AuthenticationError) as e:
        ServerExternal(["a.example"]).start(b"\xff")
    assert e.value.condition is SASLCondition.MALFORMED_REQUEST


def test_external_round_trip_without_initial_response() -> None:
    client, server = ClientExternal("capulet.example"), ServerExternal(["capulet.example"])
    assert server.start(None) == Challenge(b"")
    assert server.respond(client.challenge(b"")) == Success("capulet.example", "capulet.example", None)
    client.success(None)
    with pytest.raises(LocalProtocolError):
        server.provide(None)


# ---- ANONYMOUS (RFC 4505) -----------------------------------------------------------------------------


def test_anonymous_gets_fresh_valid_usernames() -> None:
    names = {exchange(ClientAnonymous(), ServerAnonymous(), {}).username for _ in range(20)}
    assert len(names) == 20
    assert all(prepare_username(n) == n and len(n) == 32 for n in names)


def test_anonymous_trace() -> None:
    server = ServerAnonymous()
    result = exchange(ClientAnonymous("sirhc@example.org"), server, {})
    assert server.trace == "sirhc@example.org" and result.authzid is None
    assert ClientAnonymous().initial_response() == b""


def test_anonymous_bad_trace() -> None:
    for trace in (b"x" * 256, b"\xff"):
        with pytest.raises(AuthenticationError) as e:
            ServerAnonymous().start(trace)
        assert e.value.condition is SASLCondition.MALFORMED_REQUEST
    with pytest.raises(ValueError):
        ClientAnonymous("x" * 256)


def test_anonymous_without_initial_response() -> None:
    server = ServerAnonymous()
    assert server.start(None) == Challenge(b"")
    assert isinstance(server.respond(b""), Success)
    with pytest.raises(LocalProtocolError):
        server.respond(b"")
