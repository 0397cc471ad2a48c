"""vcard-temp (XEP-0054) on the server, through the real router over memory storage."""

from __future__ import annotations

import pytest

from jaybird.errors import StanzaErrorCondition
from jaybird.ext.vcard.server import STORE, VCardModule
from jaybird.ext.vcard.wire import NAME, NS, VCard
from jaybird.server.events import AccountRemoved
from jaybird.stanza import Iq, IqType
from jaybird.xml.element import Element
from tests.ext.blocking.harness import World, make_world


def card(full_name: str, *, padding: int = 0) -> VCard:
    el = Element(NAME)
    el.add(f"{{{NS}}}FN", text=full_name)
    if padding:
        el.add(f"{{{NS}}}DESC", text="x" * padding)
    return VCard(el)


@pytest.fixture
async def world() -> World:
    world = await make_world()
    await world.load(VCardModule, {"max_bytes": 2048})
    return world


def test_stored_form_round_trips() -> None:
    vcard = card("Juliet Capulet")
    assert VCard.from_xml(vcard.to_xml()) == vcard
    assert VCard.from_xml(vcard.to_xml()).field("FN") == "Juliet Capulet"
    with pytest.raises(ValueError):
        VCard.from_xml("<vCard xmlns='vcard-temp'>")


async def test_set_then_get_own_and_another_users(world: World) -> None:
    juliet, romeo = await world.account("juliet"), await world.account("romeo")
    j, r = world.connect(juliet), world.connect(romeo)
    reply = await world.iq(j, Iq.build(IqType.SET, card("Juliet Capulet")))
    assert reply.type is IqType.RESULT
    own = await world.iq(j, Iq.build(IqType.GET, VCard()))
    assert own.get(VCard) == card("Juliet Capulet")
    # §3.3: another user reads it at the bare JID, answered by the server, not forwarded
    other = await world.iq(r, Iq.build(IqType.GET, VCard(), to=juliet))
    assert other.from_ == juliet
    assert other.get(VCard) == card("Juliet Capulet")
    assert j.sent == []
    assert await world.host.storage.kv.get(str(juliet), STORE) is not None


async def test_missing_vcard_own_is_empty_others_is_an_error(world: World) -> None:
    juliet, romeo = await world.account("juliet"), await world.account("romeo")
    j = world.connect(juliet)
    own = await world.iq(j, Iq.build(IqType.GET, VCard()))
    assert own.type is IqType.RESULT  # §3.1: an empty <vCard/> is allowed
    vcard = own.get(VCard)
    assert vcard is not None and vcard.is_empty
    other = await world.iq(j, Iq.build(IqType.GET, VCard(), to=romeo))  # §3.3: an error is required
    assert other.error is not None and other.error.condition is StanzaErrorCondition.ITEM_NOT_FOUND


async def test_only_the_owner_sets(world: World) -> None:
    juliet, romeo = await world.account("juliet"), await world.account("romeo")
    r = world.connect(romeo)
    reply = await world.iq(r, Iq.build(IqType.SET, card("Not Juliet"), to=juliet))
    assert reply.error is not None and reply.error.condition is StanzaErrorCondition.FORBIDDEN  # §3.2
    assert await world.host.storage.kv.get(str(juliet), STORE) is None


async def test_size_limit(world: World) -> None:
    juliet = await world.account("juliet")
    j = world.connect(juliet)
    reply = await world.iq(j, Iq.build(IqType.SET, card("Juliet", padding=4000)))
    assert reply.error is not None and reply.error.condition is StanzaErrorCondition.NOT_ACCEPTABLE
    assert (await world.iq(j, Iq.build(IqType.SET, card("Juliet", padding=1000)))).type is IqType.RESULT


async def test_feature_and_removal(world: World) -> None:
    assert NS in world.host.features()
    juliet = await world.account("juliet")
    await world.iq(world.connect(juliet), Iq.build(IqType.SET, card("Juliet")))
    await world.host.hooks.fire(AccountRemoved(juliet))
    assert await world.host.storage.kv.get(str(juliet), STORE) is None
