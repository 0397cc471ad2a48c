"""XEP-0012 against an in-process server: uptime, and an account's last logout."""

from __future__ import annotations

import pytest

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.last.wire import LastActivity
from jaybird.stanza import Iq, IqType, Presence, PresenceType
from tests.ext.disco.live import eventually
from tests.server.conftest import ServerFactory


async def test_uptime_and_last_logout(start_server: ServerFactory) -> None:
    running = await start_server(modules=["last"])
    juliet = await running.add_user("juliet", "balcony")
    romeo = await running.add_user("romeo", "wherefore")
    host = running.server.hosts[running.domain]
    async with running.client(juliet, "balcony") as client:
        await client.send(Presence.build())
        await client.send(Presence.build(type=PresenceType.UNAVAILABLE, status="Gone to bed"))

    async def logged_out() -> bool:
        return not host.sessions.of(juliet)

    await eventually(logged_out)
    async with running.client(juliet, "balcony") as client, running.client(romeo, "wherefore") as other:
        reply = await client.iq(Iq.build(IqType.GET, LastActivity(), to=running.domain))
        assert reply.payload is not None
        uptime = LastActivity.from_element(reply.payload).seconds
        assert uptime is not None and uptime >= 0

        reply = await client.iq(Iq.build(IqType.GET, LastActivity(), to=juliet))
        assert reply.payload is not None
        answer = LastActivity.from_element(reply.payload)
        assert answer.status == "Gone to bed" and answer.seconds is not None and answer.seconds <= 5

        # XEP-0012 §4: without a presence subscription, forbidden
        with pytest.raises(StanzaError) as caught:
            await other.iq(Iq.build(IqType.GET, LastActivity(), to=juliet))
        assert caught.value.condition is StanzaErrorCondition.FORBIDDEN
