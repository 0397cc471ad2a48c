"""The roster payload (RFC 6121 §2.1) and the stored entry, without a server."""

from __future__ import annotations

import pytest

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.presence.subscription import SubscriptionState
from jaybird.ext.roster.store import RosterEntry, RosterStore
from jaybird.ext.roster.wire import QUERY, RosterItem, RosterQuery, Subscription
from jaybird.jid import JID
from jaybird.server.storage import open_storage
from jaybird.xml.serializer import serialize

NURSE = JID("nurse@example.com")


def test_item_round_trip_and_wire_form() -> None:
    """RFC 6121 §2.1.2: jid, name, subscription, ask='subscribe', approved='true', groups in order."""
    item = RosterItem(NURSE, name="Nurse", groups=("Servants", "Family"), ask=True, approved=True)
    query = RosterQuery(items=(item,), ver="ver7")
    text = serialize(query.to_element())
    assert 'ask="subscribe"' in text and 'approved="true"' in text and 'subscription="none"' in text
    assert RosterQuery.from_element(query.to_element()) == query
    assert query.item(NURSE) == item and query.item(JID("tybalt@example.com")) is None


def test_an_empty_query_has_no_ver_unless_given() -> None:
    assert RosterQuery().to_element().attrs == {}
    assert RosterQuery(ver="").to_element().attrs == {"ver": ""}
    assert RosterQuery.name == QUERY


@pytest.mark.parametrize(
    ("attrs", "condition"),
    [
        ({}, StanzaErrorCondition.BAD_REQUEST),
        ({"jid": "@@"}, StanzaErrorCondition.JID_MALFORMED),
        ({"jid": "a@b", "subscription": "maybe"}, StanzaErrorCondition.BAD_REQUEST),
    ],
)
def test_unreadable_items(attrs: dict[str, str], condition: StanzaErrorCondition) -> None:
    element = RosterItem(NURSE).to_element()
    element.attrs = attrs
    with pytest.raises(StanzaError) as caught:
        RosterItem.from_element(element)
    assert caught.value.condition is condition


def test_subscription_of_directions() -> None:
    assert Subscription.of(to=True, from_=True) is Subscription.BOTH
    assert Subscription.of(to=False, from_=True) is Subscription.FROM
    assert Subscription.TO.to and not Subscription.TO.from_
    assert not Subscription.REMOVE.to and not Subscription.REMOVE.from_


def test_entry_encoding_round_trips() -> None:
    state = SubscriptionState(to=True, pending_in=True, approved=False)
    entry = RosterEntry(NURSE, name="Nüsse", groups=("A",), state=state, listed=False, request_status="hi")
    assert RosterEntry.decode(NURSE, entry.encode()) == entry
    assert entry.item.subscription is Subscription.TO


def test_a_settled_request_forgets_its_status() -> None:
    entry = RosterEntry(NURSE, state=SubscriptionState(pending_in=True), listed=False, request_status="please")
    settled = entry.with_state(SubscriptionState(from_=True))
    assert settled.request_status is None
    assert entry.with_state(SubscriptionState()).disposable  # §3.1.3: nothing left to keep


async def test_store_keeps_entries_per_owner_and_counts_versions() -> None:
    """The layout the module documents: map store 'roster' by contact, a counter in kv 'roster-version'."""
    storage = await open_storage("memory://")
    try:
        store = RosterStore(storage)
        owner = JID("juliet@example.com/balcony")
        await store.put(owner, RosterEntry(NURSE, name="Nurse"))
        assert await storage.map.get("juliet@example.com", "roster", "nurse@example.com") is not None
        assert [e.jid for e in await store.entries(owner.bare)] == [NURSE]
        assert await store.entries(JID("romeo@example.com")) == []
        assert await store.version(owner) == 0
        assert await store.bump(owner) == 1 and await store.bump(owner.bare) == 2
        assert await store.delete(owner, NURSE) and await store.get(owner, NURSE) is None
    finally:
        await storage.close()
