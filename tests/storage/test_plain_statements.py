"""SQLite on the loop's thread runs reused statements straight on the sqlite3 connection: the rows, errors and
row counts must be exactly those of SQLAlchemy's own path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError, StatementError

from jaybird.server.storage import AccountExistsError, StoredCredentials, open_storage
from jaybird.server.storage.schema import keyvalue
from jaybird.server.storage.sql import SQLStorage, _InlineSQLite, _PlainStatements

CREDS = (StoredCredentials("SCRAM-SHA-1", b"salt", 4096, b"s" * 20, b"k" * 20),)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLStorage]:
    opened = await open_storage(f"sqlite:///{tmp_path / 'plain.sqlite'}")
    assert isinstance(opened, SQLStorage)
    try:
        yield opened
    finally:
        await opened.close()


def _statements(storage: SQLStorage) -> _PlainStatements:
    db = storage._db
    assert isinstance(db, _InlineSQLite)
    return db._statements


async def test_reused_statement_gives_the_rows_sqlalchemy_gives(storage: SQLStorage) -> None:
    db = storage._db
    assert isinstance(db, _InlineSQLite)
    await storage.kv.set("o", "text", "héllo")
    await storage.kv.set("o", "bytes", b"\x00\xff")
    statement = select(keyvalue.c.owner, keyvalue.c.is_text, keyvalue.c.value).where(
        keyvalue.c.owner == bindparam("owner")
    )
    first = await db.fetch(statement, {"owner": "o"})  # first sight: SQLAlchemy's path
    second = await db.fetch(statement, {"owner": "o"})  # second: compiled for the plain path
    assert _statements(storage)._plain[id(statement)][1] is not None
    assert [tuple(r) for r in first] == [tuple(r) for r in second]
    for a, b in zip(first, second, strict=True):
        assert (a.owner, a.is_text, bytes(a.value)) == (b.owner, b.is_text, bytes(b.value))
        assert type(a.is_text) is type(b.is_text) is bool  # the Boolean column's result processor ran
        assert a[1] == b[1]


async def test_stores_answer_the_same_on_every_call(storage: SQLStorage) -> None:
    for _ in range(3):  # once through SQLAlchemy, then the plain path
        await storage.map.set("o", "roster", "a@x", "A")
        await storage.map.set("o", "roster", "b@x", b"B")
        assert await storage.map.items("o", "roster") == {"a@x": "A", "b@x": b"B"}
        assert await storage.map.get("o", "roster", "a@x") == "A"
        assert await storage.kv.get("o", "missing") is None
        assert await storage.map.delete("o", "roster", "a@x") is True
        assert await storage.map.delete("o", "roster", "a@x") is False  # the row count is the driver's


async def test_constraint_errors_are_sqlalchemys_on_the_plain_path(storage: SQLStorage) -> None:
    # Account creation turns IntegrityError into AccountExistsError: the plain path must raise the same class.
    for name in ("a", "b", "c"):
        await storage.accounts.create(name, "example.org", CREDS)
    with pytest.raises(AccountExistsError):
        await storage.accounts.create("b", "example.org", CREDS)
    account = await storage.accounts.get("b", "example.org")
    assert account is not None and account.credentials == CREDS

    statements = _statements(storage)
    row: dict[str, Any] = {"owner": "o", "store": "s", "is_text": True, "value": b"v"}
    plain_insert = insert(keyvalue)
    statements.execute(plain_insert, row)
    with pytest.raises(IntegrityError):
        statements.execute(plain_insert, row)  # second sight: the plain path, same error class
    assert statements._plain[id(plain_insert)][1] is not None


async def test_missing_parameter_is_sqlalchemys_error(storage: SQLStorage) -> None:
    statements = _statements(storage)
    statement = select(keyvalue.c.value).where(keyvalue.c.owner == bindparam("owner"))
    for _ in range(2):
        with pytest.raises(StatementError):
            statements.fetch(statement, {})


async def test_statements_built_for_one_call_are_not_kept(storage: SQLStorage) -> None:
    statements = _statements(storage)
    for n in range(3 * _PlainStatements.LIMIT):
        statements.execute(delete(keyvalue).where(keyvalue.c.owner == f"nobody-{n}"), None)
    assert not statements._plain  # each seen once: nothing compiled
    assert len(statements._seen) <= _PlainStatements.LIMIT


async def test_a_write_waits_for_another_process_without_stalling_the_loop(tmp_path: Path) -> None:
    """Another process's write lock (a second worker, `jaybird user add`) makes a write wait, but on the loop:
    other coroutines keep running meanwhile, and the write lands once the lock is released."""
    import asyncio
    import sqlite3
    import time

    path = tmp_path / "shared.sqlite"
    opened = await open_storage(f"sqlite:///{path}")
    assert isinstance(opened, SQLStorage)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await opened.kv.set("o", "k", "before")
        other.execute("BEGIN IMMEDIATE")  # the other process's writer holds the lock
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        ticking = asyncio.create_task(ticker())
        began = time.monotonic()
        writing = asyncio.create_task(opened.kv.set("o", "k", "after"))
        await asyncio.sleep(0.3)
        assert not writing.done()
        assert ticks >= 20  # the loop went on: no busy handler sleeping on its thread
        other.execute("COMMIT")
        await asyncio.wait_for(writing, 2)
        assert time.monotonic() - began < 2
        ticking.cancel()
        assert await opened.kv.get("o", "k") == "after"
        # and a transaction (BEGIN IMMEDIATE) waits the same way
        other.execute("BEGIN IMMEDIATE")
        created = asyncio.create_task(opened.accounts.create("romeo", "montague.lit", CREDS))
        await asyncio.sleep(0.05)
        assert not created.done()
        other.execute("COMMIT")
        await asyncio.wait_for(created, 2)
        assert await opened.accounts.get("romeo", "montague.lit") is not None
    finally:
        other.close()
        await opened.close()


async def test_a_write_gives_up_after_the_busy_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from jaybird.server.storage import sql

    monkeypatch.setattr(sql, "SQLITE_BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "held.sqlite"
    opened = await open_storage(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="locked"):
            await opened.kv.set("o", "k", "v")
        other.execute("ROLLBACK")
        await opened.kv.set("o", "k", "v")  # the connection is still good
        assert await opened.kv.get("o", "k") == "v"
    finally:
        other.close()
        await opened.close()
