"""Who may learn about an account: its owner, and contacts it shares presence with.

XEP-0030 §2 (the server answering for an account) and XEP-0012 §4 (last activity) both tie access to a
presence subscription: the requester must be allowed to see the account's presence (subscription ``from`` or
``both`` in the account's roster, RFC 6121 §3.1). Without the roster module loaded only the owner is allowed.
"""

from __future__ import annotations

from jaybird.ext.roster.server import RosterModule
from jaybird.ext.roster.wire import Subscription
from jaybird.jid import JID
from jaybird.server.api import Host

_SEES_PRESENCE = frozenset({Subscription.FROM, Subscription.BOTH})


async def may_see_presence(host: Host, owner: JID, requester: JID) -> bool:
    """True when ``requester`` is ``owner``'s account or a contact subscribed to its presence."""
    if requester.bare == owner.bare:
        return True
    roster = host.module(RosterModule)
    if roster is None:
        return False
    item = await roster.get_item(owner.bare, requester.bare)
    return item is not None and item.subscription in _SEES_PRESENCE
