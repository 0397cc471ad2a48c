"""A private Prosody instance for interop tests: own config, data, log, certificate and loopback ports.

Nothing here touches the system-wide Prosody (/etc/prosody, /var/lib/prosody): every path in the generated
config is absolute and lives in the work directory the caller hands in.
"""

import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from tests.peers import Account
from tests.peers.certs import ca_and_leaf
from tests.peers.ports import free_port, wait_for_port
from tests.peers.process import PeerProcess, terminate

LOOPBACK = "127.0.0.1"

# What the jaybird client tests talk to, on top of what Prosody loads anyway (c2s, presence, message, iq,
# offline, posix). In-band registration stays off: accounts are made with prosodyctl.
DEFAULT_MODULES = (
    "roster",
    "saslauth",
    "tls",
    "disco",
    "ping",
    "time",
    "version",
    "carbons",
    "blocklist",
    "vcard4",
    "vcard_legacy",
    "private",
    "pep",
)
HTTP_MODULES = ("http", "bosh", "websocket")

LuaValue: TypeAlias = "str | int | bool | Sequence[LuaValue] | Mapping[str, LuaValue]"


_START_ATTEMPTS = 3
_PORT_IN_USE = "this port is in use by another application"


class _PortTaken(Exception):
    pass


class ProsodyError(RuntimeError):
    """Prosody did not start, or prosodyctl failed; the message carries the tail of its output."""


def lua(value: LuaValue) -> str:
    """`value` as a Lua literal (config files are Lua)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if any(ord(ch) < 0x20 for ch in value):
            raise ValueError(f"control character in config string {value!r}")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Mapping):
        return "{ " + " ".join(f"[{lua(k)}] = {lua(v)};" for k, v in value.items()) + " }"
    return "{ " + " ".join(f"{lua(v)};" for v in value) + " }"


class ProsodyServer(PeerProcess):
    """Start with `with ProsodyServer(tmp_path) as server:` (or `start()` / `stop()`).

    `ssl_protocol` is handed to Prosody's `ssl.protocol` (LuaSec names such as "tlsv1_2"); Prosody 0.12 only
    knows the `tls-unique` channel binding, which TLS 1.3 lacks, so SCRAM-*-PLUS is offered only when TLS is
    capped at 1.2. `password_hash` picks the SCRAM hash stored for accounts ("SHA-1" or "SHA-256"), which is
    the only SCRAM mechanism Prosody can offer for them.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        domain: str = "localhost",
        direct_tls: bool = True,
        s2s: bool = False,
        http: bool = False,
        modules: Sequence[str] = DEFAULT_MODULES,
        extra_modules: Sequence[str] = (),
        password_hash: str = "SHA-1",
        ssl_protocol: str | None = None,
        extra_hosts: Sequence[str] = (),
        components: Mapping[str, str] | None = None,
        log_level: str = "info",
        start_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        prosody_binary: str = "prosody",
        prosodyctl_binary: str = "prosodyctl",
    ) -> None:
        self._workdir = workdir.resolve()
        self._domain = domain
        self._modules = [*modules, *extra_modules, *(HTTP_MODULES if http else ())]
        self._password_hash = password_hash
        self._ssl_protocol = ssl_protocol
        # Further virtual hosts present the main domain's certificate: a certificate name mismatch for clients.
        self._extra_hosts = tuple(extra_hosts)
        # XEP-0114 external components: name -> shared secret, all on one component port.
        self._components = dict(components or {})
        self._log_level = log_level
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._prosody = prosody_binary
        self._prosodyctl = prosodyctl_binary
        self._direct_tls, self._s2s, self._http = direct_tls, s2s, http
        self._pick_ports()
        self._process: subprocess.Popen[bytes] | None = None
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
        if self._c2s_tls_port is None:
            raise ProsodyError("started without direct TLS")
        return self._c2s_tls_port

    @property
    def s2s_port(self) -> int:
        if self._s2s_port is None:
            raise ProsodyError("started without s2s")
        return self._s2s_port

    @property
    def http_port(self) -> int:
        """Plain-HTTP port serving BOSH at /http-bind and WebSocket at /xmpp-websocket."""
        if self._http_port is None:
            raise ProsodyError("started without http")
        return self._http_port

    @property
    def component_port(self) -> int:
        """The XEP-0114 component port (plain TCP, loopback only)."""
        if self._component_port is None:
            raise ProsodyError("started without components")
        return self._component_port

    @property
    def config_file(self) -> Path:
        return self._workdir / "prosody.cfg.lua"

    @property
    def data_dir(self) -> Path:
        return self._workdir / "data"

    @property
    def log_file(self) -> Path:
        return self._workdir / "prosody.log"

    @property
    def console_file(self) -> Path:
        """Prosody's stdout and stderr (errors before its logging is set up end up here)."""
        return self._workdir / "console.log"

    # -- life cycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start Prosody and return once every port it was given accepts connections.

        A free port can be taken by another process between `free_port()` and Prosody's bind; Prosody then
        logs the failure and runs on without that port, so the log is checked and the start retried on
        fresh ports.
        """
        if self._process is not None:
            raise ProsodyError("already started")
        binary = shutil.which(self._prosody)
        if binary is None:
            raise ProsodyError(f"{self._prosody!r} not found on PATH")
        began = time.monotonic()
        self._workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        certs = ca_and_leaf(self._workdir / "certs", [self._domain, f"*.{self._domain}"], stem=self._domain)
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.config_file.write_text(self._config(certs.cert, certs.key))
            self.log_file.unlink(missing_ok=True)
            try:
                self._launch(binary, deadline=began + self._start_timeout)
                break
            except _PortTaken:
                self.stop()
                if attempt == _START_ATTEMPTS:
                    raise ProsodyError(f"ports taken {attempt} times\n{self._output_tail()}") from None
                self._pick_ports()
            except (TimeoutError, RuntimeError) as exc:
                self.stop()
                raise ProsodyError(f"Prosody did not start: {exc}\n{self._output_tail()}") from exc
        self.startup_seconds = time.monotonic() - began

    def _launch(self, binary: str, *, deadline: float) -> None:
        with self.console_file.open("wb") as console:
            self._process = subprocess.Popen(
                [binary, "-F", "--config", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=self._workdir,
                # Its own process group: a Ctrl-C aimed at pytest must not kill it before stop() runs.
                start_new_session=True,
            )
        # Prosody logs "Activated service 'c2s' on [127.0.0.1]:PORT" once it listens there.
        pending = {f"on [{LOOPBACK}]:{port}" for port in self._ports()}
        while True:
            log = self.log_text()
            if _PORT_IN_USE in log:
                raise _PortTaken
            pending = {line for line in pending if line not in log}
            if not pending:
                break
            if self._process.poll() is not None:
                raise RuntimeError(f"prosody exited with status {self._process.returncode}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no {sorted(pending)} in the log within {self._start_timeout} s")
            time.sleep(0.02)
        wait_for_port(LOOPBACK, self._c2s_port, timeout=max(0.1, deadline - time.monotonic()))

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `stop_timeout`. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            terminate(process, self._stop_timeout)

    def add_user(self, local: str, password: str, *, timeout: float = 20.0) -> Account:
        """Create (or overwrite) an account with prosodyctl; works while the server runs."""
        self._prosodyctl_run(["register", local, self._domain, password], timeout=timeout)
        return Account(local=local, domain=self._domain, password=password)

    # -- internals ----------------------------------------------------------------------------------------

    def _pick_ports(self) -> None:
        self._c2s_port = free_port(LOOPBACK)
        self._c2s_tls_port = free_port(LOOPBACK) if self._direct_tls else None
        self._s2s_port = free_port(LOOPBACK) if self._s2s else None
        self._http_port = free_port(LOOPBACK) if self._http else None
        self._component_port = free_port(LOOPBACK) if self._components else None

    def _ports(self) -> list[int]:
        optional = (self._c2s_tls_port, self._s2s_port, self._http_port, self._component_port)
        return [self._c2s_port, *(port for port in optional if port is not None)]

    def _prosodyctl_run(self, args: list[str], *, timeout: float) -> None:
        binary = shutil.which(self._prosodyctl)
        if binary is None:
            raise ProsodyError(f"{self._prosodyctl!r} not found on PATH")
        try:
            done = subprocess.run(
                [binary, "--config", str(self.config_file), *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                cwd=self._workdir,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ProsodyError(f"prosodyctl {args[0]} took longer than {timeout} s") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise ProsodyError(f"prosodyctl {args[0]} exited with {done.returncode}:\n{output}")

    def _output_tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.console_file, self.log_file):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def _config(self, cert: Path, key: Path) -> str:
        ssl: dict[str, LuaValue] = {"certificate": str(cert), "key": str(key)}
        if self._ssl_protocol is not None:
            ssl["protocol"] = self._ssl_protocol
        settings: dict[str, LuaValue] = {
            # Prosody refuses to run as root unless told; these instances only listen on loopback and
            # only write into the work directory, and prosodyctl then writes the same files as the same
            # user instead of switching to the `prosody` user (which could not read a private tmp dir).
            "run_as_root": os.geteuid() == 0,
            "data_path": str(self.data_dir),
            "pidfile": str(self._workdir / "prosody.pid"),
            "log": [{"levels": {"min": self._log_level}, "to": "file", "filename": str(self.log_file)}],
            "interfaces": [LOOPBACK],
            "local_interfaces": [LOOPBACK],
            "c2s_ports": [self._c2s_port],
            "c2s_direct_tls_ports": [] if self._c2s_tls_port is None else [self._c2s_tls_port],
            "s2s_ports": [] if self._s2s_port is None else [self._s2s_port],
            "s2s_direct_tls_ports": [],
            "http_ports": [] if self._http_port is None else [self._http_port],
            "https_ports": [],
            "http_interfaces": [LOOPBACK],
            "component_ports": [] if self._component_port is None else [self._component_port],
            "component_interfaces": [LOOPBACK],
            "legacy_ssl_ports": [],
            "modules_enabled": self._modules,
            "modules_disabled": [] if self._s2s_port is not None else ["s2s"],
            "ssl": ssl,
            # Look for no certificates in /etc/prosody/certs.
            "certificates": str(self._workdir / "certs"),
            "c2s_require_encryption": True,
            "s2s_require_encryption": True,
            "authentication": "internal_hashed",
            "password_hash": self._password_hash,
            "storage": "internal",
            "allow_registration": False,
            "consider_bosh_secure": True,
            "consider_websocket_secure": True,
            "cross_domain_bosh": True,
            "cross_domain_websocket": True,
        }
        body = "".join(f"{name} = {lua(value)}\n" for name, value in settings.items())
        hosts = "".join(f"\nVirtualHost {lua(host)}\n" for host in (self._domain, *self._extra_hosts))
        components = "".join(
            f"\nComponent {lua(name)}\n    component_secret = {lua(secret)}\n"
            for name, secret in self._components.items()
        )
        return body + hosts + components


@dataclass(frozen=True, slots=True)
class ProsodyWithAccounts:
    """A started server and two accounts on it (what the session fixture hands to tests)."""

    server: ProsodyServer
    juliet: Account
    romeo: Account
