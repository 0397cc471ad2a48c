"""SQL storage on SQLAlchemy Core: SQLite on the event loop's thread through the standard library's driver
(or through aiosqlite's thread when the URL asks for it), PostgreSQL through asyncpg.

Per-call cost is kept low: statements are built once where their shape is fixed (SQLAlchemy caches the
compiled form, asyncpg the prepared statement), and single-statement calls run on an AUTOCOMMIT connection
(one round trip, no BEGIN/COMMIT); only calls of several statements open a transaction.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Executable,
    Select,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase

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

__all__ = ["INLINE_SQLITE", "SQLITE_BUSY_TIMEOUT_MS", "SQLITE_CHECKPOINT_DELAY", "SQLStorage"]

log = logging.getLogger(__name__)

#: The SQLAlchemy driver name of the SQLite storage that runs on the event loop's thread.
INLINE_SQLITE = "sqlite+pysqlite"
SQLITE_BUSY_TIMEOUT_MS = 5000
#: Seconds from a write to the WAL checkpoint that follows it (one at a time, on a worker thread).
SQLITE_CHECKPOINT_DELAY = 2.0

_T = TypeVar("_T")
_Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


def _create_async_engine(url: str, **options: Any) -> AsyncEngine:
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


class _Executor(Protocol):
    """Where statements run: the database itself (one autocommit statement each) or an open transaction."""

    async def fetch(self, statement: Executable, params: _Params = None) -> Sequence[Any]: ...

    async def execute(self, statement: Executable, params: _Params = None) -> int:
        """Run a statement that returns no rows; the number of rows it changed."""
        ...


class _Database(abc.ABC):
    """One database for the four stores: autocommit statements, transactions, migrations and the dialect's
    upsert. Transaction bodies must not await anything but their executor's calls."""

    dialect: str

    @abc.abstractmethod
    async def fetch(self, statement: Executable, params: _Params = None) -> Sequence[Any]: ...

    @abc.abstractmethod
    async def execute(self, statement: Executable, params: _Params = None) -> int: ...

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractAsyncContextManager[_Executor]: ...

    @abc.abstractmethod
    async def run_sync(self, function: Callable[[Connection], _T]) -> _T:
        """``function(connection)`` in a transaction of its own (migrations, schema checks)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    def upsert(self, table: Table, keys: Sequence[str], updates: Sequence[str]) -> Executable:
        if self.dialect == "postgresql":
            pg = pg_insert(table)
            return pg.on_conflict_do_update(index_elements=keys, set_={c: pg.excluded[c] for c in updates})
        lite = sqlite_insert(table)
        return lite.on_conflict_do_update(index_elements=keys, set_={c: lite.excluded[c] for c in updates})


class _AsyncTransaction:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def fetch(self, statement: Executable, params: _Params = None) -> Sequence[Any]:
        return (await self._conn.execute(statement, params)).all()

    async def execute(self, statement: Executable, params: _Params = None) -> int:
        return (await self._conn.execute(statement, params)).rowcount


class _AsyncDatabase(_Database):
    """An asyncio driver (asyncpg, or aiosqlite when asked for): two engines on one database, one for single
    autocommit statements, one for transactions.

    Two pools rather than one pool switching isolation levels: a switch, and the rollbacks done when a
    connection is closed and returned, each cost a round trip (a thread hop for aiosqlite) per call, and an
    autocommit connection has nothing to roll back.
    """

    def __init__(self, url: str) -> None:
        self.engine = _create_async_engine(url, pool_size=2, max_overflow=8)
        self._autocommit = _create_async_engine(
            url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None, skip_autocommit_rollback=True
        )
        self.dialect = self.engine.dialect.name
        # SQLite has one writer per file: queueing our own writers here is cheaper than the busy handler's
        # sleep-and-retry; the busy timeout still covers other processes.
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None

    def _guard(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self._write_lock if self._write_lock is not None else contextlib.nullcontext()

    async def fetch(self, statement: Executable, params: _Params = None) -> Sequence[Any]:
        async with self._autocommit.connect() as conn:
            return (await conn.execute(statement, params)).all()

    async def execute(self, statement: Executable, params: _Params = None) -> int:
        async with self._guard(), self._autocommit.connect() as conn:
            return (await conn.execute(statement, params)).rowcount

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Executor]:
        async with self._guard(), self.engine.begin() as conn:
            yield _AsyncTransaction(conn)

    async def run_sync(self, function: Callable[[Connection], _T]) -> _T:
        async with self.engine.begin() as conn:
            return await conn.run_sync(function)

    async def close(self) -> None:
        await self._autocommit.dispose()
        await self.engine.dispose()


_REQUIRED = object()
_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Plain:
    """A statement compiled once for the stdlib driver: its SQL, where each positional value comes from
    (the caller's parameter, else the statement's own value) and how a result row is built."""

    sql: str
    binds: tuple[tuple[str, Any, _Processor], ...]  # name, own value (or _REQUIRED), bind processor
    make_row: Callable[[Sequence[Any]], Any] | None  # None: the statement returns no rows
    results: tuple[_Processor, ...] | None  # None: every column comes back as the driver gives it

    def values(self, params: Mapping[str, Any] | None) -> list[Any] | None:
        """Positional values, or None when a required one is missing (SQLAlchemy then raises its error)."""
        out: list[Any] = []
        for name, own, process in self.binds:
            value = params.get(name, own) if params is not None else own
            if value is _REQUIRED:
                return None
            out.append(value if process is None or value is None else process(value))
        return out

    def rows(self, raw: list[Any]) -> list[Any]:
        make = self.make_row
        assert make is not None
        results = self.results
        if results is None:
            return [make(r) for r in raw]
        return [make([v if f is None or v is None else f(v) for f, v in zip(results, r, strict=True)]) for r in raw]


def _plain(statement: Executable, dialect: Dialect) -> _Plain | None:
    """The plain form of `statement`, or None when only SQLAlchemy can run it faithfully (expanding IN
    parameters, RETURNING, anything that is not a SELECT or a plain INSERT/UPDATE/DELETE)."""
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    if not isinstance(compiled, SQLCompiler) or compiled.literal_execute_params or compiled.post_compile_params:
        return None
    binds = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        own = _REQUIRED if bind.required else bind.effective_value
        binds.append((name, own, bind.type.bind_processor(dialect)))
    if isinstance(statement, Select):
        columns = list(statement.selected_columns)
        keys = list(statement.selected_columns.keys())
        processors = tuple(column.type.result_processor(dialect, None) for column in columns)
        make_row = cast("Any", namedtuple("_Row", keys, rename=True))._make
        results = processors if any(p is not None for p in processors) else None
        return _Plain(str(compiled), tuple(binds), make_row, results)
    if isinstance(statement, UpdateBase) and not statement._returning:
        return _Plain(str(compiled), tuple(binds), None, None)
    return None


class _PlainStatements:
    """Statements run straight on the sqlite3 connection, without SQLAlchemy's work per execution (~70 µs a
    statement, several times SQLite's own time on an indexed key: bench/README.md, storage).

    A statement is compiled for this the second time the same object runs: the stores build their statements
    once and reuse them, while one built for a single call (literal values, IN lists) is seen once and stays
    on SQLAlchemy's path. Both tables are bounded; an entry holds its statement, so an id is never reused
    while it is a key. Errors are raised as SQLAlchemy's (``IntegrityError`` ...), as on its path."""

    LIMIT = 512

    def __init__(self, conn: Connection, raw: sqlite3.Connection) -> None:
        self._conn = conn
        self._raw = raw
        self._dialect = conn.dialect
        self._seen: dict[int, Executable] = {}
        self._plain: dict[int, tuple[Executable, _Plain | None]] = {}

    def _lookup(self, statement: Executable) -> _Plain | None:
        key = id(statement)
        hit = self._plain.get(key)
        if hit is not None and hit[0] is statement:
            return hit[1]
        if self._seen.get(key) is not statement:
            if len(self._seen) >= self.LIMIT:
                self._seen.clear()
            self._seen[key] = statement
            return None
        del self._seen[key]
        if len(self._plain) >= self.LIMIT:
            self._plain.clear()
        plain = _plain(statement, self._dialect)
        self._plain[key] = (statement, plain)
        return plain

    def _run(self, plain: _Plain, values: list[Any]) -> sqlite3.Cursor:
        try:
            return self._raw.execute(plain.sql, values)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(plain.sql, values, exc, sqlite3.Error, dialect=self._dialect) from exc

    def fetch(self, statement: Executable, params: _Params) -> Sequence[Any]:
        if params is None or isinstance(params, Mapping):
            plain = self._lookup(statement)
            if plain is not None and plain.make_row is not None:
                values = plain.values(params)
                if values is not None:
                    return plain.rows(self._run(plain, values).fetchall())
        return self._conn.execute(statement, params).all()

    def execute(self, statement: Executable, params: _Params) -> int:
        if params is None or isinstance(params, Mapping):
            plain = self._lookup(statement)
            if plain is not None and plain.make_row is None:
                values = plain.values(params)
                if values is not None:
                    return self._run(plain, values).rowcount
        return self._conn.execute(statement, params).rowcount


class _InlineTransaction:
    def __init__(self, statements: _PlainStatements) -> None:
        self._statements = statements

    async def fetch(self, statement: Executable, params: _Params = None) -> Sequence[Any]:
        return self._statements.fetch(statement, params)

    async def execute(self, statement: Executable, params: _Params = None) -> int:
        return self._statements.execute(statement, params)


class _InlineSQLite(_Database):
    """SQLite through the standard library's driver, on the event loop's own thread.

    A statement on an indexed key takes tens of microseconds in SQLite itself; handing it to a driver thread
    and back (aiosqlite) cost ten times that in CPU on the loop (bench/README.md, storage). In WAL mode a
    reader never waits, and this process writes through one connection, so a statement only waits when
    another process holds the write lock (another worker process, ``jaybird user add`` beside a running
    server). That wait is not SQLite's busy handler, which would sleep on the loop's thread and stall every
    connection of the process: this connection has no busy timeout, and a statement refused as busy is
    tried again after an asyncio sleep, until the busy timeout has passed. The one step that can take long,
    the WAL checkpoint with its fsync, runs on a worker thread with a connection of its own, a while after
    writes, never on the loop.
    """

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        event.listen(self.engine, "connect", _sqlite_pragmas)
        self.dialect = "sqlite"
        self._path = str(self.engine.url.database)
        self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
        self._conn.exec_driver_sql("PRAGMA busy_timeout=0")  # waits happen in _when_free, off the loop's thread
        raw = self._conn.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        # The driver in autocommit mode (SQLAlchemy's AUTOCOMMIT): a plain statement must not open a transaction.
        assert raw.isolation_level is None
        self._raw = raw
        self._statements = _PlainStatements(self._conn, raw)
        # Our own writers queue here: only a transaction body that awaits could make one wait.
        self._write_lock = asyncio.Lock()
        self._checkpoint_timer: asyncio.TimerHandle | None = None
        self._checkpoint: asyncio.Task[None] | None = None

    async def fetch(self, statement: Executable, params: _Params = None) -> Sequence[Any]:
        try:
            return self._statements.fetch(statement, params)
        except DBAPIError as exc:
            if not _busy(exc):
                raise
        return await _when_free(lambda: self._statements.fetch(statement, params))

    async def execute(self, statement: Executable, params: _Params = None) -> int:
        async with self._write_lock:
            try:
                count = self._statements.execute(statement, params)
            except DBAPIError as exc:
                if not _busy(exc):
                    raise
                count = await _when_free(lambda: self._statements.execute(statement, params))
        self._written()
        return count

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Executor]:
        async with self._write_lock:
            # IMMEDIATE takes the write lock now: a transaction that reads first could not upgrade later.
            await _when_free(lambda: self._conn.exec_driver_sql("BEGIN IMMEDIATE"), first_try=True)
            try:
                yield _InlineTransaction(self._statements)
                self._conn.exec_driver_sql("COMMIT")
            except BaseException:
                if self._raw.in_transaction:
                    self._conn.exec_driver_sql("ROLLBACK")
                raise
        self._written()

    async def run_sync(self, function: Callable[[Connection], _T]) -> _T:
        with self.engine.begin() as conn:
            return function(conn)

    def _written(self) -> None:
        if self._checkpoint_timer is None and self._checkpoint is None:
            loop = asyncio.get_running_loop()
            self._checkpoint_timer = loop.call_later(SQLITE_CHECKPOINT_DELAY, self._start_checkpoint)

    def _start_checkpoint(self) -> None:
        self._checkpoint_timer = None
        self._checkpoint = asyncio.ensure_future(asyncio.to_thread(_checkpoint, self._path))
        self._checkpoint.add_done_callback(self._checkpoint_done)

    def _checkpoint_done(self, task: asyncio.Task[None]) -> None:
        self._checkpoint = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("SQLite checkpoint of %s failed: %s", self._path, task.exception())

    async def close(self) -> None:
        if self._checkpoint_timer is not None:
            self._checkpoint_timer.cancel()
            self._checkpoint_timer = None
        if self._checkpoint is not None:
            await asyncio.wait([self._checkpoint])
        # The last connection to close checkpoints the whole WAL into the database file.
        self._conn.close()
        self.engine.dispose()


def _busy(exc: DBAPIError) -> bool:
    """SQLite refused the statement because another connection holds the lock it needs (SQLITE_BUSY)."""
    return getattr(exc.orig, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


async def _when_free(run: Callable[[], _T], *, first_try: bool = False) -> _T:
    """``run`` again and again while SQLite answers busy, sleeping on the loop in between (0.5 ms, doubling up
    to 20 ms), for at most the busy timeout; then the busy error is raised. With ``first_try`` the first call
    is made here too."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.0005
    if not first_try:
        await asyncio.sleep(delay)
    while True:
        try:
            return run()
        except DBAPIError as exc:
            if not _busy(exc) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(2 * delay, 0.02)


def _checkpoint(path: str) -> None:
    """Copy the WAL's pages into the database file without waiting for readers or writers (PASSIVE)."""
    with contextlib.closing(sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)) as conn:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


class SQLKeyValueStore:
    def __init__(self, db: _Database) -> None:
        self._db = db
        where = (keyvalue.c.owner == bindparam("owner"), keyvalue.c.store == bindparam("store"))
        self._get = select(keyvalue.c.is_text, keyvalue.c.value).where(*where)
        self._set = db.upsert(keyvalue, ["owner", "store"], ["is_text", "value"])
        self._delete = delete(keyvalue).where(*where)

    async def get(self, owner: str, store: str) -> Value | None:
        rows = await self._db.fetch(self._get, {"owner": owner, "store": store})
        return _decode(rows[0].is_text, rows[0].value) if rows else None

    async def set(self, owner: str, store: str, value: Value) -> None:
        is_text, data = _encode(value)
        params = {"owner": owner, "store": store, "is_text": is_text, "value": data}
        await self._db.execute(self._set, params)

    async def delete(self, owner: str, store: str) -> bool:
        return await self._db.execute(self._delete, {"owner": owner, "store": store}) > 0


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
        rows = await self._db.fetch(self._get, {"owner": owner, "store": store, "key": key})
        return _decode(rows[0].is_text, rows[0].value) if rows else None

    async def set(self, owner: str, store: str, key: str, value: Value) -> None:
        is_text, data = _encode(value)
        params = {"owner": owner, "store": store, "key": key, "is_text": is_text, "value": data}
        await self._db.execute(self._set, params)

    async def delete(self, owner: str, store: str, key: str) -> bool:
        params = {"owner": owner, "store": store, "key": key}
        return await self._db.execute(self._delete, params) > 0

    async def items(self, owner: str, store: str) -> dict[str, Value]:
        rows = await self._db.fetch(self._items, {"owner": owner, "store": store})
        # Unpacked, not read by name: a Row's attribute access costs more than the rest of the loop.
        triples = cast("Sequence[tuple[str, bool, bytes]]", rows)
        return {key: (bytes(value).decode() if is_text else bytes(value)) for key, is_text, value in triples}

    async def clear(self, owner: str, store: str) -> int:
        return await self._db.execute(self._clear, {"owner": owner, "store": store})


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
        await self._db.execute(self._append, params)
        return ArchiveRef(item_id, when)

    async def query(self, owner: str, store: str, query: ArchiveQuery | None = None) -> ArchivePage:
        query = query or ArchiveQuery()
        params = _filter_params(owner, store, query)
        if query.after_id is not None or query.before_id is not None:
            paging_ids = [i for i in (query.after_id, query.before_id) if i is not None]
            c = archive.c
            known = await self._db.fetch(select(c.id).where(c.owner == owner, c.store == store, c.id.in_(paging_ids)))
            missing = set(paging_ids) - {str(row.id) for row in known}
            if missing:
                raise ArchiveItemNotFoundError(min(missing))
            params["after_id"], params["before_id"] = query.after_id, query.before_id
        if query.limit is not None:
            params["limit"] = query.limit + 1  # one more tells whether the page is the last
        rows = list(await self._db.fetch(_page_statement(_Shape.of(query)), params))
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
        query = query or ArchiveQuery()
        statement = _count_statement(_Shape.of(query))
        return int((await self._db.fetch(statement, _filter_params(owner, store, query)))[0][0])

    async def delete(self, owner: str, store: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        c = archive.c
        statement = delete(archive).where(c.owner == owner, c.store == store, c.id.in_(list(ids)))
        return await self._db.execute(statement)

    async def delete_all(self, owner: str, store: str) -> int:
        statement = delete(archive).where(archive.c.owner == owner, archive.c.store == store)
        return await self._db.execute(statement)


@dataclass(frozen=True, slots=True)
class _Shape:
    """Which parts of an archive query are set: queries of one shape share one statement with bind parameters.
    Building a statement costs several times what SQLite takes to run it (an offline check at each login)."""

    with_bare: bool
    with_full: bool
    start: bool
    end: bool
    after: bool
    before: bool
    backwards: bool
    limit: bool

    @staticmethod
    def of(query: ArchiveQuery) -> _Shape:
        with_jid = query.with_jid
        return _Shape(
            with_jid is not None,
            with_jid is not None and "/" in with_jid,
            query.start is not None,
            query.end is not None,
            query.after_id is not None,
            query.before_id is not None,
            query.backwards,
            query.limit is not None,
        )


def _filter_params(owner: str, store: str, query: ArchiveQuery) -> dict[str, Any]:
    params: dict[str, Any] = {"owner": owner, "store": store}
    if query.with_jid is not None:
        params["with_bare"] = query.with_jid.partition("/")[0]
        params["with_full"] = query.with_jid
    if query.start is not None:
        params["start"] = id_lower_bound(query.start)
    if query.end is not None:
        params["end"] = id_upper_bound(query.end)
    return params


def _conditions(shape: _Shape) -> list[ColumnElement[bool]]:
    c = archive.c
    conditions = [c.owner == bindparam("owner"), c.store == bindparam("store")]
    if shape.with_bare:
        conditions.append(c.with_bare == bindparam("with_bare"))
    if shape.with_full:
        conditions.append(c.with_full == bindparam("with_full"))
    if shape.start:
        conditions.append(c.id >= bindparam("start"))
    if shape.end:
        conditions.append(c.id < bindparam("end"))
    return conditions


@functools.cache
def _page_statement(shape: _Shape) -> Select[Any]:
    c = archive.c
    conditions = _conditions(shape)
    if shape.after:
        conditions.append(c.id > bindparam("after_id"))
    if shape.before:
        conditions.append(c.id < bindparam("before_id"))
    statement = (
        select(c.id, c.with_full, c.is_text, c.value)
        .where(*conditions)
        .order_by(c.id.desc() if shape.backwards else c.id.asc())
    )
    return statement.limit(bindparam("limit")) if shape.limit else statement


@functools.cache
def _count_statement(shape: _Shape) -> Select[Any]:
    return select(func.count()).select_from(archive).where(*_conditions(shape))


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
        rows = await self._db.fetch(self._get, {"domain": domain, "username": username})
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
            if not await conn.fetch(self._exists, key):
                raise AccountNotFoundError(username, domain)
            await self._insert(conn, username, domain, creds)

    async def delete(self, username: str, domain: str) -> bool:
        key = {"domain": domain, "username": username}
        async with self._db.transaction() as conn:
            await conn.execute(self._delete_credentials, key)
            return await conn.execute(self._delete_account, key) > 0

    async def usernames(self, domain: str) -> list[str]:
        return [str(row.username) for row in await self._db.fetch(self._usernames, {"domain": domain})]

    async def _insert(self, conn: _Executor, username: str, domain: str, creds: Sequence[StoredCredentials]) -> None:
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
        db: _Database = _InlineSQLite(url) if url.startswith(INLINE_SQLITE + ":") else _AsyncDatabase(url)
        self._db = db
        self.dialect = db.dialect
        self.kv = SQLKeyValueStore(db)
        self.map = SQLMapStore(db)
        self.archive = SQLArchiveStore(db)
        self.accounts = SQLAccountStore(db)

    async def run_sync(self, function: Callable[[Connection], _T]) -> _T:
        """``function(connection)`` in a transaction of its own: migrations, schema checks, tests."""
        return await self._db.run_sync(function)

    async def close(self) -> None:
        await self._db.close()
