"""Subscriptions and presence on the wire (RFC 6121 §3, §4): jaybird clients against a jaybird server.

Every step asserts what each side sees: the roster pushes with their subscription state (Appendix A), the
subscription stanzas, and the presence that follows.
"""

from __future__ import annotations

import pytest

from jaybird.errors import StanzaErrorCondition
from jaybird.ext.presence.subscription import SubscriptionState
from jaybird.ext.roster.client import approve, deny, get_roster, remove_item, subscribe, unsubscribe
from jaybird.ext.roster.store import RosterEntry, RosterStore
from jaybird.ext.roster.wire import Subscription
from jaybird.jid import JID
from jaybird.stanza import Presence, PresenceShow, PresenceType
from jaybird.xml.element import Element
from tests.ext.roster.harness import Cast, Peer, is_presence, is_push

SUB, SUBD, UNSUB, UNSUBD = (
    PresenceType.SUBSCRIBE,
    PresenceType.SUBSCRIBED,
    PresenceType.UNSUBSCRIBE,
    PresenceType.UNSUBSCRIBED,
)


async def online(cast: Cast, local: str, resource: str, *, status: str | None = None) -> Peer:
    """Logged in, roster requested (interested, §2.2), initial presence sent (available, §4.2)."""
    account = JID(f"{local}@localhost")
    if not await cast.running.server.storage.accounts.get(local, "localhost"):
        await cast.account(local)
    peer = await cast.connect(account, resource)
    await get_roster(peer.client)
    await peer.client.send(Presence.build(status=status))
    await peer.expect_presence(peer.jid)  # §4.2.2: the server echoes it to every available resource
    return peer


async def befriend(juliet: Peer, romeo: Peer) -> None:
    """Juliet and Romeo end with subscription 'both' (RFC 6121 §3.1 twice), checked at every step."""
    j, r = juliet.jid.bare, romeo.jid.bare
    # §3.1.1-3.1.3: Juliet asks; her roster shows the pending request; Romeo is asked.
    await subscribe(juliet.client, r, status="I'm Juliet")
    await juliet.expect_push(r, Subscription.NONE, ask=True)
    request = await romeo.expect_presence(j, SUB)
    assert request.status == "I'm Juliet"
    await romeo.nothing(is_push(j))  # §3.1.3: a request alone does not add Juliet to Romeo's roster
    # §3.1.4-3.1.6: Romeo approves; both rosters change; Juliet gets the approval, then Romeo's presence.
    await approve(romeo.client, j)
    await romeo.expect_push(j, Subscription.FROM)
    await juliet.expect_push(r, Subscription.TO)
    await juliet.expect_presence(r, SUBD)
    await juliet.expect_presence(romeo.jid)
    # And back the other way.
    await subscribe(romeo.client, j)
    await romeo.expect_push(j, Subscription.FROM, ask=True)
    await juliet.expect_presence(r, SUB)
    await approve(juliet.client, r)
    await juliet.expect_push(r, Subscription.BOTH)
    await romeo.expect_push(j, Subscription.BOTH)
    await romeo.expect_presence(j, SUBD)
    await romeo.expect_presence(juliet.jid)


async def test_mutual_subscription_and_presence_updates(im: Cast) -> None:
    """RFC 6121 §3.1 both ways, then §4.4: updates reach subscribers and the sender's own resources."""
    juliet = await online(im, "juliet", "balcony")
    romeo = await online(im, "romeo", "orchard")
    await befriend(juliet, romeo)

    await juliet.client.send(Presence.build(show=PresenceShow.AWAY, status="asleep", priority=5))
    update = await romeo.expect_presence(juliet.jid)
    assert (update.show, update.status, update.priority) == (PresenceShow.AWAY, "asleep", 5)
    assert update.to is not None and update.to.bare == romeo.jid.bare
    await juliet.expect_presence(juliet.jid)

    roster = await get_roster(juliet.client)
    assert roster is not None
    item = roster.item(romeo.jid.bare)
    assert item is not None and (item.subscription, item.ask) == (Subscription.BOTH, False)


async def test_a_denied_request(im: Cast) -> None:
    """RFC 6121 §3.2.1: Romeo refuses; Juliet's pending request is cleared and she is told."""
    juliet = await online(im, "juliet", "balcony")
    romeo = await online(im, "romeo", "orchard")
    await subscribe(juliet.client, romeo.jid)
    await juliet.expect_push(romeo.jid.bare, Subscription.NONE, ask=True)
    await romeo.expect_presence(juliet.jid.bare, SUB)
    await deny(romeo.client, juliet.jid)
    await juliet.expect_push(romeo.jid.bare, Subscription.NONE, ask=False)
    await juliet.expect_presence(romeo.jid.bare, UNSUBD)
    await romeo.nothing(is_push(juliet.jid.bare))  # Juliet never was on Romeo's roster


async def test_pre_approval(im: Cast) -> None:
    """RFC 6121 §3.4: Juliet approves before Romeo asks; his request is then answered without her."""
    juliet = await online(im, "juliet", "balcony")
    romeo = await online(im, "romeo", "orchard")
    await approve(juliet.client, romeo.jid)
    push = await juliet.expect_push(romeo.jid.bare, Subscription.NONE)
    assert push.item.approved  # §3.4.1: the item shows approved='true'
    await romeo.nothing(is_presence(juliet.jid.bare, SUBD))  # §3.4.1: a pre-approval is not routed

    await subscribe(romeo.client, juliet.jid)
    await romeo.expect_push(juliet.jid.bare, Subscription.NONE, ask=True)
    await romeo.expect_presence(juliet.jid.bare, SUBD)
    await romeo.expect_push(juliet.jid.bare, Subscription.TO)
    await romeo.expect_presence(juliet.jid)  # and her current presence (§3.1.5)
    after = await juliet.expect_push(romeo.jid.bare, Subscription.FROM)
    assert not after.item.approved
    await juliet.nothing(is_presence(romeo.jid.bare, SUB))  # she is not asked


async def test_removing_a_contact_cancels_both_subscriptions(im: Cast) -> None:
    """RFC 6121 §2.5.2: removal sends unsubscribe and unsubscribed; the contact's roster follows (A.3)."""
    juliet = await online(im, "juliet", "balcony")
    romeo = await online(im, "romeo", "orchard")
    await befriend(juliet, romeo)
    await remove_item(juliet.client, romeo.jid.bare)
    await juliet.expect_push(romeo.jid.bare, Subscription.REMOVE)
    await romeo.expect_presence(juliet.jid, PresenceType.UNAVAILABLE)  # she stops being visible (§3.2.2)
    await romeo.expect_presence(juliet.jid.bare, UNSUB)
    await romeo.expect_presence(juliet.jid.bare, UNSUBD)
    # Romeo's item follows A.3.3 (Both -> To: she unsubscribed) then A.3.4 (To -> None: she cancelled his).
    await romeo.expect_push(juliet.jid.bare, Subscription.TO)
    await romeo.expect_push(juliet.jid.bare, Subscription.NONE)
    # §3.3.3: having lost her as a subscriber, Romeo's server tells her he is unavailable; then no more news.
    await juliet.expect_presence(romeo.jid, PresenceType.UNAVAILABLE)
    await romeo.client.send(Presence.build(status="alone"))
    await juliet.nothing(is_presence(romeo.jid))


async def test_unsubscribe_and_cancel(im: Cast) -> None:
    """RFC 6121 §3.3 (Juliet unsubscribes: Both -> From) and §3.2 (Romeo cancels hers: From -> None)."""
    juliet = await online(im, "juliet", "balcony")
    romeo = await online(im, "romeo", "orchard")
    await befriend(juliet, romeo)
    await unsubscribe(juliet.client, romeo.jid)
    await juliet.expect_push(romeo.jid.bare, Subscription.FROM)
    await romeo.expect_push(juliet.jid.bare, Subscription.TO)
    await romeo.expect_presence(juliet.jid.bare, UNSUB)
    await juliet.expect_presence(romeo.jid, PresenceType.UNAVAILABLE)  # §3.3.3: Romeo is gone for her

    await deny(romeo.client, juliet.jid)  # Romeo cancels Juliet's... no: his own subscription was 'to'
    # Seen from Romeo, 'to' means he receives Juliet's presence; unsubscribed cancels *her* view of him, which
    # no longer exists: nothing changes and nothing is routed (A.2.4, "To": no state change).
    await juliet.nothing(is_presence(romeo.jid.bare, UNSUBD))
    await deny(juliet.client, romeo.jid)  # Juliet cancels Romeo's subscription to her (§3.2.1)
    await juliet.expect_push(romeo.jid.bare, Subscription.NONE)
    await romeo.expect_push(juliet.jid.bare, Subscription.NONE)
    await romeo.expect_presence(juliet.jid, PresenceType.UNAVAILABLE)
    await romeo.expect_presence(juliet.jid.bare, UNSUBD)


async def test_probes_at_login(im: Cast) -> None:
    """RFC 6121 §4.2.2, §4.3: a new resource learns its contacts' presence and its own other resources'."""
    juliet = await online(im, "juliet", "balcony")
    romeo = await online(im, "romeo", "orchard", status="under the window")
    await befriend(juliet, romeo)
    chamber = await im.connect(juliet.jid.bare, "chamber")
    await get_roster(chamber.client)
    await chamber.client.send(Presence.build(status="in the chamber"))
    seen = await chamber.expect_presence(romeo.jid)
    assert seen.status == "under the window"
    await chamber.expect_presence(juliet.jid)  # her balcony resource
    await chamber.expect_presence(chamber.jid)
    news = await romeo.expect_presence(chamber.jid)  # broadcast to her subscriber
    assert news.status == "in the chamber"
    await juliet.expect_presence(chamber.jid)  # and to her other resource


async def test_unavailable_on_disconnect(im: Cast) -> None:
    """RFC 6121 §4.5.1: a session that goes away without unavailable presence gets it sent in its name."""
    juliet = await online(im, "juliet", "balcony")
    romeo = await online(im, "romeo", "orchard")
    await befriend(juliet, romeo)
    await juliet.client.close()
    await romeo.expect_presence(juliet.jid, PresenceType.UNAVAILABLE)


async def test_explicit_unavailable(im: Cast) -> None:
    """RFC 6121 §4.5.2: unavailable goes to subscribers and to the user's resources; no second one at logoff."""
    juliet = await online(im, "juliet", "balcony")
    romeo = await online(im, "romeo", "orchard")
    await befriend(juliet, romeo)
    await juliet.client.send(Presence.build(type=PresenceType.UNAVAILABLE, status="gone to bed"))
    gone = await romeo.expect_presence(juliet.jid, PresenceType.UNAVAILABLE)
    assert gone.status == "gone to bed"
    await juliet.client.close()
    await romeo.nothing(is_presence(juliet.jid, PresenceType.UNAVAILABLE))


async def test_directed_presence_ends_at_logoff(im: Cast) -> None:
    """RFC 6121 §4.6: directed presence to a non-subscriber is followed by unavailable when the session ends."""
    juliet = await online(im, "juliet", "balcony")
    paris = await online(im, "paris", "church")
    await juliet.client.send(Presence.build(paris.jid, status="for your eyes only"))
    directed = await paris.expect_presence(juliet.jid)
    assert directed.status == "for your eyes only"
    await juliet.client.close()
    await paris.expect_presence(juliet.jid, PresenceType.UNAVAILABLE)


async def test_directed_unavailable_is_not_repeated_at_logoff(im: Cast) -> None:
    """RFC 6121 §4.6.3: after directed unavailable, the entity is not told again at logoff."""
    juliet = await online(im, "juliet", "balcony")
    paris = await online(im, "paris", "church")
    await juliet.client.send(Presence.build(paris.jid))
    await paris.expect_presence(juliet.jid)
    await juliet.client.send(Presence.build(paris.jid, type=PresenceType.UNAVAILABLE))
    await paris.expect_presence(juliet.jid, PresenceType.UNAVAILABLE)
    await juliet.client.close()
    await paris.nothing(is_presence(juliet.jid, PresenceType.UNAVAILABLE))


async def test_pending_request_is_delivered_at_login(im: Cast) -> None:
    """RFC 6121 §3.1.3: a request for an offline contact is kept and delivered when it becomes available."""
    juliet = await online(im, "juliet", "balcony")
    romeo_account = await im.account("romeo")
    await subscribe(juliet.client, romeo_account, status="wherefore art thou")
    await juliet.expect_push(romeo_account, Subscription.NONE, ask=True)

    romeo = await im.connect(romeo_account, "orchard")
    roster = await get_roster(romeo.client)
    assert roster is not None and roster.items == ()  # not on his roster before he approves
    await romeo.client.send(Presence.build())
    request = await romeo.expect_presence(juliet.jid.bare, SUB)
    assert request.status == "wherefore art thou"

    await approve(romeo.client, juliet.jid)
    await romeo.expect_push(juliet.jid.bare, Subscription.FROM)
    await juliet.expect_push(romeo_account, Subscription.TO)
    await juliet.expect_presence(romeo.jid)

    # Answered: a later login does not ask him again.
    later = await im.connect(romeo_account, "garden")
    await later.client.send(Presence.build())
    await later.nothing(is_presence(juliet.jid.bare, SUB))


async def test_a_request_from_a_subscriber_is_answered_by_the_server(im: Cast) -> None:
    """RFC 6121 §3.1.3: a subscribe from someone already subscribed is answered 'subscribed' in the user's name,
    which brings a requester whose roster lost the subscription back in step (A.3.2)."""
    juliet_account, romeo = await im.account("juliet"), await online(im, "romeo", "orchard")
    store = RosterStore(im.running.server.storage)
    await store.put(juliet_account, RosterEntry(jid=romeo.jid.bare, state=SubscriptionState(from_=True)))
    await store.put(romeo.jid, RosterEntry(jid=juliet_account, state=SubscriptionState(to=True, from_=True)))
    juliet = await online(im, "juliet", "balcony")
    await romeo.expect_presence(juliet.jid)

    await subscribe(juliet.client, romeo.jid)
    await juliet.expect_push(romeo.jid.bare, Subscription.FROM, ask=True)
    await juliet.expect_presence(romeo.jid.bare, SUBD)
    await juliet.expect_push(romeo.jid.bare, Subscription.BOTH)
    await romeo.nothing(is_presence(juliet.jid.bare, SUB))  # he is not asked again


async def test_a_non_subscriber_learns_nothing_at_login(im: Cast) -> None:
    """RFC 6121 §4.3.2: no presence for a contact the user is not subscribed to; 'unsubscribed' corrects a
    roster that claims otherwise (A.3.4: To -> None)."""
    juliet = await online(im, "juliet", "balcony")
    paris_account = await im.account("paris")
    await RosterStore(im.running.server.storage).put(
        paris_account, RosterEntry(jid=juliet.jid.bare, state=SubscriptionState(to=True))
    )
    paris = await im.connect(paris_account, "church")
    await get_roster(paris.client)
    await paris.client.send(Presence.build())
    await paris.expect_push(juliet.jid.bare, Subscription.NONE)
    await paris.expect_presence(juliet.jid.bare, UNSUBD)
    await paris.nothing(is_presence(juliet.jid, PresenceType.AVAILABLE))


async def test_probe_from_a_client_is_answered_by_the_server(im: Cast) -> None:
    """RFC 6121 §4.3.2: a probe from a subscriber gets the user's presence; with no resource, unavailable."""
    juliet = await online(im, "juliet", "balcony", status="on the balcony")
    romeo = await online(im, "romeo", "orchard")
    await befriend(juliet, romeo)
    await romeo.client.send(Presence.build(juliet.jid.bare, type=PresenceType.PROBE))
    answer = await romeo.expect_presence(juliet.jid)
    assert answer.status == "on the balcony"
    await juliet.client.close()
    await romeo.expect_presence(juliet.jid, PresenceType.UNAVAILABLE)
    await romeo.client.send(Presence.build(juliet.jid.bare, type=PresenceType.PROBE))
    await romeo.expect_presence(juliet.jid.bare, PresenceType.UNAVAILABLE)


@pytest.mark.parametrize("type_", ["available", "bogus"])
async def test_invalid_presence_type_is_bad_request(im: Cast, type_: str) -> None:
    """RFC 6121 §4.7.1: 'type' takes only the defined values; anything else is answered bad-request."""
    juliet = await online(im, "juliet", "balcony")
    stanza = Presence(Element("{jabber:client}presence", {"type": type_, "id": "odd"}))
    await juliet.client.send(stanza)
    reply = await juliet.expect(lambda got: isinstance(got, Presence) and got.id == "odd")
    assert isinstance(reply, Presence) and reply.error is not None
    assert reply.error.condition is StanzaErrorCondition.BAD_REQUEST
