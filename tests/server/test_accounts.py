"""Accounts keep SCRAM verifiers only (RFC 5802 §3), never the password; modules are found by name."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jaybird.errors import ConfigError
from jaybird.jid import JID
from jaybird.server.app import Server
from jaybird.server.auth import FailedLoginThrottle, add_user, change_password, credentials_for
from jaybird.server.config import ThrottleConfig
from jaybird.server.storage import open_storage
from tests.server.conftest import ServerFactory, server_config

PASSWORD = "correct horse battery staple"


async def test_stored_account_has_no_password(tmp_path: Path) -> None:
    db = tmp_path / "accounts.sqlite3"
    storage = await open_storage(f"sqlite+aiosqlite:///{db}")
    try:
        await add_user(storage, JID("juliet@localhost"), PASSWORD, iterations=4096)
        account = await storage.accounts.get("juliet", "localhost")
        assert account is not None
        assert {c.mechanism for c in account.credentials} == {"SCRAM-SHA-1", "SCRAM-SHA-256"}
        for cred in account.credentials:
            assert cred.iterations == 4096 and len(cred.salt) >= 12
            assert PASSWORD.encode() not in cred.stored_key + cred.server_key + cred.salt
        creds = await credentials_for(storage, "juliet", "localhost")
        assert creds is not None and len(creds) == 2
        await change_password(storage, JID("juliet@localhost"), "another one", iterations=5000)
        changed = await storage.accounts.get("juliet", "localhost")
        assert changed is not None and {c.iterations for c in changed.credentials} == {5000}
    finally:
        await storage.close()
    raw = db.read_bytes()
    assert PASSWORD.encode() not in raw and b"another one" not in raw
    with sqlite3.connect(db) as conn:
        tables = [row[0] for row in conn.execute("select name from sqlite_master where type='table'")]
    assert tables


def test_throttle_window() -> None:
    now = [0.0]
    throttle = FailedLoginThrottle(ThrottleConfig(limit=2, period_s=10.0), clock=lambda: now[0])
    throttle.record_failure("192.0.2.1")
    assert not throttle.blocked("192.0.2.1")
    throttle.record_failure("192.0.2.1")
    assert throttle.blocked("192.0.2.1") and not throttle.blocked("192.0.2.2")
    now[0] = 10.5
    assert not throttle.blocked("192.0.2.1")


async def test_unknown_module_is_a_config_error_naming_it(tmp_path: Path) -> None:
    config, _, _ = server_config(tmp_path, modules=["roster", "no_such_module"])
    server = Server(config)
    with pytest.raises(ConfigError, match="no_such_module"):
        await server.start()


async def test_default_modules_load_and_unload(start_server: ServerFactory) -> None:
    running = await start_server(modules=None)
    host = running.server.hosts["localhost"]
    assert host.loaded_modules, "the default module list loads"
    names = [type(m).name for m in host.loaded_modules]
    assert "roster" in names and "presence" in names
    await running.server.stop()
    assert not host.loaded_modules
