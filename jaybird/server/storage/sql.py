"""SQL storage on SQLAlchemy Core (async): SQLite through aiosqlite, PostgreSQL through asyncpg.

Per-call cost is kept low: statements are built once where their shape is fixed (SQLAlchemy caches the
compiled form, asyncpg the prepared statement), and single-statement calls run on an AUTOCOMMIT connection
(one round trip, no BEGIN/COMMIT); only calls of several statements open a transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Executable, Table, bindparam, delete, event, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

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
from jaybird.server.storage.archive_ids import (
    ArchiveClock,
    from_micros,
    id_lower_bound,
    id_upper_bound,
    to_micros,
    when_of,
)
from jaybird.server.storage.schema import account_credentials, accounts, archive, keyvalue, map_entries

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "SQLStorage"]

SQLITE_BUSY_TIMEOUT_MS = 5000


def _create_engine(url: str, **options: Any) -> AsyncEngine:
    engine = create_async_engine(url, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; the busy timeout makes another process's writer a wait, not an
    # error; NORMAL sync is durable across a crash of the server in WAL mode (only power loss may lose the
    # last commits) at a fraction of FULL's fsyncs.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _encode(value: Value) -> tuple[bool, bytes]:
    if isinstance(value, str):
        return True, value.encode()
    return False, bytes(value)


def _decode(is_text: Any, raw: Any) -> Value:
    data = bytes(raw)
    return data.decode() if is_text else data


class _Database:
    """Two engines on one database: one for single autocommit statements, one for transactions.

    Two pools rather than one pool switching isolation levels: a switch, and the rollbacks done when a
    connection is closed and returned, each cost a round trip (a thread hop for aiosqlite) per call, and an
    autocommit connection has nothing to roll back.
    """

    def __init__(self, url: str) -> None:
        self.engine = _create_engine(url, pool_size=2, max_overflow=8)
        self._autocommit = _create_engine(
            url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None, skip_autocommit_rollback=True
        )
        self.dialect = self.engine.dialect.name
        # SQLite has one writer per file: queueing our own writers here is cheaper than the busy handler's
        # sleep-and-retry; the busy timeout still covers other processes.
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None

    def _guard(self, write: bool) -> contextlib.AbstractAsyncContextManager[Any]:
        if write and self._write_lock is not None:
            return self._write_lock
        return contextlib.nullcontext()

    def connect(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads, in autocommit mode."""
        return self._autocommit.connect()

    async def run(
        self,
        statement: Executable,
        params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        write: bool = False,
    ) -> CursorResult[Any]:
        async with self._guard(write), self._autocommit.connect() as conn:
            return await conn.execute(statement, params)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self._guard(True), self.engine.begin() as conn:
            yield conn

    async def close(self) -> None:
        await self._autocommit.dispose()
        await self.engine.dispose()

    def upsert(self, table: Table, keys: Sequence[str], updates: Sequence[str]) -> Executable:
        if self.dialect == "postgresql":
            pg = pg_insert(table)
            return pg.on_conflict_do_update(index_elements=keys, set_={c: pg.excluded[c] for c in updates})
        lite = sqlite_insert(table)
        return lite.on_conflict_do_update(index_elements=keys, set_={c: lite.excluded[c] for c in updates})


class SQLKeyValueStore:
    def __init__(self, db: _Database) -> None:
        self._db = db
        where = (keyvalue.c.owner == bindparam("owner"), keyvalue.c.store == bindparam("store"))
        self._get = select(keyvalue.c.is_text, keyvalue.c.value).where(*where)
        self._set = db.upsert(keyvalue, ["owner", "store"], ["is_text", "value"])
        self._delete = delete(keyvalue).where(*where)

    async def get(self, owner: str, store: str) -> Value | None:
        row = (await self._db.run(self._get, {"owner": owner, "store": store})).first()
        return None if row is None else _decode(row.is_text, row.value)

    async def set(self, owner: str, store: str, value: Value) -> None:
        is_text, data = _encode(value)
        params = {"owner": owner, "store": store, "is_text": is_text, "value": data}
        await self._db.run(self._set, params, write=True)

    async def delete(self, owner: str, store: str) -> bool:
        result = await self._db.run(self._delete, {"owner": owner, "store": store}, write=True)
        return result.rowcount > 0


class SQLMapStore:
    def __init__(self, db: _Database) -> None:
        self._db = db
        c = map_entries.c
        of_store = (c.owner == bindparam("owner"), c.store == bindparam("store"))
        self._get = select(c.is_text, c.value).where(*of_store, c.key == bindparam("key"))
        self._set = db.upsert(map_entries, ["owner", "store", "key"], ["is_text", "value"])
        self._delete = delete(map_entries).where(*of_store, c.key == bindparam("key"))
        self._items = select(c.key, c.is_text, c.value).where(*of_store)
        self._clear = delete(map_entries).where(*of_store)

    async def get(self, owner: str, store: str, key: str) -> Value | None:
        row = (await self._db.run(self._get, {"owner": owner, "store": store, "key": key})).first()
        return None if row is None else _decode(row.is_text, row.value)

    async def set(self, owner: str, store: str, key: str, value: Value) -> None:
        is_text, data = _encode(value)
        params = {"owner": owner, "store": store, "key": key, "is_text": is_text, "value": data}
        await self._db.run(self._set, params, write=True)

    async def delete(self, owner: str, store: str, key: str) -> bool:
        params = {"owner": owner, "store": store, "key": key}
        return (await self._db.run(self._delete, params, write=True)).rowcount > 0

    async def items(self, owner: str, store: str) -> dict[str, Value]:
        result = await self._db.run(self._items, {"owner": owner, "store": store})
        return {str(row.key): _decode(row.is_text, row.value) for row in result}

    async def clear(self, owner: str, store: str) -> int:
        return (await self._db.run(self._clear, {"owner": owner, "store": store}, write=True)).rowcount


class SQLArchiveStore:
    def __init__(self, db: _Database) -> None:
        self._db = db
        self._clock = ArchiveClock()
        self._append = insert(archive)

    async def append(self, owner: str, store: str, value: Value, *, with_jid: str | None = None) -> ArchiveRef:
        item_id, when = self._clock.next()  # before any await: ids follow call order
        is_text, data = _encode(value)
        params = {
            "owner": owner,
            "store": store,
            "id": item_id,
            "with_bare": None if with_jid is None else with_jid.split("/", 1)[0],
            "with_full": with_jid,
            "is_text": is_text,
            "value": data,
        }
        await self._db.run(self._append, params, write=True)
        return ArchiveRef(item_id, when)

    async def query(self, owner: str, store: str, query: ArchiveQuery | None = None) -> ArchivePage:
        query = query or ArchiveQuery()
        c = archive.c
        conditions = _filter(owner, store, query)
        paging_ids = [i for i in (query.after_id, query.before_id) if i is not None]
        if query.after_id is not None:
            conditions.append(c.id > query.after_id)
        if query.before_id is not None:
            conditions.append(c.id < query.before_id)
        statement = (
            select(c.id, c.with_full, c.is_text, c.value)
            .where(*conditions)
            .order_by(c.id.desc() if query.backwards else c.id.asc())
        )
        if query.limit is not None:
            statement = statement.limit(query.limit + 1)  # one more tells whether the page is the last
        async with self._db.connect() as conn:
            if paging_ids:
                known = await conn.execute(select(c.id).where(c.owner == owner, c.store == store, c.id.in_(paging_ids)))
                missing = set(paging_ids) - {str(row.id) for row in known}
                if missing:
                    raise ArchiveItemNotFoundError(min(missing))
            rows = list(await conn.execute(statement))
        complete = query.limit is None or len(rows) <= query.limit
        if not complete:
            rows = rows[: query.limit]
        if query.backwards:
            rows.reverse()
        items = tuple(
            ArchiveItem(str(r.id), when_of(str(r.id)), r.with_full, _decode(r.is_text, r.value)) for r in rows
        )
        return ArchivePage(items, complete)

    async def count(self, owner: str, store: str, query: ArchiveQuery | None = None) -> int:
        statement = select(func.count()).select_from(archive).where(*_filter(owner, store, query or ArchiveQuery()))
        return int((await self._db.run(statement)).scalar_one())

    async def delete(self, owner: str, store: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        c = archive.c
        statement = delete(archive).where(c.owner == owner, c.store == store, c.id.in_(list(ids)))
        return (await self._db.run(statement, write=True)).rowcount

    async def delete_all(self, owner: str, store: str) -> int:
        statement = delete(archive).where(archive.c.owner == owner, archive.c.store == store)
        return (await self._db.run(statement, write=True)).rowcount


def _filter(owner: str, store: str, query: ArchiveQuery) -> list[ColumnElement[bool]]:
    c = archive.c
    conditions = [c.owner == owner, c.store == store]
    if query.with_jid is not None:
        bare, slash, _resource = query.with_jid.partition("/")
        conditions.append(c.with_bare == bare)
        if slash:
            conditions.append(c.with_full == query.with_jid)
    if query.start is not None:
        conditions.append(c.id >= id_lower_bound(query.start))
    if query.end is not None:
        conditions.append(c.id < id_upper_bound(query.end))
    return conditions


class SQLAccountStore:
    def __init__(self, db: _Database) -> None:
        self._db = db
        a, k = accounts.c, account_credentials.c
        self._get = (
            select(a.created_us, k.mechanism, k.salt, k.iterations, k.stored_key, k.server_key)
            .select_from(accounts.outerjoin(account_credentials, (k.domain == a.domain) & (k.username == a.username)))
            .where(a.domain == bindparam("domain"), a.username == bindparam("username"))
            .order_by(k.mechanism)
        )
        self._usernames = select(a.username).where(a.domain == bindparam("domain")).order_by(a.username)
        self._exists = select(a.username).where(a.domain == bindparam("domain"), a.username == bindparam("username"))
        self._insert_account = insert(accounts)
        self._insert_credentials = insert(account_credentials)
        self._delete_credentials = delete(account_credentials).where(
            k.domain == bindparam("domain"), k.username == bindparam("username")
        )
        self._delete_account = delete(accounts).where(
            a.domain == bindparam("domain"), a.username == bindparam("username")
        )

    async def create(self, username: str, domain: str, credentials: Sequence[StoredCredentials]) -> Account:
        creds = check_credentials(credentials)
        created = datetime.now(UTC)
        try:
            async with self._db.transaction() as conn:
                await conn.execute(
                    self._insert_account,
                    {"domain": domain, "username": username, "created_us": to_micros(created)},
                )
                await self._insert(conn, username, domain, creds)
        except IntegrityError as exc:
            raise AccountExistsError(username, domain) from exc
        return Account(username, domain, created, creds)

    async def get(self, username: str, domain: str) -> Account | None:
        rows = list(await self._db.run(self._get, {"domain": domain, "username": username}))
        if not rows:
            return None
        creds = tuple(
            StoredCredentials(
                str(r.mechanism), bytes(r.salt), int(r.iterations), bytes(r.stored_key), bytes(r.server_key)
            )
            for r in rows
            if r.mechanism is not None  # the outer join's row for an account without credentials
        )
        return Account(username, domain, from_micros(int(rows[0].created_us)), creds)

    async def set_credentials(self, username: str, domain: str, credentials: Sequence[StoredCredentials]) -> None:
        creds = check_credentials(credentials)
        key = {"domain": domain, "username": username}
        # Write first, read after: a SQLite transaction that reads before it writes may fail to take the lock.
        async with self._db.transaction() as conn:
            await conn.execute(self._delete_credentials, key)
            if (await conn.execute(self._exists, key)).first() is None:
                raise AccountNotFoundError(username, domain)
            await self._insert(conn, username, domain, creds)

    async def delete(self, username: str, domain: str) -> bool:
        key = {"domain": domain, "username": username}
        async with self._db.transaction() as conn:
            await conn.execute(self._delete_credentials, key)
            return (await conn.execute(self._delete_account, key)).rowcount > 0

    async def usernames(self, domain: str) -> list[str]:
        return [str(row.username) for row in await self._db.run(self._usernames, {"domain": domain})]

    async def _insert(
        self, conn: AsyncConnection, username: str, domain: str, creds: Sequence[StoredCredentials]
    ) -> None:
        if not creds:
            return
        rows = [
            {
                "domain": domain,
                "username": username,
                "mechanism": cred.mechanism,
                "salt": cred.salt,
                "iterations": cred.iterations,
                "stored_key": cred.stored_key,
                "server_key": cred.server_key,
            }
            for cred in creds
        ]
        await conn.execute(self._insert_credentials, rows)


class SQLStorage:
    """The four stores on one database; ``close()`` closes its connections. ``open_storage`` migrates first."""

    def __init__(self, url: str) -> None:
        self._db = db = _Database(url)
        self.engine = db.engine
        self.kv = SQLKeyValueStore(db)
        self.map = SQLMapStore(db)
        self.archive = SQLArchiveStore(db)
        self.accounts = SQLAccountStore(db)

    async def close(self) -> None:
        await self._db.close()
