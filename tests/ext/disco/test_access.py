"""Access to an account's info follows its presence subscriptions (XEP-0030 §2, XEP-0012 §4, RFC 6121 §3.1)."""

from __future__ import annotations

import pytest

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.disco.access import may_see_presence
from jaybird.ext.disco.server import DiscoModule
from jaybird.ext.disco.wire import DiscoInfo
from jaybird.ext.last.server import LastActivityModule
from jaybird.ext.last.wire import LastActivity
from jaybird.ext.presence.subscription import SubscriptionState
from jaybird.ext.roster.server import RosterModule
from jaybird.ext.roster.store import RosterEntry
from jaybird.jid import JID
from jaybird.server.api import IqScope
from tests.ext.disco.harness import make_harness, unload

JULIET = JID("juliet@example.com")


@pytest.mark.parametrize(
    ("state", "allowed"),
    [
        (SubscriptionState(from_=True), True),
        (SubscriptionState(to=True, from_=True), True),
        (SubscriptionState(to=True), False),  # juliet sees romeo, not the other way round
        (SubscriptionState(pending_in=True), False),
        (None, False),
    ],
)
async def test_only_contacts_subscribed_to_the_owner_may_see(state: SubscriptionState | None, allowed: bool) -> None:
    harness, modules = await make_harness([RosterModule, DiscoModule, LastActivityModule])
    roster = modules[0]
    assert isinstance(roster, RosterModule)
    romeo = JID("romeo@example.com")
    if state is not None:
        await roster.update(JULIET, RosterEntry(jid=romeo, state=state))
    assert await may_see_presence(harness.host, JULIET, JID("romeo@example.com/orchard")) is allowed
    assert await may_see_presence(harness.host, JULIET, JID("juliet@example.com/phone")) is True

    harness.session("juliet@example.com/balcony", available=True)
    for payload, scope_error in ((DiscoInfo(), "service-unavailable"), (LastActivity(), "forbidden")):
        request = harness.get(payload.to_element(), sender="romeo@example.com/orchard", to=str(JULIET))
        if allowed:
            assert await harness.ask(request, IqScope.ACCOUNT) is not None
        else:
            with pytest.raises(StanzaError) as caught:
                await harness.ask(request, IqScope.ACCOUNT)
            assert caught.value.condition is StanzaErrorCondition(scope_error)
    await unload(modules)
