"""In-band registration (XEP-0077) on the server: account creation, password change, account removal."""

from __future__ import annotations

import pytest

from jaybird.errors import StanzaError, StanzaErrorCondition, StanzaErrorType, StreamErrorCondition
from jaybird.ext.register.server import RegisterModule
from jaybird.ext.register.wire import NS, RegisterQuery
from jaybird.ext.vcard.server import STORE as VCARD_STORE
from jaybird.ext.vcard.server import VCardModule
from jaybird.jid import JID
from jaybird.sasl import make_scram_credentials
from jaybird.stanza import Iq, IqType
from jaybird.xml.element import Element
from tests.ext.blocking.harness import DOMAIN, World, make_world


async def world_with(*, registration: bool) -> tuple[World, RegisterModule]:
    world = await make_world(registration=registration)
    return world, await world.load(RegisterModule)


async def password_matches(world: World, jid: JID, password: str) -> bool:
    account = await world.host.storage.accounts.get(jid.local or "", jid.domain)
    assert account is not None
    stored = account.credential("SCRAM-SHA-256")
    assert stored is not None and account.credential("SCRAM-SHA-1") is not None
    derived = make_scram_credentials(password, "SCRAM-SHA-256", stored.iterations, stored.salt)
    return derived.stored_key == stored.stored_key


def test_wire_round_trip() -> None:
    query = RegisterQuery(username="bill", password="Calliope")
    assert RegisterQuery.from_element(query.to_element()) == query
    removal = RegisterQuery.from_element(RegisterQuery(remove=True).to_element())
    assert removal.remove and removal.only_remove


async def test_register_account() -> None:
    world, module = await world_with(registration=True)
    jid = await module.register("Bill", "Calliope-1", "192.0.2.1")
    assert jid == JID(f"bill@{DOMAIN}")  # UsernameCaseMapped (RFC 7622 §3.3)
    assert await password_matches(world, jid, "Calliope-1")
    with pytest.raises(StanzaError) as taken:
        await module.register("bill", "other", "192.0.2.2")
    assert taken.value.condition is StanzaErrorCondition.CONFLICT  # XEP-0077 §3.1


@pytest.mark.parametrize(("username", "password"), [("", "pw"), ("bill", ""), (None, "pw"), ("a b@c", "pw")])
async def test_register_refuses_bad_input(username: str | None, password: str) -> None:
    world, module = await world_with(registration=True)
    with pytest.raises(StanzaError) as refused:
        await module.register(username, password, "192.0.2.1")
    assert refused.value.condition is StanzaErrorCondition.NOT_ACCEPTABLE
    assert await world.host.storage.accounts.usernames(DOMAIN) == []


async def test_register_is_throttled_per_address() -> None:
    world, module = await world_with(registration=True)  # the harness allows 2 per minute
    await module.register("one", "pw-one", "192.0.2.1")
    await module.register("two", "pw-two", "192.0.2.1")
    with pytest.raises(StanzaError) as throttled:
        await module.register("three", "pw-three", "192.0.2.1")
    assert throttled.value.condition is StanzaErrorCondition.NOT_ACCEPTABLE
    assert throttled.value.type is StanzaErrorType.WAIT
    await module.register("three", "pw-three", "192.0.2.9")  # another address is not affected
    assert await world.host.storage.accounts.usernames(DOMAIN) == ["one", "three", "two"]


async def test_register_off_by_default() -> None:
    _world, module = await world_with(registration=False)
    with pytest.raises(StanzaError) as off:
        await module.register("bill", "pw", "192.0.2.1")
    assert off.value.condition is StanzaErrorCondition.NOT_ALLOWED


async def test_get_when_registered() -> None:
    world, _module = await world_with(registration=False)
    bill = await world.account("bill")
    reply = await world.iq(world.connect(bill), Iq.build(IqType.GET, RegisterQuery(), to=DOMAIN))
    query = reply.get(RegisterQuery)
    assert query is not None and query.registered and query.username == "bill"  # §3.1
    assert NS in world.host.features()


async def test_change_password() -> None:
    world, _module = await world_with(registration=False)
    bill = await world.account("bill", "old-password")
    b = world.connect(bill)
    change = RegisterQuery(username="bill", password="new-password")
    assert (await world.iq(b, Iq.build(IqType.SET, change, to=DOMAIN))).type is IqType.RESULT  # §3.3
    assert await password_matches(world, bill, "new-password")
    # no 'to' works the same (the server answers for the account)
    await world.iq(b, Iq.build(IqType.SET, RegisterQuery(username="bill", password="third")))
    assert await password_matches(world, bill, "third")


@pytest.mark.parametrize(
    ("query", "condition"),
    [
        (RegisterQuery(username="bill", password=""), StanzaErrorCondition.BAD_REQUEST),  # §3.3: keep it
        (RegisterQuery(password="pw"), StanzaErrorCondition.BAD_REQUEST),
        (RegisterQuery(username="other", password="pw"), StanzaErrorCondition.FORBIDDEN),
    ],
)
async def test_change_password_refused(query: RegisterQuery, condition: StanzaErrorCondition) -> None:
    world, _module = await world_with(registration=False)
    bill = await world.account("bill", "old-password")
    reply = await world.iq(world.connect(bill), Iq.build(IqType.SET, query, to=DOMAIN))
    assert reply.error is not None and reply.error.condition is condition
    assert await password_matches(world, bill, "old-password")


async def test_remove_account() -> None:
    world, _module = await world_with(registration=False)
    vcard = await world.load(VCardModule)
    bill = await world.account("bill")
    globe, other = world.connect(bill, "globe"), world.connect(bill, "other")
    await world.host.storage.kv.set(str(bill), VCARD_STORE, "<vCard xmlns='vcard-temp'/>")
    request = Iq.build(IqType.SET, RegisterQuery(remove=True))
    await world.send(globe, request)
    [result] = globe.take()  # §3.2: the result, then not-authorized stream errors for every session
    assert isinstance(result, Iq) and result.type is IqType.RESULT and result.id == request.id
    for session in (globe, other):
        assert session.is_closed and session.closed is not None
        assert session.closed.condition is StreamErrorCondition.NOT_AUTHORIZED
    assert not await world.host.account_exists(bill)
    assert await vcard.load_vcard(str(bill)) is None  # AccountRemoved: modules drop the account's data


async def test_remove_must_be_alone() -> None:
    world, _module = await world_with(registration=False)
    bill = await world.account("bill")
    query = RegisterQuery(remove=True).to_element()
    query.append(Element(f"{{{NS}}}username", text="bill"))
    reply = await world.iq(world.connect(bill), Iq.build(IqType.SET, query))
    assert reply.error is not None and reply.error.condition is StanzaErrorCondition.BAD_REQUEST  # §3.2
    assert await world.host.account_exists(bill)
