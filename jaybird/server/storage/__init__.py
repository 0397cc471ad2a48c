"""Server storage: key-value, map and archive stores and accounts, in memory, SQLite or PostgreSQL."""

from jaybird.server.storage.api import (
    Account,
    AccountExistsError,
    AccountNotFoundError,
    AccountStore,
    ArchiveItem,
    ArchiveItemNotFoundError,
    ArchivePage,
    ArchiveQuery,
    ArchiveRef,
    ArchiveStore,
    KeyValueStore,
    MapStore,
    Storage,
    StorageError,
    StoredCredentials,
    Value,
)
from jaybird.server.storage.factory import open_storage

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
    "open_storage",
]
