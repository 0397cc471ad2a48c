"""A private ejabberd instance for interop tests and benchmarks: own config, spool, logs, certificate and
loopback ports.

The Erlang VM runs without distribution (no node name), so it needs no epmd. It is still given
`ERL_EPMD_ADDRESS=127.0.0.1` and a private `ERL_EPMD_PORT`: should anything in the VM start an epmd anyway,
it listens on loopback on a port nobody else uses, and `stop()` can end exactly that one.

Accounts and roster items are made through `mod_http_api` on a loopback HTTP port (ejabberdctl would need
distribution). Nothing here reads or writes /etc/ejabberd or /var/lib/ejabberd.
"""

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.peers import Account
from tests.peers.certs import ca_and_leaf
from tests.peers.ports import free_port, port_accepts, wait_for_port
from tests.peers.process import PeerProcess, terminate

LOOPBACK = "127.0.0.1"
# Where Debian installs ejabberd's own OTP applications (ejabberdctl sets the same ERL_LIBS).
DEBIAN_ERL_LIBS = "/usr/lib/x86_64-linux-gnu"

DEFAULT_MODULES: Mapping[str, Mapping[str, Any]] = {
    "mod_roster": {},
    "mod_disco": {},
    "mod_ping": {},
    "mod_time": {},
    "mod_version": {"show_os": False},
    "mod_carboncopy": {},
    "mod_blocking": {},
    "mod_privacy": {},
    "mod_private": {},
    "mod_vcard": {},
    "mod_offline": {},
    "mod_http_api": {},
    "mod_admin_extra": {},
}

_START_ATTEMPTS = 3
_PORT_IN_USE = ("eaddrinuse", "address already in use")


class _PortTaken(Exception):
    pass


def installed() -> bool:
    """Whether Debian's ejabberd (its OTP applications) is there for `erl` to load."""
    return any(Path(DEBIAN_ERL_LIBS).glob("ejabberd-*/ebin/ejabberd.app"))


class EjabberdError(RuntimeError):
    """ejabberd did not start, or an HTTP API call failed; the message carries the tail of its logs."""


class EjabberdServer(PeerProcess):
    """Start with `with EjabberdServer(tmp_path) as server:` (or `start()` / `stop()`).

    `starttls_required=False` lets clients log in over plain TCP (PLAIN included), the setting benchmarks
    compare; tests keep the default. `command_prefix` runs the VM under another program (for instance
    `("taskset", "-c", "0")`: the VM then starts one scheduler per core it may use). Traffic shaping is off
    on every listener (`shaper: none`), and `max_fsm_queue` is raised so a fast sender is never cut off.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        domain: str = "localhost",
        direct_tls: bool = True,
        s2s: bool = False,
        starttls_required: bool = True,
        modules: Mapping[str, Mapping[str, Any]] = DEFAULT_MODULES,
        extra_hosts: Sequence[str] = (),
        extra_options: Mapping[str, Any] | None = None,
        log_level: str = "info",
        command_prefix: Sequence[str] = (),
        start_timeout: float = 30.0,
        stop_timeout: float = 15.0,
        erl_binary: str = "erl",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._workdir = workdir.resolve()
        self._domain = domain
        self._extra_hosts = tuple(extra_hosts)
        self._modules = dict(modules)
        self._extra_options = dict(extra_options or {})
        self._starttls_required = starttls_required
        self._log_level = log_level
        self._prefix = tuple(command_prefix)
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._erl = erl_binary
        # Added to the VM's environment (for instance ERL_INETRC, to point its resolver at a test DNS server).
        self._env = dict(env or {})
        self._direct_tls, self._s2s = direct_tls, s2s
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
            raise EjabberdError("started without direct TLS")
        return self._c2s_tls_port

    @property
    def s2s_port(self) -> int:
        if self._s2s_port is None:
            raise EjabberdError("started without s2s")
        return self._s2s_port

    @property
    def http_port(self) -> int:
        """Plain-HTTP port serving `mod_http_api` at /api (loopback callers only)."""
        return self._http_port

    @property
    def epmd_port(self) -> int:
        """The private port an epmd of this instance would listen on (none is started normally)."""
        return self._epmd_port

    @property
    def config_file(self) -> Path:
        return self._workdir / "ejabberd.yml"

    @property
    def spool_dir(self) -> Path:
        return self._workdir / "spool"

    @property
    def log_dir(self) -> Path:
        return self._workdir / "logs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "ejabberd.log"

    @property
    def console_file(self) -> Path:
        """The VM's stdout and stderr (errors before the logger is set up end up here)."""
        return self._workdir / "console.log"

    # -- life cycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start ejabberd and return once every listener accepts connections; retried on fresh ports when
        one of them was taken between `free_port()` and the VM's bind."""
        if self._process is not None:
            raise EjabberdError("already started")
        binary = shutil.which(self._erl)
        if binary is None:
            raise EjabberdError(f"{self._erl!r} not found on PATH")
        began = time.monotonic()
        self._workdir.mkdir(parents=True, exist_ok=True)
        certs = ca_and_leaf(self._workdir / "certs", [self._domain, f"*.{self._domain}"], stem=self._domain)
        # ejabberd wants the key and the certificate in one PEM file.
        pem = self._workdir / "certs" / "server.pem"
        pem.write_bytes(certs.cert.read_bytes() + certs.key.read_bytes())
        pem.chmod(0o600)
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.spool_dir.mkdir(exist_ok=True)
            self.config_file.write_text(self._config(pem))
            for old in self.log_dir.glob("*.log"):
                old.unlink()
            try:
                self._launch(binary, deadline=began + self._start_timeout)
                break
            except _PortTaken:
                self.stop()
                if attempt == _START_ATTEMPTS:
                    raise EjabberdError(f"ports taken {attempt} times\n{self._output_tail()}") from None
                self._pick_ports()
            except (TimeoutError, RuntimeError) as exc:
                self.stop()
                raise EjabberdError(f"ejabberd did not start: {exc}\n{self._output_tail()}") from exc
        self.startup_seconds = time.monotonic() - began

    def _launch(self, binary: str, *, deadline: float) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self._workdir),
            "LANG": "C.UTF-8",
            "ERL_LIBS": DEBIAN_ERL_LIBS,
            "EJABBERD_CONFIG_PATH": str(self.config_file),
            "EJABBERD_LOG_PATH": str(self.log_file),
            "ERL_CRASH_DUMP": str(self.log_dir / "erl_crash.dump"),
            "ERL_EPMD_ADDRESS": LOOPBACK,
            "ERL_EPMD_PORT": str(self._epmd_port),
            **self._env,
        }
        command = [
            *self._prefix,
            binary,
            "-noinput",
            "-noshell",
            "-start_epmd",
            "false",
            # Kernel polling, and room for many connections (benchmarks hold 10,000).
            "+K",
            "true",
            "+P",
            "1000000",
            "+Q",
            "1000000",
            "-mnesia",
            "dir",
            f'"{self.spool_dir}"',
            "-s",
            "ejabberd",
        ]
        with self.console_file.open("wb") as console:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=self._workdir,
                env=env,
                # Its own process group: a Ctrl-C aimed at pytest must not kill it before stop() runs, and
                # stop() can end the VM's helper processes (erl_child_setup) with it.
                start_new_session=True,
                preexec_fn=_raise_open_files_limit,
            )
        # "Start accepting TCP (or TLS) connections at 127.0.0.1:PORT for ..." once a listener is up.
        pending = {f" connections at {LOOPBACK}:{port} for " for port in self._ports()}
        while True:
            log = self.log_text()
            if any(marker in log.lower() for marker in _PORT_IN_USE):
                raise _PortTaken
            pending = {line for line in pending if line not in log}
            if not pending and " is started in the node " in log:
                break
            if self._process.poll() is not None:
                raise RuntimeError(f"the Erlang VM exited with status {self._process.returncode}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"not listening on {sorted(pending)} within {self._start_timeout} s")
            time.sleep(0.05)
        wait_for_port(LOOPBACK, self._c2s_port, timeout=max(0.1, deadline - time.monotonic()))

    def stop(self) -> None:
        """SIGTERM (the VM then runs `init:stop()`), SIGKILL after `stop_timeout`; then the rest of its
        process group, and an epmd on this instance's private port if one got started. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            terminate(process, self._stop_timeout)
            # The group was created for this VM alone (start_new_session), so it holds only its helpers.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        self._kill_private_epmd()

    # -- accounts -----------------------------------------------------------------------------------------

    def api(self, command: str, arguments: Mapping[str, Any], *, timeout: float = 20.0) -> Any:
        """Call a `mod_http_api` command and return its decoded JSON result."""
        request = urllib.request.Request(
            f"http://{LOOPBACK}:{self._http_port}/api/{command}",
            data=json.dumps(arguments).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            raise EjabberdError(f"api {command} answered {exc.code}: {body}") from exc
        except (urllib.error.URLError, TimeoutError) as exc:
            raise EjabberdError(f"api {command} failed: {exc}\n{self._output_tail()}") from exc

    def add_user(self, local: str, password: str, *, timeout: float = 20.0) -> Account:
        """Create (or overwrite) an account; works while the server runs."""
        try:
            self.api("register", {"user": local, "host": self._domain, "password": password}, timeout=timeout)
        except EjabberdError as exc:
            if "already registered" not in str(exc):
                raise
            self.api(
                "change_password",
                {"user": local, "host": self._domain, "newpass": password},
                timeout=timeout,
            )
        return Account(local=local, domain=self._domain, password=password)

    def add_roster_item(self, owner: str, contact: str, *, subscription: str = "both", group: str = "") -> None:
        """Put `contact@domain` into `owner@domain`'s roster with the given subscription state."""
        self.api(
            "add_rosteritem",
            {
                "localuser": owner,
                "localhost": self._domain,
                "user": contact,
                "host": self._domain,
                "nick": contact,
                "group": group,
                "subs": subscription,
            },
        )

    # -- internals ----------------------------------------------------------------------------------------

    def _pick_ports(self) -> None:
        self._c2s_port = free_port(LOOPBACK)
        self._c2s_tls_port = free_port(LOOPBACK) if self._direct_tls else None
        self._s2s_port = free_port(LOOPBACK) if self._s2s else None
        self._http_port = free_port(LOOPBACK)
        self._epmd_port = free_port(LOOPBACK)

    def _ports(self) -> list[int]:
        optional = (self._c2s_tls_port, self._s2s_port)
        return [self._c2s_port, self._http_port, *(port for port in optional if port is not None)]

    def _kill_private_epmd(self) -> None:
        if not port_accepts(LOOPBACK, self._epmd_port, timeout=0.2):
            return
        epmd = shutil.which("epmd")
        if epmd is None:
            return
        env = {**os.environ, "ERL_EPMD_ADDRESS": LOOPBACK, "ERL_EPMD_PORT": str(self._epmd_port)}
        subprocess.run([epmd, "-kill"], env=env, capture_output=True, timeout=self._stop_timeout, check=False)

    def _output_tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.console_file, self.log_file, self.log_dir / "error.log"):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def _listener(self, port: int, module: str, **options: Any) -> dict[str, Any]:
        return {"port": port, "ip": LOOPBACK, "module": module, **options}

    def _config(self, pem: Path) -> str:
        c2s = {"shaper": "none", "max_stanza_size": 262144, "access": "c2s"}
        listen = [
            self._listener(
                self._c2s_port, "ejabberd_c2s", starttls=True, starttls_required=self._starttls_required, **c2s
            ),
            self._listener(self._http_port, "ejabberd_http", request_handlers={"/api": "mod_http_api"}),
        ]
        if self._c2s_tls_port is not None:
            listen.append(self._listener(self._c2s_tls_port, "ejabberd_c2s", tls=True, **c2s))
        if self._s2s_port is not None:
            listen.append(self._listener(self._s2s_port, "ejabberd_s2s_in", shaper="none"))
        settings: dict[str, Any] = {
            "hosts": [self._domain, *self._extra_hosts],
            "loglevel": self._log_level,
            "log_rotate_count": 0,
            "certfiles": [str(pem)],
            "listen": listen,
            "s2s_use_starttls": "required",
            "auth_method": "internal",
            "auth_password_format": "scram",
            "auth_scram_hash": "sha",
            "max_fsm_queue": 1000000,
            "acl": {"loopback": {"ip": ["127.0.0.0/8"]}},
            "access_rules": {"c2s": {"allow": "all"}},
            "shaper_rules": {"c2s_shaper": "none", "s2s_shaper": "none"},
            "api_permissions": {
                "loopback callers": {"from": ["mod_http_api"], "who": {"acl": "loopback"}, "what": ["*"]}
            },
            "modules": self._modules,
            **self._extra_options,
        }
        # YAML is a superset of JSON, so JSON is the safest way to write it.
        return json.dumps(settings, indent=2) + "\n"


def _raise_open_files_limit() -> None:
    """In the child before exec: as many open files as the hard limit allows (benchmarks hold 10,000
    connections)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
