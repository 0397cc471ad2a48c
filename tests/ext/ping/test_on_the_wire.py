"""XEP-0199 against an in-process server: pings to the server, and idle clients pinged then dropped."""

from __future__ import annotations

import asyncio

from jaybird.ext.ping.client import answer_pings, ping
from jaybird.server.host import VirtualHost
from tests.ext.disco.live import eventually
from tests.server.conftest import ServerFactory

#: A tiny interval and timeout so an idle connection is found within a second.
IDLE = "[limits]\nping_interval_s = 0.2\n[modules.ping]\ntimeout_s = 0.3\n"


async def test_ping_the_server(start_server: ServerFactory) -> None:
    running = await start_server(modules=["ping"])
    juliet = await running.add_user("juliet", "balcony")
    async with running.client(juliet, "balcony") as client:
        assert await ping(client) >= 0.0


def _sessions(host: VirtualHost) -> int:
    return len(host.sessions.all())


async def test_an_answering_client_stays_and_a_silent_one_is_closed(start_server: ServerFactory) -> None:
    running = await start_server(modules=["ping"], toml=IDLE)
    host = running.server.hosts[running.domain]
    juliet = await running.add_user("juliet", "balcony")
    romeo = await running.add_user("romeo", "wherefore")
    async with (
        running.client(juliet, "balcony") as alive,
        running.client(romeo, "wherefore", close_timeout=0.5) as mute,
    ):
        answer_pings(alive)
        assert _sessions(host) == 2
        # the mute client stops reading: the server's pings go unanswered
        reader = mute._reader
        assert reader is not None
        reader.cancel()

        async def mute_dropped() -> bool:
            return host.sessions.get(mute.jid) is None

        await eventually(mute_dropped)
        await asyncio.sleep(1.0)  # five ping intervals: the answering client is pinged and answers
        assert host.sessions.get(alive.jid) is not None
        assert await ping(alive) >= 0.0
