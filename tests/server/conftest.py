"""Running a jaybird server in-process for tests, on free loopback ports, with a temporary data directory.

::

    async def test_something(start_server: ServerFactory) -> None:
        running = await start_server(modules=[], toml="[limits]\\nidle_timeout_s = 1.0")
        juliet = await running.add_user("juliet", "secret")
        async with running.client(juliet, "secret") as client:
            ...

The server is stopped (gracefully) when the test ends. ``running.client(...)`` trusts the generated certificate,
so SCRAM-*-PLUS works as with a real CA.
"""

from __future__ import annotations

import errno
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jaybird.client import Client
from jaybird.jid import JID
from jaybird.server.app import Server
from jaybird.server.auth import add_user
from jaybird.server.config import ServerConfig, parse_config
from tests.peers.ports import free_ports

#: The smallest iteration count the configuration accepts (RFC 7677 §4): keeps tests fast.
TEST_ITERATIONS = 4096


@dataclass
class RunningServer:
    server: Server
    config: ServerConfig
    port: int
    tls_port: int
    domain: str

    @property
    def cert_file(self) -> Path:
        return self.config.certificate_for(self.config.hosts[0]).cert_file

    async def add_user(self, local: str, password: str, domain: str | None = None) -> JID:
        jid = JID.from_parts(local, domain or self.domain)
        await add_user(self.server.storage, jid, password, iterations=TEST_ITERATIONS)
        return jid

    def client(self, jid: JID | str, password: str, *, direct_tls: bool = False, **kwargs: Any) -> Client:
        kwargs.setdefault("reconnect", False)
        kwargs.setdefault("ca_file", str(self.cert_file))
        kwargs.setdefault("negotiation_timeout", 10.0)
        kwargs.setdefault("iq_timeout", 5.0)
        return Client(
            jid,
            password,
            host="127.0.0.1",
            port=self.tls_port if direct_tls else self.port,
            direct_tls=direct_tls,
            **kwargs,
        )


ServerFactory = Callable[..., Awaitable[RunningServer]]


def server_config(
    data_dir: Path,
    *,
    domains: Sequence[str] = ("localhost",),
    modules: Sequence[str] | None = (),
    toml: str = "",
    storage: str = "memory://",
) -> tuple[ServerConfig, int, int]:
    """A configuration on free loopback ports; ``toml`` is appended (top-level tables only)."""
    port, tls_port = free_ports(2)
    hosts = "".join(f"[[hosts]]\ndomain = {json.dumps(d)}\n" for d in domains)
    enabled = "" if modules is None else f"[modules]\nenabled = {json.dumps(list(modules))}\n"
    text = (
        f"data_dir = {json.dumps(str(data_dir))}\n"
        f"[storage]\nurl = {json.dumps(storage)}\n"
        f"[auth]\nscram_iterations = {TEST_ITERATIONS}\n"
        f'[listeners.c2s]\nport = {port}\ntls_port = {tls_port}\ninterfaces = ["127.0.0.1"]\n'
        f"{enabled}{toml}\n{hosts}"
    )
    return parse_config(text, source="test.toml"), port, tls_port


PORT_ATTEMPTS = 3


async def start_on_free_ports(
    make_config: Callable[[], tuple[ServerConfig, int, int]],
) -> tuple[Server, ServerConfig, int, int]:
    """Start a server on ports chosen just before; another process may take one in between (the ports are free
    only when chosen), so a start refused with EADDRINUSE is retried on fresh ports, a bounded number of times."""
    for attempt in range(PORT_ATTEMPTS):
        config, port, tls_port = make_config()
        server = Server(config)
        try:
            await server.start()
        except OSError as exc:
            await server.stop()
            if exc.errno != errno.EADDRINUSE or attempt == PORT_ATTEMPTS - 1:
                raise
            continue
        return server, config, port, tls_port
    raise AssertionError("unreachable")


@pytest.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    started: list[Server] = []

    async def start(**kwargs: Any) -> RunningServer:
        server, config, port, tls_port = await start_on_free_ports(
            lambda: server_config(tmp_path / f"data{len(started)}", **kwargs)
        )
        started.append(server)
        return RunningServer(server, config, port, tls_port, config.hosts[0].domain)

    yield start
    for server in started:
        await server.stop()
