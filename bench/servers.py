"""The servers under test, started alike: same domain, same accounts (same password), a plain c2s port on which
STARTTLS is offered but optional and PLAIN is allowed without TLS, no rate limits or traffic shaping, each
pinned to CPU core 0 (the load generator runs on core 1).

Prosody and ejabberd come from the test fixtures (tests/peers); jaybird runs as `jaybird serve` with a
generated config and is skipped with a message when it does not start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from bench.loadgen import ProcessMeter, Progress, Target, raise_open_files_limit
from tests.peers.certs import ca_and_leaf
from tests.peers.ejabberd import EjabberdServer
from tests.peers.ejabberd import installed as ejabberd_installed
from tests.peers.ports import free_port, wait_for_port
from tests.peers.process import terminate
from tests.peers.prosody import LuaValue, ProsodyServer, lua

DOMAIN = "localhost"
PASSWORD = "bench-password"
SERVER_CORE = 0
GENERATOR_CORE = 1
SCRAM_ITERATIONS = 4096


class ServerUnavailable(Exception):
    """The server is not installed or did not start; the harness skips it and says why."""


class BenchServer(Protocol):
    name: str
    #: The core the server is pinned to, or None when it may use every core (the multi-core figure).
    core: int | None

    @property
    def target(self) -> Target: ...
    @property
    def pid(self) -> int: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def ensure_accounts(self, users: Sequence[str]) -> None: ...
    def make_mutual(self, hub: str, contacts: Sequence[str]) -> None: ...


def pin(pid: int, core: int) -> None:
    """Every thread of `pid` onto `core` (for servers whose start command cannot be prefixed with taskset)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), {core})


def prepare_generator(progress: Progress) -> None:
    """The load generator's side of every run: as many open files as allowed, and its own core."""
    limit = raise_open_files_limit()
    if usable_cores() > 1:
        os.sched_setaffinity(0, {GENERATOR_CORE})
    progress.step(f"open files limit {limit}; generator on core {sorted(os.sched_getaffinity(0))}")


# Read once, before `prepare_generator` narrows this process to its own core: asked later, the answer would be
# one core, and the servers would silently share the generator's.
_MACHINE_CORES = frozenset(os.sched_getaffinity(0))


def usable_cores() -> int:
    return len(_MACHINE_CORES)


def expected_cores(core: int | None) -> frozenset[int]:
    """Where a server must run: its one core, or every core of the machine (the multi-core figure)."""
    return _MACHINE_CORES if core is None else frozenset({core})


def check_pinned(name: str, pid: int, core: int | None) -> None:
    """Refuse to measure a server that does not run where the table says it does: every thread of it and of
    its child processes (worker processes) on `core`, or on every core when `core` is None (a server the
    generator starts inherits the generator's one core unless it is told otherwise)."""
    if usable_cores() < 2:
        return
    expected = expected_cores(core)
    for process in ProcessMeter(pid).pids():
        for task in os.listdir(f"/proc/{process}/task"):
            actual = os.sched_getaffinity(int(task))
            if actual != expected:
                raise ServerUnavailable(
                    f"{name} (process {process}, thread {task}) runs on cores {sorted(actual)}, "
                    f"not on {sorted(expected)}"
                )


def _taskset(core: int | None) -> tuple[str, ...]:
    """The command prefix that runs a server on `core` (None: on every core, not the generator's alone)."""
    if shutil.which("taskset") is None or usable_cores() < 2:
        return ()
    return ("taskset", "-c", ",".join(map(str, sorted(expected_cores(core)))))


# -- Prosody ------------------------------------------------------------------------------------------------


class _BenchProsody(ProsodyServer):
    """The fixture's Prosody with encryption optional; mod_limits stays unloaded, so no rate limits. Nagle off
    (``net.server_epoll`` defaults to ``nagle = true``), as jaybird (asyncio sets TCP_NODELAY) and ejabberd
    (its listeners set ``nodelay``) run: with Nagle, every reply that waits for a delayed ACK costs ~40 ms."""

    #: Extra global options (the ``prosody-gengc`` variant sets Lua's garbage collector).
    extra_options: dict[str, LuaValue] = {}

    def _config(self, cert: Path, key: Path) -> str:
        text = super()._config(cert, key)
        overrides: dict[str, LuaValue] = {
            "c2s_require_encryption": False,
            "allow_unencrypted_plain_auth": True,
            "network_settings": {"nagle": False},
            **self.extra_options,
        }
        extra = "".join(f"{name} = {lua(value)}\n" for name, value in overrides.items())
        # Global options must come before the first VirtualHost section.
        head, sep, hosts = text.partition("\nVirtualHost ")
        return head + "\n" + extra + sep + hosts


class ProsodyBench:
    name = "prosody"
    core: int | None = SERVER_CORE
    options: dict[str, LuaValue] = {}

    def __init__(self, workdir: Path) -> None:
        if shutil.which("prosody") is None:
            raise ServerUnavailable("prosody is not installed (scripts/install-peers.sh)")
        self._server = _BenchProsody(workdir, domain=DOMAIN, direct_tls=False, modules=("roster", "saslauth", "tls",
                                     "disco", "ping"))  # fmt: skip
        self._server.extra_options = self.options
        self._accounts: set[str] = set()

    @property
    def target(self) -> Target:
        return Target(self._server.host, self._server.c2s_port, DOMAIN)

    @property
    def pid(self) -> int:
        pid = self._server.pid
        if pid is None:
            raise ServerUnavailable("prosody is not running")
        return pid

    def start(self) -> None:
        self._server.start()
        if _taskset(SERVER_CORE):
            pin(self.pid, SERVER_CORE)

    def stop(self) -> None:
        self._server.stop()

    def _store(self, kind: str) -> Path:
        # Prosody's internal storage: <data_path>/<host>/<store>/<user>.dat, names %-encoded (none needed here).
        path = self._server.data_dir / DOMAIN / kind
        path.mkdir(parents=True, exist_ok=True)
        return path

    def ensure_accounts(self, users: Sequence[str]) -> None:
        """Account files written directly (prosodyctl takes ~0.3 s per account); Prosody reads them at login.
        One salt for all: the keys are then computed once, and the server's work per login is unchanged."""
        salt = b"bench-salt-0001"
        salted = hashlib.pbkdf2_hmac("sha1", PASSWORD.encode(), salt, SCRAM_ITERATIONS)
        client_key = hmac.new(salted, b"Client Key", "sha1").digest()
        record: dict[str, LuaValue] = {
            "iteration_count": SCRAM_ITERATIONS,
            "salt": salt.decode(),
            "stored_key": hashlib.sha1(client_key).hexdigest(),
            "server_key": hmac.new(salted, b"Server Key", "sha1").hexdigest(),
        }
        text = f"return {lua(record)};\n"
        accounts = self._store("accounts")
        for user in users:
            if user not in self._accounts:
                (accounts / f"{user}.dat").write_text(text)
                self._accounts.add(user)

    def make_mutual(self, hub: str, contacts: Sequence[str]) -> None:
        rosters = self._store("roster")

        def item(name: str) -> dict[str, object]:
            return {"subscription": "both", "groups": {}, "name": name}

        hub_roster = {f"{c}@{DOMAIN}": item(c) for c in contacts}
        (rosters / f"{hub}.dat").write_text(_roster_lua(hub_roster))
        for contact in contacts:
            (rosters / f"{contact}.dat").write_text(_roster_lua({f"{hub}@{DOMAIN}": item(hub)}))


def _roster_lua(items: dict[str, dict[str, object]]) -> str:
    entries = "".join(
        f'[{lua(jid)}] = {{ ["subscription"] = {lua(str(v["subscription"]))}; ["groups"] = {{}}; '
        f'["name"] = {lua(str(v["name"]))}; }};\n'
        for jid, v in items.items()
    )
    # The [false] entry is the roster's metadata (its version).
    return f'return {{\n[false] = {{ ["version"] = 1; }};\n{entries}}};\n'


# -- ejabberd -----------------------------------------------------------------------------------------------


class EjabberdBench:
    name = "ejabberd"
    core: int | None = SERVER_CORE

    def __init__(self, workdir: Path) -> None:
        if shutil.which("erl") is None or not ejabberd_installed():
            raise ServerUnavailable("ejabberd is not installed (scripts/install-peers.sh)")
        self._server = EjabberdServer(
            workdir,
            domain=DOMAIN,
            direct_tls=False,
            starttls_required=False,
            modules={"mod_roster": {}, "mod_disco": {}, "mod_ping": {}, "mod_http_api": {}, "mod_admin_extra": {}},
            command_prefix=_taskset(SERVER_CORE),
        )
        self._accounts: set[str] = set()

    @property
    def target(self) -> Target:
        return Target(self._server.host, self._server.c2s_port, DOMAIN)

    @property
    def pid(self) -> int:
        pid = self._server.pid
        if pid is None:
            raise ServerUnavailable("ejabberd is not running")
        return pid

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def ensure_accounts(self, users: Sequence[str]) -> None:
        missing = [u for u in users if u not in self._accounts]
        with ThreadPoolExecutor(8) as pool:
            for user in pool.map(lambda u: self._server.add_user(u, PASSWORD).local, missing):
                self._accounts.add(user)

    def make_mutual(self, hub: str, contacts: Sequence[str]) -> None:
        def both(contact: str) -> None:
            self._server.add_roster_item(hub, contact)
            self._server.add_roster_item(contact, hub)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(both, contacts))


# -- jaybird ------------------------------------------------------------------------------------------------


class JaybirdBench:
    """`jaybird serve` with a generated TOML config, accounts made with `jaybird user add`."""

    name = "jaybird"
    core: int | None = SERVER_CORE
    workers = 1

    def __init__(self, workdir: Path, *, start_timeout: float = 20.0) -> None:
        self._workdir = workdir.resolve()
        self._binary = shutil.which("jaybird", path=str(Path(sys.executable).parent)) or shutil.which("jaybird")
        if self._binary is None:
            raise ServerUnavailable("the jaybird command is not installed in the venv")
        self._port = free_port()
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._accounts: set[str] = set()

    @property
    def config_file(self) -> Path:
        return self._workdir / "jaybird.toml"

    @property
    def target(self) -> Target:
        return Target("127.0.0.1", self._port, DOMAIN)

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServerUnavailable("jaybird is not running")
        return self._process.pid

    def _write_config(self) -> None:
        certs = ca_and_leaf(self._workdir / "certs", [DOMAIN], stem=DOMAIN)
        self.config_file.write_text(
            f'data_dir = "{self._workdir / "data"}"\nworkers = {self.workers}\n\n'
            f'[[hosts]]\ndomain = "{DOMAIN}"\n\n'
            f'[listeners.c2s]\nport = {self._port}\ntls_port = {free_port()}\ninterfaces = ["127.0.0.1"]\n\n'
            f'[tls]\ncert_file = "{certs.cert}"\nkey_file = "{certs.key}"\nallow_plain_on_loopback = true\n\n'
            f'[storage]\nurl = "sqlite:///{self._workdir / "jaybird.sqlite"}"\n\n'
            # Like the other servers: no limits for the test users (thousands of loopback connections, full speed).
            "[limits]\nc2s_rate_bytes_per_s = 1073741824\nmax_connections_per_ip = 1000000\n"
        )

    def start(self) -> None:
        self._workdir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        log = self._workdir / "console.log"
        assert self._binary is not None
        with log.open("wb") as console:
            self._process = subprocess.Popen(
                [*_taskset(self.core), self._binary, "serve", "--config",
                 str(self.config_file)],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, cwd=self._workdir,
                start_new_session=True,
            )  # fmt: skip
        process = self._process
        try:
            wait_for_port("127.0.0.1", self._port, timeout=self._start_timeout,
                          keep_waiting=lambda: process.poll() is None)  # fmt: skip
        except (TimeoutError, RuntimeError) as exc:
            self.stop()
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise ServerUnavailable(f"`jaybird serve` did not start: {exc}\n{tail}") from exc

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            terminate(process, 10)

    def ensure_accounts(self, users: Sequence[str]) -> None:
        """Accounts written straight into the server's store, as for Prosody (``jaybird user add`` is a process
        per account). One salt for all, so the keys are computed once; the server's work per login is unchanged."""
        missing = [user for user in users if user not in self._accounts]
        if missing:
            asyncio.run(self._create_accounts(missing))
            self._accounts.update(missing)

    async def _create_accounts(self, users: Sequence[str]) -> None:
        from jaybird.sasl import make_scram_credentials
        from jaybird.server.storage import AccountExistsError, StoredCredentials, open_storage

        credentials = []
        for family in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
            made = make_scram_credentials(PASSWORD, family, SCRAM_ITERATIONS, salt=b"bench-salt-0001")
            credentials.append(
                StoredCredentials(made.mechanism, made.salt, made.iterations, made.stored_key, made.server_key)
            )
        storage = await open_storage(f"sqlite:///{self._workdir / 'jaybird.sqlite'}")
        try:
            for user in users:
                with contextlib.suppress(AccountExistsError):
                    await storage.accounts.create(user, DOMAIN, credentials)
        finally:
            await storage.close()

    def make_mutual(self, hub: str, contacts: Sequence[str]) -> None:
        """Rosters written straight into the store the roster module reads (``jaybird.ext.roster.store``):
        each side lists the other with subscription both. Written while the server is stopped or before its
        first read of these rosters (the module caches nothing it has not read)."""
        asyncio.run(self._write_mutual(hub, contacts))

    async def _write_mutual(self, hub: str, contacts: Sequence[str]) -> None:
        from jaybird.ext.presence.subscription import SubscriptionState
        from jaybird.ext.roster.store import RosterEntry, RosterStore
        from jaybird.jid import JID
        from jaybird.server.storage import open_storage

        both = SubscriptionState(to=True, from_=True)
        hub_jid = JID(f"{hub}@{DOMAIN}")
        storage = await open_storage(f"sqlite:///{self._workdir / 'jaybird.sqlite'}")
        try:
            rosters = RosterStore(storage)
            for contact in contacts:
                contact_jid = JID(f"{contact}@{DOMAIN}")
                await rosters.put(hub_jid, RosterEntry(contact_jid, name=contact, state=both))
                await rosters.put(contact_jid, RosterEntry(hub_jid, name=hub, state=both))
                await rosters.bump(contact_jid)
            await rosters.bump(hub_jid)
        finally:
            await storage.close()


class JaybirdWorkersBench(JaybirdBench):
    """jaybird with two worker processes on both cores (the generator shares core 1): the multi-core figure,
    reported beside the one-core `jaybird` row, never in the per-core comparison."""

    name = "jaybird-2w"
    core: int | None = None
    workers = 2

    def start(self) -> None:
        super().start()
        # The port answers once one worker listens; the run starts when every worker is linked and listening.
        log = self._workdir / "console.log"
        deadline = time.monotonic() + self._start_timeout
        while f"all {self.workers} workers ready" not in log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                self.stop()
                raise ServerUnavailable(f"jaybird did not report its {self.workers} workers ready")
            time.sleep(0.1)


class ProsodyGenerationalBench(ProsodyBench):
    """Prosody with Lua's generational garbage collector instead of its default (incremental, pause 105 %):
    not in the default run, it shows how much of Prosody's throughput its collector takes (docs/benchmarks.md)."""

    name = "prosody-gengc"
    options: dict[str, LuaValue] = {"gc": {"mode": "generational"}}


FACTORIES: dict[str, Callable[[Path], BenchServer]] = {
    "prosody": ProsodyBench,
    "prosody-gengc": ProsodyGenerationalBench,
    "ejabberd": EjabberdBench,
    "jaybird": JaybirdBench,
    "jaybird-2w": JaybirdWorkersBench,
}
