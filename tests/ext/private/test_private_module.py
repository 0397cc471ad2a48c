"""Private XML storage (XEP-0049) on the server, through the real router over memory storage."""

from __future__ import annotations

import pytest

from jaybird.errors import StanzaErrorCondition
from jaybird.ext.private.server import STORE, PrivateModule
from jaybird.ext.private.wire import PrivateQuery, is_reserved
from jaybird.server.events import AccountRemoved
from jaybird.stanza import Iq, IqType
from jaybird.xml.element import Element
from tests.ext.blocking.harness import World, make_world

PREFS = "{exodus:prefs}exodus"
BOOKMARKS = "{storage:bookmarks}storage"


def prefs(nick: str | None = None) -> Element:
    el = Element(PREFS)
    if nick is not None:
        el.add("{exodus:prefs}defaultnick", text=nick)
    return el


@pytest.fixture
async def world() -> World:
    world = await make_world()
    await world.load(PrivateModule)
    return world


def test_reserved_namespaces() -> None:
    # XEP-0049 §2.3
    assert is_reserved("jabber:iq:roster") and is_reserved("jabber:iq:private")
    assert is_reserved("http://jabber.org/protocol/disco#info") and is_reserved("vcard-temp")
    assert is_reserved("")
    assert not is_reserved("storage:bookmarks") and not is_reserved("exodus:prefs")


async def test_store_and_retrieve(world: World) -> None:
    hamlet = await world.account("hamlet")
    h = world.connect(hamlet)
    stored = await world.iq(h, Iq.build(IqType.SET, PrivateQuery((prefs("Hamlet"),))))
    assert stored.type is IqType.RESULT
    got = await world.iq(h, Iq.build(IqType.GET, PrivateQuery((prefs(),))))
    query = got.get(PrivateQuery)
    assert query is not None and query.items == (prefs("Hamlet"),)
    # one key per qualified name: another fragment is kept apart
    await world.iq(h, Iq.build(IqType.SET, PrivateQuery((Element(BOOKMARKS),))))
    assert set(await world.host.storage.map.items(str(hamlet), STORE)) == {PREFS, BOOKMARKS}


async def test_never_stored_comes_back_empty(world: World) -> None:
    h = world.connect(await world.account("hamlet"))
    got = await world.iq(h, Iq.build(IqType.GET, PrivateQuery((prefs(),))))
    query = got.get(PrivateQuery)
    assert query is not None and query.items == (Element(PREFS),)


@pytest.mark.parametrize(
    ("items", "condition"),
    [
        ((), StanzaErrorCondition.NOT_ACCEPTABLE),  # §2.3: at least one child
        ((Element("{vcard-temp}vCard"),), StanzaErrorCondition.NOT_ACCEPTABLE),  # reserved
        ((Element("{jabber:iq:roster}query"),), StanzaErrorCondition.NOT_ACCEPTABLE),
        ((Element("plain"),), StanzaErrorCondition.NOT_ACCEPTABLE),  # no namespace of its own
        ((prefs(), Element(BOOKMARKS)), StanzaErrorCondition.BAD_REQUEST),  # two namespaces
    ],
)
@pytest.mark.parametrize("kind", [IqType.GET, IqType.SET])
async def test_refused_queries(
    world: World, items: tuple[Element, ...], condition: StanzaErrorCondition, kind: IqType
) -> None:
    h = world.connect(await world.account("hamlet"))
    reply = await world.iq(h, Iq.build(kind, PrivateQuery(items)))
    assert reply.error is not None and reply.error.condition is condition


async def test_another_users_data_is_forbidden(world: World) -> None:
    hamlet, macbeth = await world.account("hamlet"), await world.account("macbeth")
    m = world.connect(macbeth)
    for kind in (IqType.GET, IqType.SET):
        reply = await world.iq(m, Iq.build(kind, PrivateQuery((prefs("Macbeth"),)), to=hamlet))
        assert reply.error is not None and reply.error.condition is StanzaErrorCondition.FORBIDDEN  # §3
    assert await world.host.storage.map.items(str(hamlet), STORE) == {}


async def test_account_removal_clears_it(world: World) -> None:
    hamlet = await world.account("hamlet")
    await world.iq(world.connect(hamlet), Iq.build(IqType.SET, PrivateQuery((prefs("Hamlet"),))))
    await world.host.hooks.fire(AccountRemoved(hamlet))
    assert await world.host.storage.map.items(str(hamlet), STORE) == {}
