"""XEP-0012 on the server: its uptime, and when an account was last online.

To the server's domain (§5): the seconds since the module loaded, i.e. since the host started. To an account
(§4): 0 when it has an available resource, else the seconds since its last logout with the status of its last
unavailable presence; only the owner and contacts subscribed to its presence may ask (else ``forbidden``).
Logouts are kept in the key-value store (store ``last``), so they survive a restart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable
from typing import ClassVar

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.disco.access import may_see_presence
from jaybird.ext.last.wire import LAST, NAME, LastActivity
from jaybird.jid import JID
from jaybird.server.api import IqRequest, IqScope, ServerModule, Session
from jaybird.server.events import SessionEnded, StanzaFromClient
from jaybird.stanza import IqType, Presence, PresenceType

STORE = "last"


class LastActivityModule(ServerModule):
    name: ClassVar[str] = "last"
    implements: ClassVar[tuple[str, ...]] = ("XEP-0012",)

    async def load(self) -> None:
        self.started = time.monotonic()
        self.feature(LAST)
        self.iq(IqType.GET, NAME, self._uptime, scope=IqScope.HOST)
        self.iq(IqType.GET, NAME, self._account, scope=IqScope.ACCOUNT)
        # an observer: it must run before the presence module, which handles (ends the chain for) presence
        self.on(StanzaFromClient, self._on_stanza, priority=100)
        self.on(SessionEnded, self._on_session_ended)

    def _uptime(self, request: IqRequest) -> LastActivity:
        return LastActivity(int(time.monotonic() - self.started))

    async def _account(self, request: IqRequest) -> LastActivity:
        if not await may_see_presence(self.host, request.to, request.sender):
            raise StanzaError(StanzaErrorCondition.FORBIDDEN)
        if any(session.available for session in self.host.sessions.of(request.to.bare)):
            return LastActivity(0)
        raw = await self.host.storage.kv.get(str(request.to.bare), STORE)
        if raw is None:
            raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, text="no logout recorded")
        record = json.loads(raw)
        seconds = max(0, int(time.time() - float(record["when"])))
        status = record.get("status")
        return LastActivity(seconds, status if isinstance(status, str) else None)

    def _on_stanza(self, event: StanzaFromClient) -> Awaitable[None] | None:
        # Every stanza a client sends passes here: only an unavailable broadcast costs a coroutine.
        stanza = event.stanza
        if isinstance(stanza, Presence) and stanza.type is PresenceType.UNAVAILABLE and stanza.to is None:
            event.session.data[LastActivityModule] = stanza.status
            return self._record(event.session.jid, stanza.status)
        return None

    async def _on_session_ended(self, event: SessionEnded) -> None:
        if any(other.available for other in self.host.sessions.of(event.session.jid.bare)):
            return  # the account is still online: no logout to record
        await self._record(event.session.jid, _status_of(event.session))

    async def _record(self, jid: JID, status: str | None) -> None:
        record = {"when": time.time(), "status": status}
        await self.host.storage.kv.set(str(jid.bare), STORE, json.dumps(record))


def _status_of(session: Session) -> str | None:
    status = session.data.get(LastActivityModule)
    return status if isinstance(status, str) else None
