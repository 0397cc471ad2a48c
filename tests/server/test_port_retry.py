"""The test fixtures' port handling: a port taken between choosing and binding is retried on fresh ports."""

from __future__ import annotations

import socket
from pathlib import Path

from jaybird.server.config import ServerConfig
from tests.server.conftest import server_config, start_on_free_ports


async def test_a_taken_port_is_retried_on_fresh_ports(tmp_path: Path) -> None:
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    attempts: list[int] = []

    def make_config() -> tuple[ServerConfig, int, int]:
        config, port, tls_port = server_config(tmp_path / f"data{len(attempts)}")
        if not attempts:  # the first choice collides with another process's socket
            config, port = _with_c2s_port(config, taken), taken
        attempts.append(port)
        return config, port, tls_port

    try:
        server, _config, port, _tls = await start_on_free_ports(make_config)
        try:
            assert attempts[0] == taken and port != taken and len(attempts) == 2
        finally:
            await server.stop()
    finally:
        squatter.close()


def _with_c2s_port(config: ServerConfig, port: int) -> ServerConfig:
    import dataclasses

    c2s = dataclasses.replace(config.listeners.c2s, port=port)
    return dataclasses.replace(config, listeners=dataclasses.replace(config.listeners, c2s=c2s))
