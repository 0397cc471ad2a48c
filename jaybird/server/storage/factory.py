"""``open_storage(url)``: the storage a URL names, its schema migrated to the newest revision.

``memory://`` is the in-memory storage; ``sqlite:///path`` (the standard library's driver, on the event loop's
thread), ``sqlite+aiosqlite:///path`` (a driver thread) and ``postgresql+asyncpg://...`` are SQL
(``postgresql://`` is taken to mean asyncpg).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, make_url

from jaybird.server.storage.api import Storage
from jaybird.server.storage.memory import MemoryStorage
from jaybird.server.storage.sql import INLINE_SQLITE, SQLStorage

__all__ = ["MIGRATIONS", "open_storage", "sql_url"]

MIGRATIONS = Path(__file__).with_name("migrations")
_DRIVERS = {
    "sqlite": INLINE_SQLITE,
    INLINE_SQLITE: INLINE_SQLITE,
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


async def open_storage(url: str) -> Storage:
    if url in ("memory:", "memory://"):
        return MemoryStorage()
    storage = SQLStorage(sql_url(url))
    try:
        await storage.run_sync(_upgrade)
    except BaseException:
        await storage.close()
        raise
    return storage


def sql_url(url: str) -> str:
    """The SQLAlchemy URL with its driver; ValueError for anything this storage does not run on."""
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(f"unsupported storage URL scheme {parsed.drivername!r}; use one of {sorted(_DRIVERS)}")
    if driver.startswith("sqlite") and parsed.database in (None, "", ":memory:"):
        # Each pooled connection would see its own empty database.
        raise ValueError("an SQLite storage needs a file path; use memory:// for a throwaway storage")
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
