"""Ending every connection of a listener at shutdown, the same way for c2s, components and HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Protocol

from jaybird.errors import StreamError

__all__ = ["close_and_wait"]


class _Closable(Protocol):
    def close(self, error: StreamError | None = None) -> None: ...


async def close_and_wait(
    connections: Iterable[_Closable], tasks: Iterable[asyncio.Task[Any]], error: StreamError, timeout: float
) -> None:
    """Close every connection with ``error`` and wait (at most ``timeout``) for their tasks to end; the tasks still
    running then are cancelled, and given one more second to unwind."""
    for connection in list(connections):
        connection.close(error)
    pending = list(tasks)
    if not pending:
        return
    _done, still = await asyncio.wait(pending, timeout=timeout)
    for task in still:
        task.cancel()
    if still:
        await asyncio.wait(still, timeout=1.0)
