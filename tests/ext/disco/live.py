"""Helpers for the wire tests that drive an in-process server with the jaybird Client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from jaybird.client import Client
from jaybird.stanza import Message

#: Upper bound of every wait in these tests (seconds).
WAIT = 5.0


async def messages_after(
    client: Client, action: Callable[[], Awaitable[None]], count: int, *, timeout: float = WAIT
) -> list[Message]:
    """Run ``action`` and return the first ``count`` messages the client gets after it starts (TimeoutError
    when they do not all come within ``timeout`` seconds)."""
    got: list[Message] = []
    ready = asyncio.Event()

    async def collect() -> None:
        stream = client.stanzas()
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)  # the subscription is registered once the generator runs
        ready.set()
        stanza = await first
        while True:
            if isinstance(stanza, Message):
                got.append(stanza)
                if len(got) >= count:
                    return
            stanza = await anext(stream)

    task = asyncio.create_task(collect())
    await ready.wait()
    await action()
    await asyncio.wait_for(task, timeout)
    return got


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = WAIT) -> None:
    """Poll ``check`` (every 20 ms, at most ``timeout`` seconds) until it is true."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)
