"""The subscription state machine against the tables of RFC 6121 Appendix A (A.2 outbound, A.3 inbound).

Each row: the state before (Appendix A's name), the state after, and whether the stanza goes on (routed to the
contact for A.2, delivered to the user for A.3). Every one of the nine states is covered for each of the four
stanza types, in both directions.
"""

from __future__ import annotations

import pytest

from jaybird.ext.presence.subscription import Outcome, SubscriptionState, inbound, outbound
from jaybird.ext.roster.wire import Subscription
from jaybird.stanza import PresenceType

S = SubscriptionState.parse
SUB, SUBD, UNSUB, UNSUBD = (
    PresenceType.SUBSCRIBE,
    PresenceType.SUBSCRIBED,
    PresenceType.UNSUBSCRIBE,
    PresenceType.UNSUBSCRIBED,
)
STATES = (
    "None",
    "None + Pending Out",
    "None + Pending In",
    "None + Pending Out/In",
    "To",
    "To + Pending In",
    "From",
    "From + Pending Out",
    "Both",
)

# (before, after, forwarded)
A2_1_SUBSCRIBE = [
    ("None", "None + Pending Out", True),
    ("None + Pending Out", "None + Pending Out", True),
    ("None + Pending In", "None + Pending Out/In", True),
    ("None + Pending Out/In", "None + Pending Out/In", True),
    ("To", "To", True),
    ("To + Pending In", "To + Pending In", True),
    ("From", "From + Pending Out", True),
    ("From + Pending Out", "From + Pending Out", True),
    ("Both", "Both", True),
]
A2_2_SUBSCRIBED = [
    ("None", "None + Approved", False),  # §3.4 pre-approval, kept on the user's server
    ("None + Pending Out", "None + Pending Out + Approved", False),
    ("None + Pending In", "From", True),
    ("None + Pending Out/In", "From + Pending Out", True),
    ("To", "To + Approved", False),
    ("To + Pending In", "Both", True),
    ("From", "From", False),
    ("From + Pending Out", "From + Pending Out", False),
    ("Both", "Both", False),
]
A2_3_UNSUBSCRIBE = [
    ("None", "None", True),
    ("None + Pending Out", "None", True),
    ("None + Pending In", "None + Pending In", True),
    ("None + Pending Out/In", "None + Pending In", True),
    ("To", "None", True),
    ("To + Pending In", "None + Pending In", True),
    ("From", "From", True),
    ("From + Pending Out", "From", True),
    ("Both", "From", True),
]
A2_4_UNSUBSCRIBED = [
    ("None", "None", False),
    ("None + Pending Out", "None + Pending Out", False),
    ("None + Pending In", "None", True),
    ("None + Pending Out/In", "None + Pending Out", True),
    ("To", "To", False),
    ("To + Pending In", "To", True),
    ("From", "None", True),
    ("From + Pending Out", "None + Pending Out", True),
    ("Both", "To", True),
]
A3_1_SUBSCRIBE = [
    ("None", "None + Pending In", True),
    ("None + Pending Out", "None + Pending Out/In", True),
    ("None + Pending In", "None + Pending In", True),  # delivered again: the user may have missed it
    ("None + Pending Out/In", "None + Pending Out/In", True),
    ("To", "To + Pending In", True),
    ("To + Pending In", "To + Pending In", True),
    ("From", "From", False),
    ("From + Pending Out", "From + Pending Out", False),
    ("Both", "Both", False),
]
A3_2_SUBSCRIBED = [
    ("None", "None", False),
    ("None + Pending Out", "To", True),
    ("None + Pending In", "None + Pending In", False),
    ("None + Pending Out/In", "To + Pending In", True),
    ("To", "To", False),
    ("To + Pending In", "To + Pending In", False),
    ("From", "From", False),
    ("From + Pending Out", "Both", True),
    ("Both", "Both", False),
]
A3_3_UNSUBSCRIBE = [
    ("None", "None", False),
    ("None + Pending Out", "None + Pending Out", False),
    ("None + Pending In", "None", True),
    ("None + Pending Out/In", "None + Pending Out", True),
    ("To", "To", False),
    ("To + Pending In", "To", True),
    ("From", "None", True),
    ("From + Pending Out", "None + Pending Out", True),
    ("Both", "To", True),
]
A3_4_UNSUBSCRIBED = [
    ("None", "None", False),
    ("None + Pending Out", "None", True),
    ("None + Pending In", "None + Pending In", False),
    ("None + Pending Out/In", "None + Pending In", True),
    ("To", "None", True),
    ("To + Pending In", "None + Pending In", True),
    ("From", "From", False),
    ("From + Pending Out", "From", True),
    ("Both", "From", True),
]

OUTBOUND = [(SUB, *row) for row in A2_1_SUBSCRIBE] + [(SUBD, *row) for row in A2_2_SUBSCRIBED]
OUTBOUND += [(UNSUB, *row) for row in A2_3_UNSUBSCRIBE] + [(UNSUBD, *row) for row in A2_4_UNSUBSCRIBED]
INBOUND = [(SUB, *row) for row in A3_1_SUBSCRIBE] + [(SUBD, *row) for row in A3_2_SUBSCRIBED]
INBOUND += [(UNSUB, *row) for row in A3_3_UNSUBSCRIBE] + [(UNSUBD, *row) for row in A3_4_UNSUBSCRIBED]


def test_the_tables_cover_every_state_for_every_type() -> None:
    for table in (OUTBOUND, INBOUND):
        for type_ in (SUB, SUBD, UNSUB, UNSUBD):
            assert sorted(before for t, before, _, _ in table if t is type_) == sorted(STATES)


@pytest.mark.parametrize(("type_", "before", "after", "forward"), OUTBOUND)
def test_outbound_appendix_a2(type_: PresenceType, before: str, after: str, forward: bool) -> None:
    outcome = outbound(S(before), type_)
    assert outcome.after.label == after
    assert outcome.forward is forward
    assert outcome.reply is None  # the user's own stanzas are never answered by its server


@pytest.mark.parametrize(("type_", "before", "after", "forward"), INBOUND)
def test_inbound_appendix_a3(type_: PresenceType, before: str, after: str, forward: bool) -> None:
    outcome = inbound(S(before), type_)
    assert outcome.after.label == after
    assert outcome.forward is forward


@pytest.mark.parametrize("before", ["From", "From + Pending Out", "Both"])
def test_a_subscribe_from_a_subscriber_is_answered_subscribed(before: str) -> None:
    """RFC 6121 §3.1.3: the contact's server replies in the user's name and does not bother the user."""
    outcome = inbound(S(before), SUB)
    assert outcome.reply is PresenceType.SUBSCRIBED
    assert not outcome.changed


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("None + Approved", "From"),
        ("None + Pending Out + Approved", "From + Pending Out"),
        ("To + Approved", "Both"),
    ],
)
def test_pre_approval_answers_the_request_without_the_user(before: str, after: str) -> None:
    """RFC 6121 §3.4.2: a pre-approved request is approved by the server, which consumes the approval."""
    outcome = inbound(S(before), SUB)
    assert outcome.after.label == after
    assert not outcome.after.approved
    assert outcome.reply is PresenceType.SUBSCRIBED
    assert outcome.forward is False
    assert outcome.gained_from


def test_unsubscribed_cancels_a_pre_approval() -> None:
    """RFC 6121 §3.4.1: the user revokes a pre-approval with unsubscribed; nothing goes to the contact."""
    outcome = outbound(S("To + Approved"), UNSUBD)
    assert outcome.after.label == "To"
    assert outcome.forward is False


def test_approval_and_cancellation_of_from_are_reported() -> None:
    """§3.1.5 (send current presence to a new subscriber) and §3.2.2 (send unavailable to a lost one)."""
    approved = outbound(S("None + Pending In"), SUBD)
    assert approved.gained_from and not approved.lost_from
    cancelled = outbound(S("Both"), UNSUBD)
    assert cancelled.lost_from and not cancelled.gained_from
    unsubscribed_by_contact = inbound(S("From"), UNSUB)
    assert unsubscribed_by_contact.lost_from


def test_labels_round_trip_and_name_the_subscription_attribute() -> None:
    for label in STATES:
        assert S(label).label == label
    assert S("Both").subscription is Subscription.BOTH
    assert S("From + Pending Out").subscription is Subscription.FROM
    assert S("None + Pending Out/In").subscription is Subscription.NONE
    assert S("None").empty and not S("None + Approved").empty


def test_only_subscription_types_are_accepted() -> None:
    with pytest.raises(ValueError):
        outbound(SubscriptionState(), PresenceType.PROBE)
    with pytest.raises(ValueError):
        inbound(SubscriptionState(), PresenceType.AVAILABLE)


def test_outcome_changed() -> None:
    state = S("To")
    assert not Outcome(state, state, forward=False).changed
    assert Outcome(state, S("Both"), forward=True).changed
