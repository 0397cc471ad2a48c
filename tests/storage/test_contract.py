"""The storage contract: every test runs against every backend (memory, SQLite, PostgreSQL).

Archive paging follows XEP-0313 (MAM) over XEP-0059 (RSM): pages come back oldest first, ``before`` pages
backwards from the end, and ``complete`` says no more items lie in the paging direction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from jaybird.server.storage import (
    AccountExistsError,
    AccountNotFoundError,
    ArchiveItem,
    ArchiveItemNotFoundError,
    ArchiveQuery,
    ArchiveRef,
    Storage,
    StoredCredentials,
    Value,
    open_storage,
    sql,
)
from jaybird.server.storage.factory import sql_url
from jaybird.server.storage.schema import metadata
from jaybird.server.storage.sql import SQLITE_BUSY_TIMEOUT_MS, SQLStorage

from .conftest import Backend

PRAGMAS = ("journal_mode", "busy_timeout", "foreign_keys")

JULIET = "juliet@capulet.lit"
ROMEO = "romeo@montague.lit"


def scram(mechanism: str, seed: int) -> StoredCredentials:
    return StoredCredentials(
        mechanism=mechanism,
        salt=bytes([seed]) * 16,
        iterations=4096 + seed,
        stored_key=bytes([seed + 1]) * 32,
        server_key=bytes([seed + 2]) * 32,
    )


async def fill(storage: Storage, count: int, *, owner: str = JULIET, store: str = "mam") -> list[ArchiveRef]:
    """``count`` items, alternating between two contacts' resources, valued "m0", "m1", ..."""
    peers = [f"{ROMEO}/orchard", "nurse@capulet.lit/kitchen", f"{ROMEO}/balcony"]
    return [await storage.archive.append(owner, store, f"m{i}", with_jid=peers[i % len(peers)]) for i in range(count)]


def values(items: Sequence[ArchiveItem]) -> list[Value]:
    return [item.value for item in items]


# --- key-value ------------------------------------------------------------------------------------------


async def test_keyvalue_put_get_overwrite_delete(storage: Storage) -> None:
    assert await storage.kv.get(JULIET, "vcard") is None
    await storage.kv.set(JULIET, "vcard", "<vCard xmlns='vcard-temp'/>")
    assert await storage.kv.get(JULIET, "vcard") == "<vCard xmlns='vcard-temp'/>"
    await storage.kv.set(JULIET, "vcard", "<vCard xmlns='vcard-temp'><FN>Juliet</FN></vCard>")
    assert await storage.kv.get(JULIET, "vcard") == "<vCard xmlns='vcard-temp'><FN>Juliet</FN></vCard>"
    assert await storage.kv.delete(JULIET, "vcard") is True
    assert await storage.kv.get(JULIET, "vcard") is None
    assert await storage.kv.delete(JULIET, "vcard") is False


async def test_keyvalue_keeps_bytes_and_str_apart(storage: Storage) -> None:
    await storage.kv.set(JULIET, "blob", b"\x00\xff<raw>")
    await storage.kv.set(JULIET, "text", "Ромео ♥ <Juliet>")
    await storage.kv.set(JULIET, "empty", "")
    blob, txt, empty = [await storage.kv.get(JULIET, s) for s in ("blob", "text", "empty")]
    assert blob == b"\x00\xff<raw>" and isinstance(blob, bytes)
    assert txt == "Ромео ♥ <Juliet>" and isinstance(txt, str)
    assert empty == "" and isinstance(empty, str)


async def test_keyvalue_isolated_per_owner_and_store(storage: Storage) -> None:
    await storage.kv.set(JULIET, "vcard", "juliet's")
    await storage.kv.set(ROMEO, "vcard", "romeo's")
    await storage.kv.set(JULIET, "private", "secret")
    assert await storage.kv.get(JULIET, "vcard") == "juliet's"
    assert await storage.kv.get(ROMEO, "vcard") == "romeo's"
    assert await storage.kv.get(ROMEO, "private") is None
    await storage.kv.delete(JULIET, "vcard")
    assert await storage.kv.get(ROMEO, "vcard") == "romeo's"
    assert await storage.kv.get(JULIET, "private") == "secret"


# --- map ------------------------------------------------------------------------------------------------


async def test_map_set_get_delete(storage: Storage) -> None:
    assert await storage.map.get(JULIET, "roster", ROMEO) is None
    await storage.map.set(JULIET, "roster", ROMEO, "<item jid='romeo@montague.lit' subscription='both'/>")
    await storage.map.set(JULIET, "roster", ROMEO, "<item jid='romeo@montague.lit' subscription='to'/>")
    assert await storage.map.get(JULIET, "roster", ROMEO) == "<item jid='romeo@montague.lit' subscription='to'/>"
    assert await storage.map.delete(JULIET, "roster", ROMEO) is True
    assert await storage.map.get(JULIET, "roster", ROMEO) is None
    assert await storage.map.delete(JULIET, "roster", ROMEO) is False


async def test_map_items_for_owner_and_store_only(storage: Storage) -> None:
    await storage.map.set(JULIET, "roster", ROMEO, "r")
    await storage.map.set(JULIET, "roster", "nurse@capulet.lit", b"n")
    await storage.map.set(JULIET, "blocklist", "tybalt@capulet.lit", "")
    await storage.map.set(ROMEO, "roster", JULIET, "j")
    assert await storage.map.items(JULIET, "roster") == {ROMEO: "r", "nurse@capulet.lit": b"n"}
    assert await storage.map.items(JULIET, "blocklist") == {"tybalt@capulet.lit": ""}
    assert await storage.map.items(ROMEO, "roster") == {JULIET: "j"}
    assert await storage.map.items(ROMEO, "blocklist") == {}
    assert await storage.map.get(ROMEO, "roster", ROMEO) is None


async def test_map_clear_removes_one_store_of_one_owner(storage: Storage) -> None:
    for key in ("a@x", "b@x", "c@x"):
        await storage.map.set(JULIET, "roster", key, key)
    await storage.map.set(JULIET, "blocklist", "a@x", "a")
    await storage.map.set(ROMEO, "roster", "a@x", "a")
    assert await storage.map.clear(JULIET, "roster") == 3
    assert await storage.map.items(JULIET, "roster") == {}
    assert await storage.map.clear(JULIET, "roster") == 0
    assert await storage.map.items(JULIET, "blocklist") == {"a@x": "a"}
    assert await storage.map.items(ROMEO, "roster") == {"a@x": "a"}


# --- archive --------------------------------------------------------------------------------------------


async def test_archive_append_returns_sortable_unique_ids_and_utc_times(storage: Storage) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    refs = await fill(storage, 5)
    after = datetime.now(UTC) + timedelta(seconds=1)
    ids = [ref.id for ref in refs]
    assert all(isinstance(i, str) for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == 5
    times = [ref.when for ref in refs]
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in times)
    assert times == sorted(times) and before <= times[0] and times[-1] <= after
    page = await storage.archive.query(JULIET, "mam")
    assert [(i.id, i.when) for i in page.items] == [(r.id, r.when) for r in refs]
    assert values(page.items) == ["m0", "m1", "m2", "m3", "m4"]
    assert page.items[0].with_jid == f"{ROMEO}/orchard"
    assert page.complete is True


async def test_archive_keeps_bytes_and_str_and_missing_with(storage: Storage) -> None:
    await storage.archive.append(JULIET, "offline", b"<message/>")
    await storage.archive.append(JULIET, "offline", "<message>é</message>", with_jid=ROMEO)
    first, second = (await storage.archive.query(JULIET, "offline")).items
    assert first.value == b"<message/>" and first.with_jid is None
    assert second.value == "<message>é</message>" and second.with_jid == ROMEO


async def test_archive_with_bare_jid_matches_every_resource(storage: Storage) -> None:
    """XEP-0313 §4.1.1: a bare JID matches its full JIDs; a full JID matches only itself."""
    await fill(storage, 6)
    bare = await storage.archive.query(JULIET, "mam", ArchiveQuery(with_jid=ROMEO))
    assert values(bare.items) == ["m0", "m2", "m3", "m5"]
    full = await storage.archive.query(JULIET, "mam", ArchiveQuery(with_jid=f"{ROMEO}/balcony"))
    assert values(full.items) == ["m2", "m5"]
    none = await storage.archive.query(JULIET, "mam", ArchiveQuery(with_jid="montague.lit"))
    assert none.items == () and none.complete is True


async def test_archive_time_range_is_inclusive(storage: Storage) -> None:
    """XEP-0313 §4.1.2: 'start' and 'end' bound the items' timestamps, both inclusive."""
    refs = await fill(storage, 8)
    q = ArchiveQuery(start=refs[2].when, end=refs[5].when)
    assert values((await storage.archive.query(JULIET, "mam", q)).items) == ["m2", "m3", "m4", "m5"]
    only_start = ArchiveQuery(start=refs[6].when)
    assert values((await storage.archive.query(JULIET, "mam", only_start)).items) == ["m6", "m7"]
    only_end = ArchiveQuery(end=refs[0].when)
    assert values((await storage.archive.query(JULIET, "mam", only_end)).items) == ["m0"]
    later = ArchiveQuery(start=refs[-1].when + timedelta(seconds=5))
    assert (await storage.archive.query(JULIET, "mam", later)).items == ()
    with_and_time = ArchiveQuery(with_jid=ROMEO, start=refs[1].when, end=refs[5].when)
    assert values((await storage.archive.query(JULIET, "mam", with_and_time)).items) == ["m2", "m3", "m5"]


async def test_archive_pages_forward_with_after(storage: Storage) -> None:
    """XEP-0059 §2.2: paging forwards through the result set, 3 items at a time."""
    await fill(storage, 8)
    seen: list[Value] = []
    after: str | None = None
    completes: list[bool] = []
    for _ in range(10):  # bounded: 8 items in pages of 3 take 3 pages
        page = await storage.archive.query(JULIET, "mam", ArchiveQuery(after_id=after, limit=3))
        seen += values(page.items)
        completes.append(page.complete)
        if page.complete:
            break
        after = page.last_id
    assert seen == [f"m{i}" for i in range(8)]
    assert completes == [False, False, True]


async def test_archive_pages_backward_from_the_end(storage: Storage) -> None:
    """XEP-0059 §2.5 (empty <before/>) then §2.3 (before an id): newest page first, each page oldest first."""
    await fill(storage, 8)
    last = await storage.archive.query(JULIET, "mam", ArchiveQuery(last_page=True, limit=3))
    assert values(last.items) == ["m5", "m6", "m7"] and last.complete is False
    assert last.first_id is not None
    middle = await storage.archive.query(JULIET, "mam", ArchiveQuery(before_id=last.first_id, limit=3))
    assert values(middle.items) == ["m2", "m3", "m4"] and middle.complete is False
    assert middle.first_id is not None
    first = await storage.archive.query(JULIET, "mam", ArchiveQuery(before_id=middle.first_id, limit=3))
    assert values(first.items) == ["m0", "m1"] and first.complete is True


async def test_archive_page_exactly_filling_the_rest_is_complete(storage: Storage) -> None:
    refs = await fill(storage, 6)
    forward = await storage.archive.query(JULIET, "mam", ArchiveQuery(after_id=refs[2].id, limit=3))
    assert values(forward.items) == ["m3", "m4", "m5"] and forward.complete is True
    backward = await storage.archive.query(JULIET, "mam", ArchiveQuery(before_id=refs[3].id, limit=3))
    assert values(backward.items) == ["m0", "m1", "m2"] and backward.complete is True


async def test_archive_paging_counts_only_matching_items(storage: Storage) -> None:
    await fill(storage, 9)  # nurse items: m1, m4, m7
    q = ArchiveQuery(with_jid="nurse@capulet.lit", limit=2)
    first = await storage.archive.query(JULIET, "mam", q)
    assert values(first.items) == ["m1", "m4"] and first.complete is False
    rest = await storage.archive.query(
        JULIET, "mam", ArchiveQuery(with_jid="nurse@capulet.lit", limit=2, after_id=first.last_id)
    )
    assert values(rest.items) == ["m7"] and rest.complete is True
    back = await storage.archive.query(
        JULIET, "mam", ArchiveQuery(with_jid="nurse@capulet.lit", limit=2, before_id=first.last_id)
    )
    assert values(back.items) == ["m1"] and back.complete is True


async def test_archive_after_and_before_together_bound_both_sides(storage: Storage) -> None:
    refs = await fill(storage, 8)
    q = ArchiveQuery(after_id=refs[1].id, before_id=refs[6].id)
    assert values((await storage.archive.query(JULIET, "mam", q)).items) == ["m2", "m3", "m4", "m5"]
    q = ArchiveQuery(after_id=refs[1].id, before_id=refs[6].id, limit=2)
    page = await storage.archive.query(JULIET, "mam", q)
    assert values(page.items) == ["m4", "m5"] and page.complete is False


async def test_archive_limit_zero_returns_no_items(storage: Storage) -> None:
    """XEP-0059 §2.6: max=0 asks only whether there are items (and how many, through count)."""
    empty = await storage.archive.query(JULIET, "mam", ArchiveQuery(limit=0))
    assert empty.items == () and empty.complete is True
    await fill(storage, 2)
    page = await storage.archive.query(JULIET, "mam", ArchiveQuery(limit=0))
    assert page.items == () and page.complete is False
    assert await storage.archive.count(JULIET, "mam", ArchiveQuery(limit=0)) == 2


async def test_archive_unknown_paging_id_is_an_error(storage: Storage) -> None:
    """XEP-0313: an id that is not in the archive is answered with item-not-found, not an empty page."""
    refs = await fill(storage, 3)
    romeo_ref = await storage.archive.append(ROMEO, "mam", "x")
    for query in (
        ArchiveQuery(after_id="0000000000000000000000"),
        ArchiveQuery(before_id="ffffffffffffffffffffff"),
        ArchiveQuery(after_id=romeo_ref.id),  # another owner's id is not in this archive
        ArchiveQuery(after_id=refs[0].id, before_id="nope"),
    ):
        with pytest.raises(ArchiveItemNotFoundError):
            await storage.archive.query(JULIET, "mam", query)
    with pytest.raises(ArchiveItemNotFoundError):
        await storage.archive.query(JULIET, "other", ArchiveQuery(after_id=refs[0].id))


async def test_archive_count_follows_the_filter_not_the_page(storage: Storage) -> None:
    refs = await fill(storage, 7)
    assert await storage.archive.count(JULIET, "mam") == 7
    assert await storage.archive.count(JULIET, "mam", ArchiveQuery(with_jid=ROMEO)) == 5
    assert await storage.archive.count(JULIET, "mam", ArchiveQuery(with_jid=ROMEO, limit=1)) == 5
    assert await storage.archive.count(JULIET, "mam", ArchiveQuery(start=refs[3].when)) == 4
    assert await storage.archive.count(ROMEO, "mam") == 0
    assert await storage.archive.count(JULIET, "offline") == 0


async def test_archive_delete_by_id_and_delete_all(storage: Storage) -> None:
    refs = await fill(storage, 5, store="offline")
    await fill(storage, 2, owner=ROMEO, store="offline")
    await fill(storage, 2, store="mam")
    assert await storage.archive.delete(JULIET, "offline", [refs[1].id, refs[3].id, "no-such-id"]) == 2
    assert values((await storage.archive.query(JULIET, "offline")).items) == ["m0", "m2", "m4"]
    # Another owner cannot delete through this owner's ids.
    assert await storage.archive.delete(ROMEO, "offline", [refs[0].id]) == 0
    assert await storage.archive.delete(JULIET, "offline", []) == 0
    # Offline messages go once delivered.
    assert await storage.archive.delete_all(JULIET, "offline") == 3
    assert await storage.archive.count(JULIET, "offline") == 0
    assert await storage.archive.delete_all(JULIET, "offline") == 0
    assert await storage.archive.count(ROMEO, "offline") == 2
    assert await storage.archive.count(JULIET, "mam") == 2


async def test_archive_isolated_per_owner_and_store(storage: Storage) -> None:
    await storage.archive.append(JULIET, "mam", "j-mam")
    await storage.archive.append(JULIET, "offline", "j-offline")
    await storage.archive.append(ROMEO, "mam", "r-mam")
    assert values((await storage.archive.query(JULIET, "mam")).items) == ["j-mam"]
    assert values((await storage.archive.query(JULIET, "offline")).items) == ["j-offline"]
    assert values((await storage.archive.query(ROMEO, "mam")).items) == ["r-mam"]
    assert (await storage.archive.query(ROMEO, "offline")).items == ()


async def test_archive_concurrent_appends_keep_order_and_lose_nothing(storage: Storage) -> None:
    refs = await asyncio.gather(*(storage.archive.append(JULIET, "mam", f"c{i}") for i in range(50)))
    ids = [ref.id for ref in refs]
    assert ids == sorted(ids) and len(set(ids)) == 50
    page = await storage.archive.query(JULIET, "mam")
    assert values(page.items) == [f"c{i}" for i in range(50)]
    assert [item.id for item in page.items] == ids
    assert await storage.archive.count(JULIET, "mam") == 50


# --- accounts -------------------------------------------------------------------------------------------


async def test_account_create_and_get(storage: Storage) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    sha256, sha1 = scram("SCRAM-SHA-256", 1), scram("SCRAM-SHA-1", 2)
    created = await storage.accounts.create("juliet", "capulet.lit", [sha256, sha1])
    assert created.credentials == (sha1, sha256)  # sorted by mechanism
    got = await storage.accounts.get("juliet", "capulet.lit")
    assert got is not None
    assert (got.username, got.domain, got.credentials) == ("juliet", "capulet.lit", (sha1, sha256))
    assert got.created == created.created
    assert before <= got.created <= datetime.now(UTC) + timedelta(seconds=1)
    assert got.credential("SCRAM-SHA-256") == sha256
    assert got.credential("SCRAM-SHA-512") is None
    assert await storage.accounts.get("juliet", "montague.lit") is None
    assert await storage.accounts.get("romeo", "capulet.lit") is None


async def test_account_without_credentials(storage: Storage) -> None:
    await storage.accounts.create("guest", "capulet.lit", [])
    got = await storage.accounts.get("guest", "capulet.lit")
    assert got is not None and got.credentials == ()


async def test_account_duplicate_creation_raises(storage: Storage) -> None:
    await storage.accounts.create("juliet", "capulet.lit", [scram("SCRAM-SHA-1", 1)])
    with pytest.raises(AccountExistsError) as caught:
        await storage.accounts.create("juliet", "capulet.lit", [scram("SCRAM-SHA-256", 9)])
    assert (caught.value.username, caught.value.domain) == ("juliet", "capulet.lit")
    got = await storage.accounts.get("juliet", "capulet.lit")
    assert got is not None and got.credentials == (scram("SCRAM-SHA-1", 1),)  # the first one is untouched
    # The same username on another domain is another account.
    await storage.accounts.create("juliet", "montague.lit", [])


async def test_account_duplicate_mechanism_is_refused(storage: Storage) -> None:
    with pytest.raises(ValueError):
        await storage.accounts.create("juliet", "capulet.lit", [scram("SCRAM-SHA-1", 1), scram("SCRAM-SHA-1", 2)])
    assert await storage.accounts.get("juliet", "capulet.lit") is None


async def test_account_set_credentials_replaces_all(storage: Storage) -> None:
    await storage.accounts.create("juliet", "capulet.lit", [scram("SCRAM-SHA-1", 1), scram("SCRAM-SHA-256", 2)])
    await storage.accounts.set_credentials("juliet", "capulet.lit", [scram("SCRAM-SHA-256", 7)])
    got = await storage.accounts.get("juliet", "capulet.lit")
    assert got is not None and got.credentials == (scram("SCRAM-SHA-256", 7),)
    with pytest.raises(AccountNotFoundError):
        await storage.accounts.set_credentials("romeo", "capulet.lit", [scram("SCRAM-SHA-1", 1)])
    assert await storage.accounts.get("romeo", "capulet.lit") is None


async def test_account_delete_removes_credentials_too(storage: Storage) -> None:
    await storage.accounts.create("juliet", "capulet.lit", [scram("SCRAM-SHA-1", 1)])
    assert await storage.accounts.delete("juliet", "capulet.lit") is True
    assert await storage.accounts.get("juliet", "capulet.lit") is None
    assert await storage.accounts.delete("juliet", "capulet.lit") is False
    again = await storage.accounts.create("juliet", "capulet.lit", [])
    assert again.credentials == ()
    got = await storage.accounts.get("juliet", "capulet.lit")
    assert got is not None and got.credentials == ()


async def test_account_list_by_domain(storage: Storage) -> None:
    for user in ("tybalt", "juliet", "nurse"):
        await storage.accounts.create(user, "capulet.lit", [])
    await storage.accounts.create("romeo", "montague.lit", [])
    assert await storage.accounts.usernames("capulet.lit") == ["juliet", "nurse", "tybalt"]
    assert await storage.accounts.usernames("montague.lit") == ["romeo"]
    assert await storage.accounts.usernames("verona.lit") == []


# --- persistence ----------------------------------------------------------------------------------------


async def test_data_survives_close_and_reopen(backend: Backend, storage: Storage) -> None:
    if not backend.persistent:
        pytest.skip("the memory storage keeps nothing past close() by design")
    await storage.kv.set(JULIET, "vcard", "v")
    await storage.map.set(JULIET, "roster", ROMEO, b"r")
    refs = await fill(storage, 3)
    await storage.accounts.create("juliet", "capulet.lit", [scram("SCRAM-SHA-256", 3)])
    await storage.close()
    reopened = await open_storage(backend.url)  # runs the migrations again: must be a no-op
    try:
        assert await reopened.kv.get(JULIET, "vcard") == "v"
        assert await reopened.map.items(JULIET, "roster") == {ROMEO: b"r"}
        page = await reopened.archive.query(JULIET, "mam")
        assert [(i.id, i.when) for i in page.items] == [(r.id, r.when) for r in refs]
        newer = await reopened.archive.append(JULIET, "mam", "after reopen")
        assert newer.id > refs[-1].id
        account = await reopened.accounts.get("juliet", "capulet.lit")
        assert account is not None and account.credentials == (scram("SCRAM-SHA-256", 3),)
    finally:
        await reopened.close()


# --- backend specifics ----------------------------------------------------------------------------------


async def test_sqlite_runs_in_wal_mode_with_busy_timeout(backend: Backend, storage: Storage) -> None:
    if not backend.name.startswith("sqlite"):
        pytest.skip("SQLite pragmas")
    assert isinstance(storage, SQLStorage)

    def pragmas(conn: Connection) -> list[object]:
        return [conn.exec_driver_sql(f"PRAGMA {name}").scalar_one() for name in PRAGMAS]

    assert await storage.run_sync(pragmas) == ["wal", SQLITE_BUSY_TIMEOUT_MS, 1]


def test_url_schemes() -> None:
    assert sql_url("sqlite:////var/lib/jaybird/data.db") == "sqlite+pysqlite:////var/lib/jaybird/data.db"
    assert sql_url("sqlite+aiosqlite:///data.db") == "sqlite+aiosqlite:///data.db"
    assert sql_url("postgresql://u:p@db/jaybird") == "postgresql+asyncpg://u:p@db/jaybird"
    for bad in ("mysql://db/x", "sqlite://", "sqlite:///:memory:"):
        with pytest.raises(ValueError):
            sql_url(bad)


async def test_migrated_schema_matches_the_query_tables(backend: Backend, storage: Storage) -> None:
    """The tables the queries use (schema.py) and those the migrations build must not drift apart."""
    if backend.name == "memory":
        pytest.skip("no schema")

    def diff(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    assert isinstance(storage, SQLStorage)
    assert await storage.run_sync(diff) == []


async def test_sqlite_checkpoints_off_the_loop_after_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default SQLite storage never checkpoints in a statement on the loop (wal_autocheckpoint=0); a worker
    thread copies the WAL into the database file a while after writes."""
    monkeypatch.setattr(sql, "SQLITE_CHECKPOINT_DELAY", 0.05)
    path = tmp_path / "jaybird.db"
    storage = await open_storage(f"sqlite:///{path}")
    try:
        assert isinstance(storage, SQLStorage)
        assert [row[0] for row in await storage._db.fetch(text("PRAGMA wal_autocheckpoint"))] == [0]
        # Wait for the checkpoint the migrations' writes may have scheduled, then measure from there.
        await asyncio.sleep(0.3)
        before = path.stat().st_size
        # 6.4 MB: past the 1,000 pages (4 MB) at which SQLite's own auto-checkpoint would run.
        for i in range(400):
            await storage.kv.set(JULIET, f"blob{i}", bytes(16384))
        assert path.stat().st_size == before, "a checkpoint ran inside a write on the loop"
        for _ in range(100):  # bounded: 5 s
            if path.stat().st_size >= before + 400 * 16384:
                break
            await asyncio.sleep(0.05)
        assert path.stat().st_size >= before + 400 * 16384, "no checkpoint after the writes"
        assert len(await storage.kv.get(JULIET, "blob399") or b"") == 16384
    finally:
        await storage.close()


async def test_sqlite_failed_transaction_leaves_the_connection_usable(backend: Backend, storage: Storage) -> None:
    """A transaction that fails (here: a duplicate account) is rolled back whole, and the next calls work."""
    if not backend.name.startswith("sqlite"):
        pytest.skip("SQLite transactions")
    await storage.accounts.create("juliet", "capulet.lit", [scram("SCRAM-SHA-256", 1)])
    with pytest.raises(AccountExistsError):
        await storage.accounts.create("juliet", "capulet.lit", [scram("SCRAM-SHA-256", 2)])
    await storage.kv.set(JULIET, "after", "ok")
    assert await storage.kv.get(JULIET, "after") == "ok"
    account = await storage.accounts.get("juliet", "capulet.lit")
    assert account is not None and account.credentials == (scram("SCRAM-SHA-256", 1),)
