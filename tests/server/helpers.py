"""Small helpers for driving the server with jaybird clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from jaybird.client import Client
from jaybird.errors import StanzaError
from jaybird.stanza import Iq, IqType, Message, Presence
from jaybird.xml.element import Element

UNKNOWN_PAYLOAD = "{urn:example:nothing}query"


async def barrier(client: Client) -> None:
    """One IQ round trip to the server: everything the client sent before has been routed once it returns."""
    with contextlib.suppress(StanzaError):
        await client.iq(Iq.build(IqType.GET, Element(UNKNOWN_PAYLOAD), to=client.jid.domain), timeout=5.0)


async def next_stanza(stream: AsyncIterator[Message | Presence | Iq], timeout: float = 5.0) -> Message | Presence | Iq:
    async with asyncio.timeout(timeout):
        return await anext(stream)


async def nothing_arrives(stream: AsyncIterator[Message | Presence | Iq], wait: float = 0.3) -> bool:
    try:
        async with asyncio.timeout(wait):
            await anext(stream)
    except TimeoutError:
        return True
    return False


def watch(
    stream: AsyncIterator[Message | Presence | Iq], timeout: float = 5.0
) -> asyncio.Task[Message | Presence | Iq]:
    """Start waiting for the next stanza now (an async generator subscribes only once iterated)."""
    return asyncio.ensure_future(next_stanza(stream, timeout))
