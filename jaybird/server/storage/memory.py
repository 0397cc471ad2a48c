"""In-memory storage: every store in dicts, for tests and throwaway servers. Nothing survives ``close()``."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import UTC, datetime

from jaybird.server.storage.api import (
    Account,
    AccountExistsError,
    AccountNotFoundError,
    ArchiveItem,
    ArchiveItemNotFoundError,
    ArchivePage,
    ArchiveQuery,
    ArchiveRef,
    StoredCredentials,
    Value,
    check_credentials,
)
from jaybird.server.storage.archive_ids import ArchiveClock, id_lower_bound, id_upper_bound

__all__ = [
    "MemoryAccountStore",
    "MemoryArchiveStore",
    "MemoryKeyValueStore",
    "MemoryMapStore",
    "MemoryStorage",
]


class MemoryKeyValueStore:
    def __init__(self) -> None:
        self._data: dict[tuple[str, str], Value] = {}

    async def get(self, owner: str, store: str) -> Value | None:
        return self._data.get((owner, store))

    async def set(self, owner: str, store: str, value: Value) -> None:
        self._data[owner, store] = value

    async def delete(self, owner: str, store: str) -> bool:
        return self._data.pop((owner, store), None) is not None


class MemoryMapStore:
    def __init__(self) -> None:
        self._data: dict[tuple[str, str], dict[str, Value]] = {}

    async def get(self, owner: str, store: str, key: str) -> Value | None:
        return self._data.get((owner, store), {}).get(key)

    async def set(self, owner: str, store: str, key: str, value: Value) -> None:
        self._data.setdefault((owner, store), {})[key] = value

    async def delete(self, owner: str, store: str, key: str) -> bool:
        entries = self._data.get((owner, store))
        if entries is None or key not in entries:
            return False
        del entries[key]
        if not entries:
            del self._data[owner, store]
        return True

    async def items(self, owner: str, store: str) -> dict[str, Value]:
        return dict(self._data.get((owner, store), {}))

    async def clear(self, owner: str, store: str) -> int:
        return len(self._data.pop((owner, store), {}))


class MemoryArchiveStore:
    def __init__(self) -> None:
        self._clock = ArchiveClock()
        # Kept in id order: the clock hands ids out increasing, so appending keeps the list sorted.
        self._logs: dict[tuple[str, str], list[ArchiveItem]] = {}

    async def append(self, owner: str, store: str, value: Value, *, with_jid: str | None = None) -> ArchiveRef:
        item_id, when = self._clock.next()
        self._logs.setdefault((owner, store), []).append(ArchiveItem(item_id, when, with_jid, value))
        return ArchiveRef(item_id, when)

    async def query(self, owner: str, store: str, query: ArchiveQuery | None = None) -> ArchivePage:
        query = query or ArchiveQuery()
        log = self._logs.get((owner, store), [])
        ids = [item.id for item in log]
        for paging_id in (query.after_id, query.before_id):
            if paging_id is not None:
                at = bisect.bisect_left(ids, paging_id)
                if at == len(ids) or ids[at] != paging_id:
                    raise ArchiveItemNotFoundError(paging_id)
        lo = 0 if query.after_id is None else bisect.bisect_right(ids, query.after_id)
        hi = len(log) if query.before_id is None else bisect.bisect_left(ids, query.before_id)
        window = range(hi - 1, lo - 1, -1) if query.backwards else range(lo, hi)
        wanted = None if query.limit is None else query.limit + 1  # one more tells whether the page is the last
        matches = _Matcher(query)
        page: list[ArchiveItem] = []
        for index in window:
            if matches(log[index]):
                page.append(log[index])
                if len(page) == wanted:
                    break
        complete = wanted is None or len(page) < wanted
        if not complete:
            page.pop()
        if query.backwards:
            page.reverse()
        return ArchivePage(tuple(page), complete)

    async def count(self, owner: str, store: str, query: ArchiveQuery | None = None) -> int:
        matches = _Matcher(query or ArchiveQuery())
        return sum(1 for item in self._logs.get((owner, store), []) if matches(item))

    async def delete(self, owner: str, store: str, ids: Sequence[str]) -> int:
        log = self._logs.get((owner, store))
        if not log:
            return 0
        doomed = set(ids)
        kept = [item for item in log if item.id not in doomed]
        self._logs[owner, store] = kept
        return len(log) - len(kept)

    async def delete_all(self, owner: str, store: str) -> int:
        return len(self._logs.pop((owner, store), []))


class _Matcher:
    """The filter part of a query (``with_jid``, ``start``, ``end``) as a predicate on items."""

    __slots__ = ("_full", "_high", "_low", "_with")

    def __init__(self, query: ArchiveQuery) -> None:
        self._with = query.with_jid
        self._full = query.with_jid is not None and "/" in query.with_jid
        self._low = None if query.start is None else id_lower_bound(query.start)
        self._high = None if query.end is None else id_upper_bound(query.end)

    def __call__(self, item: ArchiveItem) -> bool:
        if self._low is not None and item.id < self._low:
            return False
        if self._high is not None and item.id >= self._high:
            return False
        if self._with is None:
            return True
        if item.with_jid is None:
            return False
        if self._full:
            return item.with_jid == self._with
        return item.with_jid.split("/", 1)[0] == self._with


class MemoryAccountStore:
    def __init__(self) -> None:
        self._accounts: dict[tuple[str, str], Account] = {}

    async def create(self, username: str, domain: str, credentials: Sequence[StoredCredentials]) -> Account:
        if (username, domain) in self._accounts:
            raise AccountExistsError(username, domain)
        account = Account(username, domain, datetime.now(UTC), check_credentials(credentials))
        self._accounts[username, domain] = account
        return account

    async def get(self, username: str, domain: str) -> Account | None:
        return self._accounts.get((username, domain))

    async def set_credentials(self, username: str, domain: str, credentials: Sequence[StoredCredentials]) -> None:
        account = self._accounts.get((username, domain))
        if account is None:
            raise AccountNotFoundError(username, domain)
        self._accounts[username, domain] = Account(username, domain, account.created, check_credentials(credentials))

    async def delete(self, username: str, domain: str) -> bool:
        return self._accounts.pop((username, domain), None) is not None

    async def usernames(self, domain: str) -> list[str]:
        return sorted(user for user, dom in self._accounts if dom == domain)


class MemoryStorage:
    def __init__(self) -> None:
        self.kv = MemoryKeyValueStore()
        self.map = MemoryMapStore()
        self.archive = MemoryArchiveStore()
        self.accounts = MemoryAccountStore()

    async def close(self) -> None:
        pass
