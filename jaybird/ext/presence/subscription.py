"""The subscription state machine of RFC 6121 Appendix A, as pure functions of (state, stanza type).

The state of one roster item is five flags seen from the roster's owner: whether the owner receives the
contact's presence (``to``), whether the contact receives the owner's (``from_``), the two pending requests and
the owner's pre-approval (§3.4). Appendix A names the combinations ("None + Pending Out", "From + Pending Out",
...); :attr:`SubscriptionState.label` gives those names so tests read like the RFC's tables.

``outbound`` applies a subscription stanza the owner sends (Appendix A.2); ``inbound`` one the owner receives
(Appendix A.3). Each returns an :class:`Outcome`: the new state, whether the stanza goes on (routed to the
contact, or delivered to the owner's available resources), and the answer the owner's server sends in the
owner's name, if any. No I/O here: the presence module turns outcomes into stanzas and roster pushes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from jaybird.ext.roster.wire import Subscription
from jaybird.stanza import PresenceType

__all__ = ["SUBSCRIPTION_TYPES", "Outcome", "SubscriptionState", "inbound", "outbound"]

SUBSCRIPTION_TYPES = frozenset(
    {PresenceType.SUBSCRIBE, PresenceType.SUBSCRIBED, PresenceType.UNSUBSCRIBE, PresenceType.UNSUBSCRIBED}
)


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    to: bool = False
    from_: bool = False
    #: The owner asked for the contact's presence and has no answer yet (``ask='subscribe'``).
    pending_out: bool = False
    #: The contact asked for the owner's presence and the owner has not answered yet.
    pending_in: bool = False
    #: The owner approved a subscription the contact has not asked for yet (RFC 6121 §3.4).
    approved: bool = False

    @property
    def subscription(self) -> Subscription:
        return Subscription.of(self.to, self.from_)

    @property
    def empty(self) -> bool:
        """No subscription, nothing pending, nothing approved: "None" in Appendix A."""
        return self == SubscriptionState()

    @property
    def label(self) -> str:
        """The state's name in RFC 6121 Appendix A (with "+ Approved" for a pre-approval)."""
        base = {Subscription.NONE: "None", Subscription.TO: "To", Subscription.FROM: "From"}.get(
            self.subscription, "Both"
        )
        pending = [side for side, on in (("Out", self.pending_out), ("In", self.pending_in)) if on]
        if pending:
            base += " + Pending " + "/".join(pending)
        if self.approved:
            base += " + Approved"
        return base

    @classmethod
    def parse(cls, label: str) -> SubscriptionState:
        """The inverse of :attr:`label` (for tables written with the RFC's names)."""
        words = label.replace("+", " ").replace("/", " ").split()
        base = words[0]
        return cls(
            to=base in ("To", "Both"),
            from_=base in ("From", "Both"),
            pending_out="Out" in words,
            pending_in="In" in words,
            approved="Approved" in words,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    before: SubscriptionState
    after: SubscriptionState
    #: Outbound: route the stanza to the contact. Inbound: deliver it to the owner's available resources.
    forward: bool
    #: Inbound only: the type of the presence the owner's server sends back to the contact in the owner's name.
    reply: PresenceType | None = None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    @property
    def gained_from(self) -> bool:
        """The contact now receives the owner's presence: send it the current presence (RFC 6121 §3.1.5)."""
        return self.after.from_ and not self.before.from_

    @property
    def lost_from(self) -> bool:
        """The contact no longer receives the owner's presence: tell it the owner is unavailable (§3.2.2)."""
        return self.before.from_ and not self.after.from_


def _check(type_: PresenceType) -> None:
    if type_ not in SUBSCRIPTION_TYPES:
        raise ValueError(f"{type_} is not a subscription type (RFC 6121 §3)")


def outbound(state: SubscriptionState, type_: PresenceType) -> Outcome:
    """The owner sends ``type_`` to the contact (RFC 6121 Appendix A.2)."""
    _check(type_)
    if type_ is PresenceType.SUBSCRIBE:
        # A.2.1: always routed (the contact's server answers for an existing subscription itself).
        after = state if state.to else replace(state, pending_out=True)
        return Outcome(state, after, forward=True)
    if type_ is PresenceType.UNSUBSCRIBE:
        # A.2.3: always routed, so a contact whose server lost our state still learns of it.
        return Outcome(state, replace(state, to=False, pending_out=False), forward=True)
    if type_ is PresenceType.SUBSCRIBED:
        if state.pending_in:  # A.2.2: approving a pending request
            return Outcome(state, replace(state, from_=True, pending_in=False, approved=False), forward=True)
        if state.from_:  # A.2.2 "no state change": nothing to approve, nothing routed
            return Outcome(state, state, forward=False)
        # §3.4: a subscribed with no request to answer is a pre-approval; it stays on the owner's server.
        return Outcome(state, replace(state, approved=True), forward=False)
    # UNSUBSCRIBED, A.2.4: cancels (or denies) the contact's subscription, and any pre-approval (§3.4.1).
    if state.from_ or state.pending_in:
        return Outcome(state, replace(state, from_=False, pending_in=False, approved=False), forward=True)
    return Outcome(state, replace(state, approved=False), forward=False)


def inbound(state: SubscriptionState, type_: PresenceType) -> Outcome:
    """The contact sends ``type_`` to the owner (RFC 6121 Appendix A.3)."""
    _check(type_)
    if type_ is PresenceType.SUBSCRIBE:
        if state.from_:  # §3.1.3: already subscribed, the server answers for the owner
            return Outcome(state, state, forward=False, reply=PresenceType.SUBSCRIBED)
        if state.approved:  # §3.4: pre-approved, answered without asking the owner
            after = replace(state, from_=True, pending_in=False, approved=False)
            return Outcome(state, after, forward=False, reply=PresenceType.SUBSCRIBED)
        # A.3.1: pending; delivered again if the contact repeats it (the owner may have missed it).
        return Outcome(state, replace(state, pending_in=True), forward=True)
    if type_ is PresenceType.SUBSCRIBED:
        if state.pending_out:  # A.3.2: the answer to the owner's request
            return Outcome(state, replace(state, to=True, pending_out=False), forward=True)
        return Outcome(state, state, forward=False)  # §3.1.6: unsolicited, ignored
    if type_ is PresenceType.UNSUBSCRIBE:
        if state.from_ or state.pending_in:  # A.3.3
            return Outcome(state, replace(state, from_=False, pending_in=False), forward=True)
        return Outcome(state, state, forward=False)
    # UNSUBSCRIBED, A.3.4: the contact denied or cancelled the owner's subscription.
    if state.to or state.pending_out:
        return Outcome(state, replace(state, to=False, pending_out=False), forward=True)
    return Outcome(state, state, forward=False)
