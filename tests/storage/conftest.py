"""Backends for the storage contract suite: memory, an SQLite file, and a private PostgreSQL server.

The PostgreSQL server is started once per test session (``initdb`` into a temporary directory, loopback port,
unix socket in that directory) and each test gets a database of its own. Without PostgreSQL binaries its
tests skip, unless ``CI`` is set: there a missing server is a failure, not a silent gap.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from jaybird.server.storage import Storage, open_storage

PG_START_TIMEOUT = 30  # seconds, for initdb, pg_ctl start and pg_ctl stop each
PG_START_ATTEMPTS = 3  # a free port can be taken between probing it and binding it


@dataclass(frozen=True)
class Backend:
    name: str
    url: str
    persistent: bool


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> NoReturn:
    if _in_ci():
        pytest.fail(f"PostgreSQL is required when CI is set: {reason}")
    pytest.skip(reason)


def _pg_bindir() -> Path | None:
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).resolve().parent
    # Debian keeps the server binaries off PATH, one directory per major version.
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return candidates[-1].parent if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """A throwaway PostgreSQL cluster; as root it runs as the ``postgres`` user (initdb refuses root)."""

    def __init__(self, bindir: Path, runas: pwd.struct_passwd | None) -> None:
        self.bindir = bindir
        self.runas = runas
        self.root = Path(tempfile.mkdtemp(prefix="jaybird-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "server.log"
        self.sockets.mkdir()
        if runas is not None:
            for path in (self.root, self.sockets):
                os.chown(path, runas.pw_uid, runas.pw_gid)
        self.port = 0
        self._databases = itertools.count(1)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.runas is not None:
            command = ["runuser", "-u", self.runas.pw_name, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=PG_START_TIMEOUT + 10, check=False)

    def start(self) -> None:
        done = self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()}")
        for _attempt in range(PG_START_ATTEMPTS):
            self.port = _free_port()
            # A test database needs no crash safety: skipping fsync makes CREATE DATABASE and commits fast.
            options = (
                f"-h 127.0.0.1 -p {self.port} -k {self.sockets} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            done = self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(PG_START_TIMEOUT),
                "-o",
                options,
                "start",
            )
            if done.returncode == 0:
                return
        log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {done.stderr.strip()}\n{log}")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", str(PG_START_TIMEOUT), "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self) -> str:
        name = f"jaybird_test_{next(self._databases)}"
        admin = create_async_engine(self.url("postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            async with admin.connect() as conn:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            await admin.dispose()
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = _pg_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        _unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's postgresql package")
    runas = None
    if os.geteuid() == 0:
        try:
            runas = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' user to run PostgreSQL as")
        if shutil.which("runuser") is None:
            _unavailable("running as root and runuser is missing")
    server = PostgresServer(bindir, runas)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["memory", "sqlite", "sqlite-thread", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    name: str = request.param
    if name == "memory":
        yield Backend(name, "memory://", persistent=False)
    elif name == "sqlite":  # on the event loop's thread, the default
        yield Backend(name, f"sqlite:///{tmp_path / 'jaybird.db'}", persistent=True)
    elif name == "sqlite-thread":
        yield Backend(name, f"sqlite+aiosqlite:///{tmp_path / 'jaybird.db'}", persistent=True)
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        yield Backend(name, await server.create_database(), persistent=True)


@pytest.fixture
async def storage(backend: Backend) -> AsyncIterator[Storage]:
    opened = await open_storage(backend.url)
    try:
        yield opened
    finally:
        await opened.close()
