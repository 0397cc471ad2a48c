"""Service discovery against an in-process server, over a real client stream (XEP-0030)."""

from __future__ import annotations

import pytest

from jaybird import ns
from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.disco.wire import DiscoIdentity, DiscoInfo, DiscoItems
from jaybird.stanza import Iq, IqType
from tests.server.conftest import ServerFactory

MODULES = ["disco", "ping", "version", "time", "last", "offline"]


async def test_server_info_items_and_account_info(start_server: ServerFactory) -> None:
    running = await start_server(modules=MODULES)
    juliet = await running.add_user("juliet", "balcony")
    romeo = await running.add_user("romeo", "wherefore")
    async with running.client(juliet, "balcony") as client, running.client(romeo, "wherefore") as other:
        reply = await client.iq(Iq.build(IqType.GET, DiscoInfo(), to=running.domain))
        assert reply.payload is not None
        info = DiscoInfo.from_element(reply.payload)
        assert ("server", "im") in {(i.category, i.type) for i in info.identities}
        expected = {ns.DISCO_INFO, ns.DISCO_ITEMS, ns.PING, ns.VERSION, "urn:xmpp:time", "jabber:iq:last"}
        assert expected | {"msgoffline"} <= set(info.features)

        reply = await client.iq(Iq.build(IqType.GET, DiscoItems(), to=running.domain))
        assert reply.payload is not None and DiscoItems.from_element(reply.payload).items == ()

        with pytest.raises(StanzaError) as caught:
            await client.iq(Iq.build(IqType.GET, DiscoInfo(node="urn:nothing"), to=running.domain))
        assert caught.value.condition is StanzaErrorCondition.ITEM_NOT_FOUND

        # XEP-0030 §2: the server answers for the account, to its owner
        reply = await client.iq(Iq.build(IqType.GET, DiscoInfo(), to=juliet))
        assert reply.payload is not None
        account = DiscoInfo.from_element(reply.payload)
        assert account.identities == (DiscoIdentity("account", "registered"),)
        assert ns.DISCO_INFO in account.features

        # ...and not to a stranger
        with pytest.raises(StanzaError) as caught:
            await other.iq(Iq.build(IqType.GET, DiscoInfo(), to=juliet))
        assert caught.value.condition is StanzaErrorCondition.SERVICE_UNAVAILABLE
