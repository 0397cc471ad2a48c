"""SASL negotiation end to end: client candidates and choice against the server's offer and mechanisms.

Mechanism details live in test_sasl_scram.py, test_sasl_simple.py and test_sasl_binding.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from jaybird.errors import AuthenticationError, SASLCondition
from jaybird.sasl import (
    SCRAM_MECHANISMS,
    Challenge,
    ChannelBinding,
    ClientMechanism,
    NeedCredentials,
    ScramCredentials,
    ServerMechanism,
    Success,
    client_mechanisms,
    make_scram_credentials,
    select_client_mechanism,
    server_mechanism,
    server_mechanism_names,
)

CB = ChannelBinding("tls-server-end-point", bytes(range(32)))
ALL_NAMES = [
    "SCRAM-SHA-512-PLUS",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-512",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
]


def store(password: str = "pencil", username: str = "juliet") -> dict[str, list[ScramCredentials]]:
    return {username: [make_scram_credentials(password, m) for m in SCRAM_MECHANISMS]}


STORE = store()


def exchange(
    client: ClientMechanism, server: ServerMechanism, accounts: Mapping[str, Sequence[ScramCredentials]]
) -> Success:
    """Push bytes between the two sides as the stream machines would, with no stream."""
    step = server.start(client.initial_response())
    for _ in range(8):
        if isinstance(step, NeedCredentials):
            step = server.provide(accounts.get(step.username))
        elif isinstance(step, Challenge):
            step = server.respond(client.challenge(step.data))
        else:
            client.success(step.additional)
            return step
    raise AssertionError("exchange did not finish")


def named(candidates: Sequence[ClientMechanism], name: str) -> ClientMechanism:
    return next(c for c in candidates if c.name == name)


def test_client_order_with_channel_binding_is_strongest_first() -> None:
    found = client_mechanisms(username="juliet", password="pencil", channel_binding=CB)
    assert [m.name for m in found] == ALL_NAMES


def test_client_without_channel_binding_has_no_plus() -> None:
    found = client_mechanisms(username="juliet", password="pencil")
    assert [m.name for m in found] == ALL_NAMES[3:]


def test_external_and_anonymous_only_when_asked() -> None:
    found = client_mechanisms(username="juliet", password="pencil", external=True, anonymous=True)
    assert [m.name for m in found] == ["EXTERNAL", *ALL_NAMES[3:], "ANONYMOUS"]
    assert [m.name for m in client_mechanisms(anonymous=True)] == ["ANONYMOUS"]


def test_unusable_binding_type_counts_as_none() -> None:
    # scramp cannot do tls-exporter: no -PLUS, and the client must then say "n", not "y".
    found = client_mechanisms(
        username="juliet", password="pencil", channel_binding=ChannelBinding("tls-exporter", b"k" * 32)
    )
    assert [m.name for m in found] == ALL_NAMES[3:]
    first = found[0].initial_response()
    assert first is not None and first.startswith(b"n,,")


def test_client_refuses_a_username_precis_refuses() -> None:
    with pytest.raises(ValueError):
        client_mechanisms(username="juliet capulet", password="pencil")


def test_select_takes_first_offered() -> None:
    found = client_mechanisms(username="juliet", password="pencil", channel_binding=CB)
    chosen = select_client_mechanism(["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"], found)
    assert chosen.name == "SCRAM-SHA-256"


def test_select_refuses_plain_unless_allowed() -> None:
    found = client_mechanisms(username="juliet", password="pencil")
    with pytest.raises(AuthenticationError) as e:
        select_client_mechanism(["PLAIN"], found)
    assert e.value.condition is SASLCondition.MECHANISM_TOO_WEAK
    assert select_client_mechanism(["PLAIN"], found, allow_plain=True).name == "PLAIN"


def test_select_without_overlap_is_invalid_mechanism() -> None:
    found = client_mechanisms(username="juliet", password="pencil")
    with pytest.raises(AuthenticationError) as e:
        select_client_mechanism(["X-OAUTH2", "DIGEST-MD5"], found)
    assert e.value.condition is SASLCondition.INVALID_MECHANISM


def test_server_names_by_policy() -> None:
    assert server_mechanism_names(secure=True, channel_binding_types=["tls-server-end-point"]) == ALL_NAMES
    assert server_mechanism_names(secure=False) == ALL_NAMES[3:6]  # no PLAIN without TLS
    assert "PLAIN" in server_mechanism_names(secure=False, allow_insecure_plain=True)
    assert server_mechanism_names(secure=True, channel_binding_types=["tls-exporter"]) == ALL_NAMES[3:]
    assert server_mechanism_names(
        secure=True, scram=["SCRAM-SHA-1", "SCRAM-SHA-256"], external_identities=["a.example"], allow_anonymous=True
    ) == ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "EXTERNAL", "ANONYMOUS"]


@pytest.mark.parametrize(
    ("name", "kwargs", "condition"),
    [
        ("PLAIN", {"secure": False}, SASLCondition.ENCRYPTION_REQUIRED),  # RFC 6120 §6.5.4
        ("SCRAM-SHA-256-PLUS", {"secure": True}, SASLCondition.INVALID_MECHANISM),
        ("SCRAM-SHA-512", {"secure": True, "scram": ["SCRAM-SHA-256"]}, SASLCondition.INVALID_MECHANISM),
        ("EXTERNAL", {"secure": True}, SASLCondition.INVALID_MECHANISM),
        ("ANONYMOUS", {"secure": True}, SASLCondition.INVALID_MECHANISM),
        ("DIGEST-MD5", {"secure": True}, SASLCondition.INVALID_MECHANISM),
    ],
)
def test_server_refuses_what_it_does_not_offer(name: str, kwargs: dict[str, object], condition: SASLCondition) -> None:
    with pytest.raises(AuthenticationError) as e:
        server_mechanism(name, **kwargs)  # type: ignore[arg-type]
    assert e.value.condition is condition


PAIRS = [(n, CB) for n in ALL_NAMES] + [(n, None) for n in ALL_NAMES if not n.endswith("-PLUS")]


@pytest.mark.parametrize("authzid", [None, "romeo@example.net"])
@pytest.mark.parametrize(("name", "binding"), PAIRS, ids=[f"{n}-{'cb' if b else 'no-cb'}" for n, b in PAIRS])
def test_every_pair_round_trips(name: str, binding: ChannelBinding | None, authzid: str | None) -> None:
    client = named(
        client_mechanisms(username="Juliet", password="pencil", authzid=authzid, channel_binding=binding), name
    )
    # A server that offers -PLUS is given its binding; one without binding support gets the client's "y".
    server = server_mechanism(name, channel_binding=binding if name.endswith("-PLUS") else None, secure=True)
    result = exchange(client, server, STORE)
    assert (result.username, result.authzid) == ("juliet", authzid)
    assert (result.additional is not None) == name.startswith("SCRAM")


@pytest.mark.parametrize(
    ("secure", "client_cb", "server_cbs", "expected"),
    [
        (True, CB, [CB], "SCRAM-SHA-512-PLUS"),
        (True, None, [CB], "SCRAM-SHA-512"),  # the client says "n": allowed
        (True, CB, [], "SCRAM-SHA-512"),  # the client says "y": the server has no binding, allowed
        (False, None, [], "SCRAM-SHA-512"),
    ],
)
def test_negotiation_from_offer_to_success(
    secure: bool, client_cb: ChannelBinding | None, server_cbs: list[ChannelBinding], expected: str
) -> None:
    offer = server_mechanism_names(secure=secure, channel_binding_types=[b.type for b in server_cbs])
    chosen = select_client_mechanism(
        offer, client_mechanisms(username="juliet", password="pencil", channel_binding=client_cb)
    )
    assert chosen.name == expected
    server = server_mechanism(chosen.name, channel_binding=server_cbs, secure=secure)
    assert exchange(chosen, server, STORE).username == "juliet"


def test_stripped_plus_offer_is_caught() -> None:
    # RFC 5802 §6: an attacker removes the -PLUS names; the client, able to bind, says "y"; the server,
    # which did offer -PLUS, must fail.
    offer = [n for n in server_mechanism_names(secure=True, channel_binding_types=[CB.type]) if "PLUS" not in n]
    chosen = select_client_mechanism(offer, client_mechanisms(username="juliet", password="pencil", channel_binding=CB))
    server = server_mechanism(chosen.name, channel_binding=CB, secure=True)
    with pytest.raises(AuthenticationError) as e:
        exchange(chosen, server, STORE)
    assert e.value.condition is SASLCondition.NOT_AUTHORIZED


def test_external_and_anonymous_through_the_factories() -> None:
    client = select_client_mechanism(["EXTERNAL"], client_mechanisms(external=True))
    server = server_mechanism("EXTERNAL", external_identities=["juliet@example.com"], secure=True)
    assert exchange(client, server, {}).username == "juliet@example.com"
    client = select_client_mechanism(["ANONYMOUS"], client_mechanisms(anonymous=True, trace="hello"))
    server = server_mechanism("ANONYMOUS", allow_anonymous=True, secure=True)
    assert exchange(client, server, {}).authzid is None
