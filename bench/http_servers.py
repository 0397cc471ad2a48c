"""The servers of the HTTP-transport benchmark: jaybird and Prosody as `bench/servers.py` starts them (same
domain, accounts, password, pinning to core 0, no rate limits), plus BOSH and WebSocket on a plain HTTP port
that both count as encrypted (jaybird `consider_secure`, Prosody `consider_bosh_secure` /
`consider_websocket_secure`), so both offer PLAIN and neither refuses the loopback generator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from bench.loadgen import Target
from bench.servers import DOMAIN, JaybirdBench, ProsodyBench, ServerUnavailable, _BenchProsody
from tests.peers.ports import free_port, wait_for_port
from tests.peers.prosody import ProsodyError

BOSH_PATH = "/http-bind"
WEBSOCKET_PATH = "/xmpp-websocket"


class HTTPBenchServer(Protocol):
    name: str

    @property
    def target(self) -> Target: ...
    @property
    def pid(self) -> int: ...
    @property
    def http_port(self) -> int: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def ensure_accounts(self, users: Sequence[str]) -> None: ...


class JaybirdHTTP(JaybirdBench):
    """`jaybird serve` from bench/servers.py with `[listeners.http]` on a loopback port added to its config."""

    def __init__(self, workdir: Path, *, start_timeout: float = 20.0) -> None:
        super().__init__(workdir, start_timeout=start_timeout)
        self._http_port = free_port()

    @property
    def http_port(self) -> int:
        return self._http_port

    def _write_config(self) -> None:
        super()._write_config()
        # A new table appended after the generated ones; the [limits] there already lifts per-IP and rate caps.
        with self.config_file.open("a", encoding="utf-8") as config:
            config.write(
                f"\n[listeners.http]\nenabled = true\nport = {self._http_port}\ntls_port = {free_port()}\n"
                'interfaces = ["127.0.0.1"]\nconsider_secure = true\nmax_sessions = 1000000\n'
            )

    def start(self) -> None:
        super().start()
        try:
            wait_for_port("127.0.0.1", self._http_port, timeout=10.0)
        except TimeoutError as exc:
            self.stop()
            raise ServerUnavailable(f"jaybird's HTTP listener did not start: {exc}") from exc


class ProsodyHTTP(ProsodyBench):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        # The benchmark's Prosody (c2s encryption optional, no mod_limits) with mod_bosh and mod_websocket; the
        # fixture's config already says consider_bosh_secure, consider_websocket_secure, cross_domain_*.
        self._server = _BenchProsody(workdir, domain=DOMAIN, direct_tls=False, http=True,
                                    modules=("roster", "saslauth", "tls", "disco", "ping"))  # fmt: skip

    @property
    def http_port(self) -> int:
        try:
            return self._server.http_port
        except ProsodyError as exc:
            raise ServerUnavailable(str(exc)) from exc


FACTORIES: dict[str, Callable[[Path], HTTPBenchServer]] = {"prosody": ProsodyHTTP, "jaybird": JaybirdHTTP}
