"""XEP-0202 against an in-process server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jaybird.ext.time.wire import EntityTime
from jaybird.stanza import Iq, IqType
from tests.server.conftest import ServerFactory


async def test_server_time(start_server: ServerFactory) -> None:
    running = await start_server(modules=["time"])
    juliet = await running.add_user("juliet", "balcony")
    async with running.client(juliet, "balcony") as client:
        reply = await client.iq(Iq.build(IqType.GET, EntityTime(), to=running.domain))
        assert reply.payload is not None
        answer = EntityTime.from_element(reply.payload)
        assert answer.tzo == timedelta(0)
        assert answer.utc is not None and abs(answer.utc - datetime.now(UTC)) < timedelta(seconds=5)
