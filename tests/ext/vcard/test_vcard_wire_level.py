"""vcard-temp between two users of a running server, over TCP with the jaybird client."""

from __future__ import annotations

import pytest

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.vcard.wire import NAME, NS, VCard
from jaybird.stanza import Iq, IqType
from jaybird.xml.element import Element
from tests.server.conftest import ServerFactory


async def test_set_and_read_between_users(start_server: ServerFactory) -> None:
    running = await start_server(modules=["vcard"])
    juliet = await running.add_user("juliet", "balcony")
    romeo = await running.add_user("romeo", "wherefore")
    card = Element(NAME)
    card.add(f"{{{NS}}}FN", text="Juliet Capulet")
    async with running.client(juliet, "balcony") as j, running.client(romeo, "wherefore") as r:
        await j.iq(Iq.build(IqType.SET, VCard(card)))
        seen = await r.iq(Iq.build(IqType.GET, VCard(), to=juliet))
        vcard = seen.get(VCard)
        assert vcard is not None and vcard.field("FN") == "Juliet Capulet"
        with pytest.raises(StanzaError) as refused:
            await r.iq(Iq.build(IqType.SET, VCard(card), to=juliet))
        assert refused.value.condition is StanzaErrorCondition.FORBIDDEN  # XEP-0054 §3.2
