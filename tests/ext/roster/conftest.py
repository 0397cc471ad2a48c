from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.ext.roster.harness import Cast, cast
from tests.server.conftest import ServerFactory, start_server

__all__ = ["start_server"]


@pytest.fixture
async def im(start_server: ServerFactory) -> AsyncIterator[Cast]:
    """A server with the roster and presence modules, and a way to log clients in."""
    running = await start_server(modules=["roster", "presence"])
    async with cast(running) as value:
        yield value
