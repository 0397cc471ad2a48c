"""A jaybird server with its HTTP listener (BOSH, WebSocket, host-meta) on free loopback ports, for tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from jaybird.client import Client
from jaybird.jid import JID
from tests.peers.ports import free_port
from tests.server.conftest import RunningServer

__all__ = ["WebServer", "in_ci", "need", "start_web_server"]


@dataclass
class WebServer:
    running: RunningServer
    http_port: int
    https_port: int
    bosh_path: str = "/http-bind"
    websocket_path: str = "/xmpp-websocket"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def bosh_url(self) -> str:
        return f"{self.base}{self.bosh_path}"

    @property
    def websocket_url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}{self.websocket_path}"

    async def add_user(self, local: str, password: str) -> JID:
        return await self.running.add_user(local, password)

    def client(self, jid: JID, password: str, url: str, **kwargs: Any) -> Client:
        """A jaybird client over WebSocket or BOSH; plain HTTP on loopback, which the server counts as secure."""
        kwargs.setdefault("reconnect", False)
        kwargs.setdefault("negotiation_timeout", 10.0)
        kwargs.setdefault("iq_timeout", 5.0)
        return Client(jid, password, url=url, require_tls=False, **kwargs)


async def start_web_server(
    start_server: Callable[..., Awaitable[RunningServer]], http_toml: str = "", **kwargs: Any
) -> WebServer:
    """Start a server (through tests/server/conftest.py's factory) with ``[listeners.http]`` enabled."""
    port, tls_port = free_port(), free_port()
    toml = (
        f'[listeners.http]\nenabled = true\nport = {port}\ntls_port = {tls_port}\ninterfaces = ["127.0.0.1"]\n'
        f"{http_toml}\n{kwargs.pop('toml', '')}"
    )
    running = await start_server(toml=toml, **kwargs)
    return WebServer(running, port, tls_port)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def need(program: str, why: str) -> str:
    """The path of ``program``; skips the test when it is missing (fails under CI, where it must be there)."""
    found = shutil.which(program)
    if found is None:
        message = f"{program} is not installed ({why}); run scripts/install-peers.sh"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return found
