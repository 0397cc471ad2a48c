"""`jaybird serve` as a subprocess for interop tests: own config, SQLite data, log, certificate and loopback ports.

Third-party clients see it exactly as they would a deployed server: a separate process, reached over TCP,
presenting a certificate signed by a CA the test hands them. `restart()` keeps the data directory and the ports,
so a test can check what survives a graceful shutdown (offline messages, rosters).
"""

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.peers import Account
from tests.peers.certs import ca_and_leaf
from tests.peers.ports import free_port, port_accepts
from tests.peers.process import PeerProcess, terminate

LOOPBACK = "127.0.0.1"
#: The smallest count the configuration accepts (RFC 7677 §4): account creation and logins stay fast.
SCRAM_ITERATIONS = 4096

_START_ATTEMPTS = 3
# What `jaybird serve` says on stderr when a port cannot be bound (jaybird.server.listeners).
_PORT_TAKEN = "cannot listen on"


class _PortTaken(Exception):
    pass


class JaybirdError(RuntimeError):
    """The server did not start or stop as it should, or a `jaybird user` command failed; the message carries
    the tail of the server's log."""


class JaybirdServer(PeerProcess):
    """Start with `with JaybirdServer(tmp_path) as server:` (or `start()` / `stop()`).

    `command` is how to run the `jaybird` CLI (default: this interpreter with `-m jaybird.cli`, so the tests
    run the code of the work tree they import). `extra_toml` is appended to the generated configuration (top-level
    tables only, e.g. `"[limits]\\nidle_timeout_s = 5.0\\n"`).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        domain: str = "localhost",
        log_level: str = "info",
        extra_toml: str = "",
        start_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        command: tuple[str, ...] = (sys.executable, "-m", "jaybird.cli"),
    ) -> None:
        self._workdir = workdir.resolve()
        self._domain = domain
        self._log_level = log_level
        self._extra_toml = extra_toml
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._command = command
        self._pick_ports()
        self._process: subprocess.Popen[bytes] | None = None
        #: The exit status of the last process stop() ended (None before any; negative: killed by a signal).
        self.last_exit_code: int | None = None
        self.startup_seconds: float | None = None

    # -- where things are ---------------------------------------------------------------------------------

    @property
    def domain(self) -> str:
        return self._domain

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def c2s_port(self) -> int:
        """STARTTLS client port (RFC 6120 §5)."""
        return self._c2s_port

    @property
    def c2s_tls_port(self) -> int:
        """Direct-TLS client port (XEP-0368)."""
        return self._c2s_tls_port

    @property
    def config_file(self) -> Path:
        return self._workdir / "jaybird.toml"

    @property
    def data_dir(self) -> Path:
        return self._workdir / "data"

    @property
    def log_file(self) -> Path:
        """The server's stdout and stderr, appended to across restarts."""
        return self._workdir / "jaybird.log"

    # -- life cycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and return once both client ports accept connections.

        A free port can be taken by another process between `free_port()` and the server's bind; the server
        then exits naming the port, and the start is retried on fresh ports (only the first start may move:
        after that, clients know the ports).
        """
        if self._process is not None:
            raise JaybirdError("already started")
        began = time.monotonic()
        self._workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        if not self.ca_file.exists():
            ca_and_leaf(self._workdir / "certs", [self._domain, f"*.{self._domain}"], stem=self._domain)
        may_move = not self.config_file.exists()
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.config_file.write_text(self._config())
            try:
                self._launch(deadline=began + self._start_timeout)
                break
            except _PortTaken:
                self.stop()
                if not may_move or attempt == _START_ATTEMPTS:
                    raise JaybirdError(f"ports taken ({attempt} attempts)\n{self._log_tail()}") from None
                self._pick_ports()
            except (TimeoutError, RuntimeError) as exc:
                self.stop()
                raise JaybirdError(f"jaybird serve did not start: {exc}\n{self._log_tail()}") from exc
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `stop_timeout`. Safe to call twice."""
        process, self._process = self._process, None
        if process is None:
            return
        self.last_exit_code = terminate(process, self._stop_timeout)

    def restart(self) -> None:
        """A graceful stop (SIGTERM, exit status 0 required) and a start on the same data, ports and certificate."""
        self.stop()
        if self.last_exit_code != 0:
            raise JaybirdError(f"jaybird serve exited with {self.last_exit_code} on SIGTERM\n{self._log_tail()}")
        self.start()

    def add_user(self, local: str, password: str, *, timeout: float = 20.0) -> Account:
        """Create an account with `jaybird user add` (works while the server runs: SQLite in WAL mode)."""
        account = Account(local=local, domain=self._domain, password=password)
        if not self.config_file.exists():
            self._workdir.mkdir(parents=True, exist_ok=True)
            self.config_file.write_text(self._config())
        self.jaybird("user", "add", account.jid, "--password", password, timeout=timeout)
        return account

    def jaybird(self, *args: str, timeout: float = 20.0) -> str:
        """Run a `jaybird` command against this server's configuration; its stdout, or JaybirdError."""
        argv = [*self._command, *args, "--config", str(self.config_file)]
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, cwd=self._workdir, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise JaybirdError(f"jaybird {' '.join(args[:2])} took longer than {timeout} s") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise JaybirdError(f"jaybird {' '.join(args[:2])} exited with {done.returncode}:\n{output}")
        return done.stdout.decode(errors="replace")

    # -- internals ----------------------------------------------------------------------------------------

    def _launch(self, *, deadline: float) -> None:
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as log:
            log.write(f"=== jaybird serve started at {time.strftime('%H:%M:%S')} ===\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [*self._command, "serve", "--config", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._workdir,
                # Its own process group: a Ctrl-C aimed at pytest must not stop it before stop() runs.
                start_new_session=True,
            )
        # The server logs "listening for clients on 127.0.0.1 port N" once every listener is bound; polling
        # the log rather than connecting keeps the server's connection log free of probes.
        pending = {f"on {LOOPBACK} port {port}" for port in (self._c2s_port, self._c2s_tls_port)}
        while True:
            log_text = self._log_since(offset)
            pending = {line for line in pending if line not in log_text}
            if not pending:
                break
            if self._process.poll() is not None:
                if _PORT_TAKEN in log_text:
                    raise _PortTaken
                raise RuntimeError(f"jaybird serve exited with status {self._process.returncode}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no {sorted(pending)} in the log within {self._start_timeout} s")
            time.sleep(0.02)
        if not port_accepts(LOOPBACK, self._c2s_port):
            raise RuntimeError(f"port {self._c2s_port} logged as listening but refuses connections")

    def _log_since(self, offset: int) -> str:
        with self.log_file.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def _pick_ports(self) -> None:
        self._c2s_port = free_port(LOOPBACK)
        self._c2s_tls_port = free_port(LOOPBACK)
        while self._c2s_tls_port == self._c2s_port:
            self._c2s_tls_port = free_port(LOOPBACK)

    def _log_tail(self, lines: int = 40) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return f"--- {self.log_file.name} ---\n" + "\n".join(tail)

    def _config(self) -> str:
        certs = self._workdir / "certs"
        return (
            f"data_dir = {json.dumps(str(self.data_dir))}\n"
            f"[storage]\nurl = {json.dumps('sqlite:///' + str(self.data_dir / 'jaybird.sqlite3'))}\n"
            f"[auth]\nscram_iterations = {SCRAM_ITERATIONS}\n"
            f"[listeners.c2s]\nport = {self._c2s_port}\ntls_port = {self._c2s_tls_port}\n"
            f"interfaces = [{json.dumps(LOOPBACK)}]\n"
            f"[logging]\nlevel = {json.dumps(self._log_level)}\n"
            f"{self._extra_toml}\n"
            f"[[hosts]]\ndomain = {json.dumps(self._domain)}\n"
            f"[hosts.tls]\ncert_file = {json.dumps(str(certs / f'{self._domain}.crt'))}\n"
            f"key_file = {json.dumps(str(certs / f'{self._domain}.key'))}\n"
        )


@dataclass(frozen=True, slots=True)
class JaybirdWithAccounts:
    """A started server and two accounts on it (what a fixture hands to tests)."""

    server: JaybirdServer
    juliet: Account
    romeo: Account
