"""How a roster is kept: one map-store entry per contact, and a version counter (RFC 6121 §2.6).

Owner is the account's bare JID, store ``roster``, key the contact's bare JID, value a JSON object. The version
is a counter in the key-value store ``roster-version``, raised on every change, so ``ver`` strings are opaque
to clients and compare by equality only (XEP-0237 §4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from jaybird.ext.presence.subscription import SubscriptionState
from jaybird.ext.roster.wire import RosterItem
from jaybird.jid import JID
from jaybird.server.storage import Storage

__all__ = ["ITEMS_STORE", "VERSION_STORE", "RosterEntry", "RosterStore"]

ITEMS_STORE = "roster"
VERSION_STORE = "roster-version"


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """What the server knows about one contact of one account.

    ``listed`` is False for an entry kept only for a pending inbound request: RFC 6121 §3.1.3 forbids adding
    the requester to the roster before the owner approves, yet the request must outlive the session
    (redelivered at the next login), so it is stored here, hidden from roster gets and pushes.
    """

    jid: JID
    name: str | None = None
    groups: tuple[str, ...] = ()
    state: SubscriptionState = field(default_factory=SubscriptionState)
    listed: bool = True
    #: The ``<status/>`` of a pending inbound request, delivered again with it.
    request_status: str | None = None

    @property
    def item(self) -> RosterItem:
        """The item as a client sees it (RFC 6121 §2.1.2)."""
        return RosterItem(
            jid=self.jid,
            name=self.name,
            groups=self.groups,
            subscription=self.state.subscription,
            ask=self.state.pending_out,
            approved=self.state.approved,
        )

    @property
    def disposable(self) -> bool:
        """Neither on the roster nor holding any state: nothing to keep."""
        return not self.listed and self.state.empty

    def with_state(self, state: SubscriptionState) -> RosterEntry:
        return replace(self, state=state, request_status=self.request_status if state.pending_in else None)

    def encode(self) -> str:
        s = self.state
        flags = [n for n, on in (("to", s.to), ("from", s.from_), ("out", s.pending_out),
                                 ("in", s.pending_in), ("approved", s.approved)) if on]  # fmt: skip
        record: dict[str, object] = {"flags": flags, "listed": self.listed, "groups": list(self.groups)}
        if self.name is not None:
            record["name"] = self.name
        if self.request_status is not None:
            record["status"] = self.request_status
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def decode(cls, jid: JID, value: str | bytes) -> RosterEntry:
        record = json.loads(value)
        flags = set(record.get("flags", ()))
        state = SubscriptionState(
            to="to" in flags,
            from_="from" in flags,
            pending_out="out" in flags,
            pending_in="in" in flags,
            approved="approved" in flags,
        )
        name = record.get("name")
        status = record.get("status")
        return cls(
            jid=jid,
            name=name if isinstance(name, str) else None,
            groups=tuple(str(g) for g in record.get("groups", ())),
            state=state,
            listed=bool(record.get("listed", True)),
            request_status=status if isinstance(status, str) else None,
        )


class RosterStore:
    """Typed access to the stored rosters of one host."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def get(self, owner: JID, contact: JID) -> RosterEntry | None:
        value = await self._storage.map.get(str(owner.bare), ITEMS_STORE, str(contact.bare))
        return None if value is None else RosterEntry.decode(contact.bare, value)

    async def entries(self, owner: JID) -> list[RosterEntry]:
        stored = await self._storage.map.items(str(owner.bare), ITEMS_STORE)
        return [RosterEntry.decode(JID(key), value) for key, value in sorted(stored.items())]

    async def put(self, owner: JID, entry: RosterEntry) -> None:
        await self._storage.map.set(str(owner.bare), ITEMS_STORE, str(entry.jid), entry.encode())

    async def delete(self, owner: JID, contact: JID) -> bool:
        return await self._storage.map.delete(str(owner.bare), ITEMS_STORE, str(contact.bare))

    async def version(self, owner: JID) -> int:
        value = await self._storage.kv.get(str(owner.bare), VERSION_STORE)
        if value is None:
            return 0
        try:
            return int(value)
        except ValueError:
            return 0

    async def bump(self, owner: JID) -> int:
        """Raise the version (callers hold the owner's roster lock, so read-then-write does not race)."""
        version = await self.version(owner) + 1
        await self._storage.kv.set(str(owner.bare), VERSION_STORE, str(version))
        return version
