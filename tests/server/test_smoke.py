from jaybird.stanza import Message, MessageType, Presence
from tests.server.conftest import ServerFactory


async def test_two_clients_exchange_a_message(start_server: ServerFactory) -> None:
    running = await start_server()
    juliet = await running.add_user("juliet", "balcony")
    romeo = await running.add_user("romeo", "wherefore")
    async with running.client(juliet, "balcony") as a, running.client(romeo, "wherefore") as b:
        await b.send(Presence.build())
        stream = b.stanzas()
        await a.send(Message.build(romeo, "hi", type=MessageType.CHAT))
        got = await anext(stream)
        assert isinstance(got, Message) and got.body == "hi"
        assert got.from_ == a.jid
