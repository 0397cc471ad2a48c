"""XEP-0092 against an in-process server."""

from __future__ import annotations

from jaybird import __version__
from jaybird.ext.version.wire import SoftwareVersion
from jaybird.stanza import Iq, IqType
from tests.server.conftest import ServerFactory


async def test_server_version(start_server: ServerFactory) -> None:
    running = await start_server(modules=["version"])
    juliet = await running.add_user("juliet", "balcony")
    async with running.client(juliet, "balcony") as client:
        reply = await client.iq(Iq.build(IqType.GET, SoftwareVersion(), to=running.domain))
        assert reply.payload is not None
        assert SoftwareVersion.from_element(reply.payload) == SoftwareVersion("jaybird", __version__, None)
