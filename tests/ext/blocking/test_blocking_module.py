"""The Blocking Command (XEP-0191) on the server, through the real router over memory storage."""

from __future__ import annotations

import pytest

from jaybird.errors import StanzaErrorCondition
from jaybird.ext.blocking.server import STORE, BlockingModule
from jaybird.ext.blocking.wire import BLOCKED, Block, BlockList, Unblock
from jaybird.jid import JID
from jaybird.server.events import AccountRemoved
from jaybird.stanza import Iq, IqType, Message, MessageType, Presence, PresenceType
from jaybird.xml.element import Element
from tests.ext.blocking.harness import World, make_world


@pytest.fixture
async def world() -> World:
    world = await make_world()
    await world.load(BlockingModule)
    return world


async def accounts(world: World) -> tuple[JID, JID]:
    return await world.account("juliet"), await world.account("romeo")


async def test_block_get_unblock_and_pushes(world: World) -> None:
    juliet, romeo = await accounts(world)
    chamber, balcony, garden = (world.connect(juliet, r) for r in ("chamber", "balcony", "garden"))
    for session in (chamber, balcony):  # these two retrieve the list; garden never does
        assert (await world.iq(session, Iq.build(IqType.GET, BlockList()))).get(BlockList) == BlockList()
    assert (await world.iq(chamber, Iq.build(IqType.SET, Block((romeo,))))).type is IqType.RESULT
    for session in (chamber, balcony):  # "send an IQ-set to all of the user's resources that have requested"
        pushes = [s for s in session.take() if isinstance(s, Iq) and s.type is IqType.SET]
        assert [p.get(Block) for p in pushes] == [Block((romeo,))]
    assert garden.take() == []
    listed = await world.iq(garden, Iq.build(IqType.GET, BlockList()))
    assert listed.get(BlockList) == BlockList((romeo,))
    assert set(await world.host.storage.map.items(str(juliet), STORE)) == {str(romeo)}

    await world.iq(balcony, Iq.build(IqType.SET, Unblock((romeo,))))
    assert [s.get(Unblock) for s in chamber.take() if isinstance(s, Iq)] == [Unblock((romeo,))]
    assert (await world.iq(chamber, Iq.build(IqType.GET, BlockList()))).get(BlockList) == BlockList()


async def test_unblock_all(world: World) -> None:
    juliet, romeo = await accounts(world)
    j = world.connect(juliet)
    await world.iq(j, Iq.build(IqType.SET, Block((romeo, JID("iago@shakespeare.lit")))))
    await world.iq(j, Iq.build(IqType.SET, Unblock()))
    assert (await world.iq(j, Iq.build(IqType.GET, BlockList()))).get(BlockList) == BlockList()
    assert await world.host.storage.map.items(str(juliet), STORE) == {}


async def test_inbound_stanzas_from_a_blocked_jid(world: World) -> None:
    juliet, romeo = await accounts(world)
    j, r = world.connect(juliet, available=True), world.connect(romeo, available=True)
    await world.iq(j, Iq.build(IqType.SET, Block((romeo,))))
    j.take()
    r.take()  # the unavailable presence of the block itself
    await world.send(r, Message.build(juliet, "hello", type=MessageType.CHAT))
    await world.send(r, Presence.build(juliet.with_resource("res")))
    ping = Iq.build(IqType.GET, Element("{urn:xmpp:ping}ping"), to=j.jid)
    await world.send(r, ping)
    assert j.take() == []  # nothing reaches the user
    answers = r.take()
    # "Use Cases: User Blocks Contact": message and IQ get -> service-unavailable, presence -> no answer
    assert [type(a) for a in answers] == [Message, Iq]
    assert all(a.error is not None and a.error.condition is StanzaErrorCondition.SERVICE_UNAVAILABLE for a in answers)
    assert answers[1].id == ping.id


async def test_outbound_stanzas_to_a_blocked_jid(world: World) -> None:
    juliet, romeo = await accounts(world)
    j, r = world.connect(juliet, available=True), world.connect(romeo, available=True)
    await world.iq(j, Iq.build(IqType.SET, Block((romeo,))))
    j.take()
    r.take()
    await world.send(j, Message.build(romeo, "can you hear me?", type=MessageType.CHAT))
    assert r.take() == []
    [error] = j.take()
    assert error.error is not None and error.error.condition is StanzaErrorCondition.NOT_ACCEPTABLE
    assert error.error.app_condition == Element(BLOCKED)  # <blocked xmlns='urn:xmpp:blocking:errors'/>
    # the user's own account and server stay reachable
    await world.send(j, Message.build(juliet, "note to self", type=MessageType.CHAT))
    assert [m.body for m in j.take() if isinstance(m, Message)] == ["note to self"]


async def test_block_sends_unavailable_and_unblock_probes(world: World) -> None:
    juliet, romeo = await accounts(world)
    j = world.connect(juliet, available=True)
    r = world.connect(romeo, available=True)
    await world.iq(j, Iq.build(IqType.SET, Block((romeo,))))
    [gone] = r.take()  # "the user's server MUST send unavailable presence information to the contact"
    assert isinstance(gone, Presence) and gone.type is PresenceType.UNAVAILABLE and gone.from_ == j.jid
    await world.iq(j, Iq.build(IqType.SET, Unblock((romeo,))))
    # without a presence module nobody answers the probe: the contact gets nothing it may not see
    assert r.take() == []


async def test_domain_block(world: World) -> None:
    juliet, romeo = await accounts(world)
    j, r = world.connect(juliet, available=True), world.connect(romeo, available=True)
    await world.iq(j, Iq.build(IqType.SET, Block((JID("elsewhere.example"),))))
    await world.send(r, Message.build(juliet, "still here", type=MessageType.CHAT))
    assert [m.body for m in j.take() if isinstance(m, Message)] == ["still here"]
    await world.send(j, Message.build(JID("someone@chat.elsewhere.example"), "hi"))
    [error] = [s for s in j.take() if s.is_error]
    assert error.error is not None and error.error.condition is StanzaErrorCondition.NOT_ACCEPTABLE


async def test_only_the_owner(world: World) -> None:
    juliet, romeo = await accounts(world)
    r = world.connect(romeo)
    reply = await world.iq(r, Iq.build(IqType.GET, BlockList(), to=juliet))
    assert reply.error is not None and reply.error.condition is StanzaErrorCondition.FORBIDDEN


async def test_removal_clears_the_list(world: World) -> None:
    juliet, romeo = await accounts(world)
    j = world.connect(juliet)
    await world.iq(j, Iq.build(IqType.SET, Block((romeo,))))
    await world.host.hooks.fire(AccountRemoved(juliet))
    assert await world.host.storage.map.items(str(juliet), STORE) == {}
    module = world.modules[0]
    assert isinstance(module, BlockingModule) and await module.blocklist(juliet) == frozenset()
