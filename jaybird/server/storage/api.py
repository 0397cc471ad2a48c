"""The storage API: three kinds of store, an account table, and the values they hold.

Every store is addressed by an *owner* (a bare JID string: ``juliet@capulet.lit`` for a user, ``capulet.lit``
for host-wide data, a room JID for a MUC) and a *store* name chosen by the module that uses it (``vcard``,
``roster``, ``offline``, ``archive``). Owners and store names are compared byte for byte: callers pass
prepared (PRECIS) JIDs. Values are ``bytes`` or ``str`` and come back as the type they went in as.

* :class:`KeyValueStore`: one document per owner and store (vCard, private XML, roster version).
* :class:`MapStore`: per owner and store, key -> value (roster items keyed by contact JID, blocklist).
* :class:`ArchiveStore`: per owner and store, an append-only log queried the way XEP-0313 (MAM) and
  XEP-0059 (RSM) page it (offline messages, message archives).
* :class:`AccountStore`: accounts with their SCRAM credentials; a password is never stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from jaybird.errors import JaybirdError

__all__ = [
    "Account",
    "AccountExistsError",
    "AccountNotFoundError",
    "AccountStore",
    "ArchiveItem",
    "ArchiveItemNotFoundError",
    "ArchivePage",
    "ArchiveQuery",
    "ArchiveRef",
    "ArchiveStore",
    "KeyValueStore",
    "MapStore",
    "Storage",
    "StorageError",
    "StoredCredentials",
    "Value",
]

Value = bytes | str


class StorageError(JaybirdError):
    """Base class of the errors a store raises on purpose."""


class AccountExistsError(StorageError):
    """An account with this username already exists on this domain."""

    def __init__(self, username: str, domain: str) -> None:
        super().__init__(f"account {username}@{domain} already exists")
        self.username = username
        self.domain = domain


class AccountNotFoundError(StorageError):
    """No account with this username exists on this domain."""

    def __init__(self, username: str, domain: str) -> None:
        super().__init__(f"account {username}@{domain} does not exist")
        self.username = username
        self.domain = domain


class ArchiveItemNotFoundError(StorageError):
    """A paging id is not in the archive (XEP-0313 answers such a query with ``item-not-found``)."""

    def __init__(self, item_id: str) -> None:
        super().__init__(f"archive item {item_id!r} not found")
        self.item_id = item_id


@dataclass(frozen=True, slots=True)
class StoredCredentials:
    """The SCRAM verifier of one mechanism (RFC 5802 §3): what the server keeps instead of a password."""

    mechanism: str  # "SCRAM-SHA-1", "SCRAM-SHA-256", ...
    salt: bytes
    iterations: int
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.mechanism:
            raise ValueError("mechanism must not be empty")
        if self.iterations < 1:
            raise ValueError("iterations must be positive")


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    domain: str
    created: datetime  # UTC
    credentials: tuple[StoredCredentials, ...]  # one per mechanism, sorted by mechanism name

    def credential(self, mechanism: str) -> StoredCredentials | None:
        for cred in self.credentials:
            if cred.mechanism == mechanism:
                return cred
        return None


@dataclass(frozen=True, slots=True)
class ArchiveRef:
    """What an append returns: the item's id (unique, sorts in archive order) and its UTC timestamp."""

    id: str
    when: datetime


@dataclass(frozen=True, slots=True)
class ArchiveItem:
    id: str
    when: datetime  # UTC
    with_jid: str | None
    value: Value


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveQuery:
    """A filter (``with_jid``, ``start``, ``end``) and a page (``after_id``, ``before_id``, ``limit``).

    ``with_jid`` matches as XEP-0313 §4.1.1 says: a bare JID matches every full JID of that bare JID, a full
    JID only itself. ``start`` and ``end`` are inclusive. Paging goes backwards (newest first, as RSM
    ``<before/>`` does) when ``before_id`` is set or ``last_page`` is true; items always come back oldest
    first.
    """

    with_jid: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    after_id: str | None = None
    before_id: str | None = None
    limit: int | None = None
    last_page: bool = False

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must not be negative")
        for moment in (self.start, self.end):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("start and end must be timezone-aware")

    @property
    def backwards(self) -> bool:
        return self.before_id is not None or self.last_page


@dataclass(frozen=True, slots=True)
class ArchivePage:
    """One page, oldest first; ``complete`` as in XEP-0313: no more items lie in the paging direction."""

    items: tuple[ArchiveItem, ...]
    complete: bool

    @property
    def first_id(self) -> str | None:
        return self.items[0].id if self.items else None

    @property
    def last_id(self) -> str | None:
        return self.items[-1].id if self.items else None


class KeyValueStore(Protocol):
    async def get(self, owner: str, store: str) -> Value | None: ...
    async def set(self, owner: str, store: str, value: Value) -> None: ...
    async def delete(self, owner: str, store: str) -> bool: ...


class MapStore(Protocol):
    async def get(self, owner: str, store: str, key: str) -> Value | None: ...
    async def set(self, owner: str, store: str, key: str, value: Value) -> None: ...
    async def delete(self, owner: str, store: str, key: str) -> bool: ...
    async def items(self, owner: str, store: str) -> dict[str, Value]: ...
    async def clear(self, owner: str, store: str) -> int: ...


class ArchiveStore(Protocol):
    async def append(self, owner: str, store: str, value: Value, *, with_jid: str | None = None) -> ArchiveRef:
        """Add an item at the end; its id and timestamp are taken before the first await, in call order."""
        ...

    async def query(self, owner: str, store: str, query: ArchiveQuery | None = None) -> ArchivePage:
        """Raises :class:`ArchiveItemNotFoundError` when a paging id is not in this archive."""
        ...

    async def count(self, owner: str, store: str, query: ArchiveQuery | None = None) -> int:
        """How many items match the filter of ``query``; its paging fields are ignored."""
        ...

    async def delete(self, owner: str, store: str, ids: Sequence[str]) -> int: ...
    async def delete_all(self, owner: str, store: str) -> int: ...


class AccountStore(Protocol):
    async def create(self, username: str, domain: str, credentials: Sequence[StoredCredentials]) -> Account:
        """Raises :class:`AccountExistsError` when the account exists."""
        ...

    async def get(self, username: str, domain: str) -> Account | None: ...

    async def set_credentials(self, username: str, domain: str, credentials: Sequence[StoredCredentials]) -> None:
        """Replace every stored mechanism (a password change); raises :class:`AccountNotFoundError`."""
        ...

    async def delete(self, username: str, domain: str) -> bool: ...
    async def usernames(self, domain: str) -> list[str]:
        """The usernames of ``domain``, sorted."""
        ...


class Storage(Protocol):
    @property
    def kv(self) -> KeyValueStore: ...
    @property
    def map(self) -> MapStore: ...
    @property
    def archive(self) -> ArchiveStore: ...
    @property
    def accounts(self) -> AccountStore: ...

    async def close(self) -> None: ...


def check_credentials(credentials: Sequence[StoredCredentials]) -> tuple[StoredCredentials, ...]:
    """Sorted by mechanism; one entry per mechanism (a second would silently shadow the first)."""
    ordered = tuple(sorted(credentials, key=lambda c: c.mechanism))
    names = [c.mechanism for c in ordered]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate mechanism in {names}")
    return ordered
