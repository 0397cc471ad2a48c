"""Private XML storage on a running server, over TCP with the jaybird client."""

from __future__ import annotations

import pytest

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.private.wire import PrivateQuery
from jaybird.stanza import Iq, IqType
from jaybird.xml.element import Element
from tests.server.conftest import ServerFactory


async def test_store_and_retrieve_across_sessions(start_server: ServerFactory) -> None:
    running = await start_server(modules=["private"])
    hamlet = await running.add_user("hamlet", "to-be")
    prefs = Element("{exodus:prefs}exodus")
    prefs.add("{exodus:prefs}defaultnick", text="Hamlet")
    async with running.client(hamlet, "to-be") as first:
        await first.iq(Iq.build(IqType.SET, PrivateQuery((prefs,))))
        with pytest.raises(StanzaError) as reserved:
            await first.iq(Iq.build(IqType.SET, PrivateQuery((Element("{vcard-temp}vCard"),))))
        assert reserved.value.condition is StanzaErrorCondition.NOT_ACCEPTABLE  # XEP-0049 §2.3
    async with running.client(hamlet, "to-be") as second:
        reply = await second.iq(Iq.build(IqType.GET, PrivateQuery((Element("{exodus:prefs}exodus"),))))
        query = reply.get(PrivateQuery)
        assert query is not None and query.items == (prefs,)
