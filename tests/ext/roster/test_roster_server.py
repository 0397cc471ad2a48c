"""The roster module on the wire (RFC 6121 §2, XEP-0237), with jaybird clients against a jaybird server."""

from __future__ import annotations

import pytest

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.roster.client import get_roster, remove_item, set_item
from jaybird.ext.roster.wire import GROUP, ITEM, QUERY, Subscription
from jaybird.jid import JID
from jaybird.stanza import Iq, IqType
from jaybird.xml.element import Element
from tests.ext.roster.harness import Cast, is_push

_C = StanzaErrorCondition


async def test_add_update_and_remove_an_item_with_pushes(im: Cast) -> None:
    """RFC 6121 §2.3.2, §2.4.2, §2.5.2: each change is answered and pushed to the interested resource."""
    juliet = await im.connect(await im.account("juliet"), "balcony")
    nurse = JID("nurse@localhost")
    roster = await get_roster(juliet.client)
    assert roster is not None and roster.items == ()

    await set_item(juliet.client, nurse, name="Nurse", groups=["Servants"])
    push = await juliet.expect_push(nurse, Subscription.NONE)
    assert (push.item.name, push.item.groups) == ("Nurse", ("Servants",))

    await set_item(juliet.client, nurse, name="Angelica", groups=["Servants", "Family"])
    push = await juliet.expect_push(nurse, Subscription.NONE)
    assert (push.item.name, push.item.groups) == ("Angelica", ("Servants", "Family"))

    roster = await get_roster(juliet.client)
    assert roster is not None
    item = roster.item(nurse)
    assert item is not None and item.name == "Angelica" and item.subscription is Subscription.NONE

    await remove_item(juliet.client, nurse)
    await juliet.expect_push(nurse, Subscription.REMOVE)
    roster = await get_roster(juliet.client)
    assert roster is not None and roster.items == ()


def _set(*items: Element) -> Iq:
    query = Element(QUERY)
    for item in items:
        query.append(item)
    return Iq.build(IqType.SET, query)


def _item(jid: str, *groups: str, **attrs: str) -> Element:
    element = Element(ITEM, {"jid": jid, **attrs})
    for group in groups:
        element.add(GROUP, text=group)
    return element


@pytest.mark.parametrize(
    ("request_items", "condition"),
    [
        ((_item("a@localhost"), _item("b@localhost")), _C.BAD_REQUEST),  # §2.3.3: more than one item
        ((_item("a@localhost", "Friends", "Friends"),), _C.BAD_REQUEST),  # §2.3.3: a group twice
        ((_item("a@localhost", ""),), _C.NOT_ACCEPTABLE),  # §2.3.3: an empty group
        ((_item("a@localhost", subscription="sideways"),), _C.BAD_REQUEST),  # §2.1.2.5: no such value
        ((_item("juliet@localhost"),), _C.NOT_ALLOWED),  # one's own account
        ((_item("a@localhost/phone"),), _C.BAD_REQUEST),  # §2.1.2.3: items are bare JIDs
        ((_item("a@localhost", subscription="remove"),), _C.ITEM_NOT_FOUND),  # §2.5.3: nothing to remove
        ((), _C.BAD_REQUEST),
    ],
)
async def test_roster_set_errors(im: Cast, request_items: tuple[Element, ...], condition: StanzaErrorCondition) -> None:
    juliet = await im.connect(await im.account("juliet"), "balcony")
    await get_roster(juliet.client)
    with pytest.raises(StanzaError) as caught:
        await juliet.client.iq(_set(*(item.copy() for item in request_items)))
    assert caught.value.condition is condition
    await juliet.nothing(lambda got: True)  # a refused set changes nothing, so nothing is pushed


async def test_subscription_attributes_in_a_set_do_not_change_the_state(im: Cast) -> None:
    """RFC 6121 §2.1.2.5: the subscription state is the server's; a client echoing 'both' gains nothing."""
    juliet = await im.connect(await im.account("juliet"), "balcony")
    await get_roster(juliet.client)
    await juliet.client.iq(_set(_item("tybalt@localhost", subscription="both", ask="subscribe")))
    await juliet.expect_push(JID("tybalt@localhost"), Subscription.NONE, ask=False)


async def test_a_roster_of_someone_else_is_forbidden(im: Cast) -> None:
    """RFC 6121 §2.1.3 (and §2.3.3): only the account's own resources read or change its roster."""
    await im.account("juliet")
    romeo = await im.connect(await im.account("romeo"), "orchard")
    with pytest.raises(StanzaError) as caught:
        await romeo.client.iq(Iq.build(IqType.GET, Element(QUERY), to="juliet@localhost"))
    assert caught.value.condition is _C.FORBIDDEN


async def test_pushes_go_only_to_interested_resources(im: Cast) -> None:
    """RFC 6121 §2.2: a resource that never asked for the roster gets no pushes."""
    account = await im.account("juliet")
    balcony = await im.connect(account, "balcony")
    chamber = await im.connect(account, "chamber")
    await get_roster(balcony.client)
    await set_item(chamber.client, "nurse@localhost")
    push = await balcony.expect_push(JID("nurse@localhost"), Subscription.NONE)
    assert push.ver is not None
    await chamber.nothing(is_push(JID("nurse@localhost")))


async def test_roster_versioning(im: Cast) -> None:
    """RFC 6121 §2.6 / XEP-0237: a current ver gets an empty result, then pushes; an old one the roster."""
    account = await im.account("juliet")
    juliet = await im.connect(account, "balcony")
    first = await get_roster(juliet.client, ver="")
    assert first is not None and first.ver is not None

    await set_item(juliet.client, "nurse@localhost", name="Nurse")
    push = await juliet.expect_push(JID("nurse@localhost"), Subscription.NONE)
    assert push.ver is not None and push.ver != first.ver

    assert await get_roster(juliet.client, ver=push.ver) is None  # §2.6.3: up to date
    stale = await get_roster(juliet.client, ver=first.ver)
    assert stale is not None and stale.ver == push.ver and [i.jid for i in stale.items] == [JID("nurse@localhost")]

    # A new session with the current ver gets nothing but later changes, as pushes with the next ver (§2.6.3).
    later = await im.connect(account, "chamber")
    assert await get_roster(later.client, ver=push.ver) is None
    await remove_item(juliet.client, "nurse@localhost")
    removal = await later.expect_push(JID("nurse@localhost"), Subscription.REMOVE)
    assert removal.ver not in (None, push.ver)

    # Versions outlive sessions: they are stored, not counted in memory.
    await juliet.client.close()
    again = await im.connect(account, "balcony")
    assert await get_roster(again.client, ver=removal.ver) is None
