"""The jaybird client library and go-sendxmpp (Debian) against `jaybird serve` running as a subprocess.

The same IM flow as the slixmpp tests, driven through `jaybird.client.Client` and the roster helpers: the
subscription handshake (RFC 6121 §3), presence (§4), messages (§5), offline storage across a restart with a
XEP-0203 delay stamp, blocking (XEP-0191) and vcard-temp (XEP-0054); then a message from go-sendxmpp.
"""

import asyncio
import datetime
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jaybird.client import Client, ConnectionLost
from jaybird.errors import StanzaErrorCondition
from jaybird.ext.blocking.wire import Block, BlockList, Unblock
from jaybird.ext.offline.wire import DELAY, Delay
from jaybird.ext.roster.client import approve, get_roster, handle_pushes, subscribe
from jaybird.ext.roster.wire import RosterItem, Subscription
from jaybird.ext.vcard.wire import NAME as VCARD
from jaybird.ext.vcard.wire import NS as VCARD_NS
from jaybird.ext.vcard.wire import VCard
from jaybird.jid import JID
from jaybird.stanza import Iq, IqType, Message, MessageType, Presence, PresenceType
from jaybird.xml.element import Element
from tests.peers import Account, require_binary
from tests.peers.jaybird import JaybirdServer, JaybirdWithAccounts
from tests.server.helpers import barrier

pytestmark = pytest.mark.interop

WAIT = 10.0
QUIET = 1.0


@pytest.fixture(scope="module")
def jaybird(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JaybirdServer]:
    with JaybirdServer(tmp_path_factory.mktemp("jaybird-clients")) as server:
        yield server


@pytest.fixture
def pair(jaybird: JaybirdServer) -> JaybirdWithAccounts:
    """Two fresh accounts, so that no test sees another's roster, blocklist or offline messages."""
    tag = uuid.uuid4().hex[:8]
    return JaybirdWithAccounts(
        server=jaybird,
        juliet=jaybird.add_user(f"juliet-{tag}", "balcony-at-midnight"),
        romeo=jaybird.add_user(f"romeo-{tag}", "wherefore-art-thou"),
    )


@dataclass
class Peer:
    """A logged-in jaybird client, everything it received since it bound, and its roster as pushed.

    `next()` takes the first stanza matching a predicate that no earlier `next()` took, wherever it is in the
    arrival order: a test waiting for one stanza does not lose the others that came before it.
    """

    client: Client
    received: list[Message | Presence | Iq] = field(default_factory=list)
    roster: dict[JID, RosterItem] = field(default_factory=dict)
    _taken: set[int] = field(default_factory=set)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, stanza: Message | Presence | Iq) -> None:
        self.received.append(stanza)
        self._arrived.set()

    async def next(
        self, match: Callable[[Message | Presence | Iq], bool], timeout: float = WAIT
    ) -> Message | Presence | Iq:
        async with asyncio.timeout(timeout):
            while True:
                for index, stanza in enumerate(self.received):
                    if index not in self._taken and match(stanza):
                        self._taken.add(index)
                        return stanza
                self._arrived.clear()
                await self._arrived.wait()

    async def nothing(self, match: Callable[[Message | Presence | Iq], bool]) -> bool:
        try:
            await self.next(match, QUIET)
        except TimeoutError:
            return True
        return False


@asynccontextmanager
async def session(server: JaybirdServer, account: Account) -> AsyncIterator[Peer]:
    """A jaybird client logged in over STARTTLS (trusting the test CA) that has sent initial presence and had
    it returned (RFC 6121 §4.2.2), having fetched its roster first as clients do; closed on exit."""
    client = Client(
        account.jid,
        account.password,
        host=server.host,
        port=server.c2s_port,
        direct_tls=False,
        ca_file=str(server.ca_file),
        reconnect=False,
        negotiation_timeout=WAIT,
        iq_timeout=WAIT,
    )
    peer = Peer(client)

    def on_push(item: RosterItem, _ver: str | None) -> None:
        peer.roster[item.jid] = item

    handle_pushes(client, on_push)
    async with client:
        subscribed = asyncio.Event()

        async def collect() -> None:
            stanzas = client.stanzas()
            subscribed.set()
            try:
                async for stanza in stanzas:
                    peer.put(stanza)
            except ConnectionLost:
                return

        async with asyncio.TaskGroup() as group:
            collector = group.create_task(collect())
            await asyncio.wait_for(subscribed.wait(), WAIT)
            await asyncio.sleep(0)  # the generator registers its queue on its first step
            # RFC 6121 §2.1.6: only a resource that requested the roster is "interested" and gets pushes.
            roster = await get_roster(client)
            assert roster is not None
            peer.roster.update((item.jid, item) for item in roster.items)
            await client.send(Presence.build())
            await peer.next(lambda s: isinstance(s, Presence) and s.from_ == client.jid)
            try:
                yield peer
            finally:
                collector.cancel()


def from_bare(jid: str, kind: type[Message | Presence | Iq]) -> Callable[[Message | Presence | Iq], bool]:
    return lambda s: isinstance(s, kind) and s.from_ is not None and s.from_.bare == JID(jid)


def chat_with_body(body: str) -> Callable[[Message | Presence | Iq], bool]:
    return lambda s: isinstance(s, Message) and s.body == body and not s.is_error


def pushed(peer: Peer, contact: str) -> Subscription | None:
    item = peer.roster.get(JID(contact))
    return None if item is None else item.subscription


async def subscription_of(peer: Peer, contact: str) -> Subscription | None:
    roster = await get_roster(peer.client)
    assert roster is not None
    return next((item.subscription for item in roster.items if item.jid == JID(contact)), None)


async def test_subscription_handshake_presence_and_chat(pair: JaybirdWithAccounts) -> None:
    juliet_jid, romeo_jid = pair.juliet.jid, pair.romeo.jid
    async with session(pair.server, pair.romeo) as romeo, session(pair.server, pair.juliet) as juliet:
        # RFC 6121 §3.1: juliet asks, romeo approves and asks back, juliet approves.
        await subscribe(juliet.client, romeo_jid)
        request = await romeo.next(from_bare(juliet_jid, Presence))
        assert isinstance(request, Presence) and request.type is PresenceType.SUBSCRIBE
        await approve(romeo.client, juliet_jid)
        await subscribe(romeo.client, juliet_jid)
        back = await juliet.next(
            lambda s: isinstance(s, Presence) and s.type is PresenceType.SUBSCRIBE and from_bare(romeo_jid, Presence)(s)
        )
        assert back.to is not None and back.to.bare == JID(juliet_jid)
        await approve(juliet.client, romeo_jid)

        # §3.1.5-§3.1.6: each is sent the other's available presence once its subscription is approved.
        seen_by_juliet = await juliet.next(
            lambda s: isinstance(s, Presence) and s.type is PresenceType.AVAILABLE and s.from_ == romeo.client.jid
        )
        seen_by_romeo = await romeo.next(
            lambda s: isinstance(s, Presence) and s.type is PresenceType.AVAILABLE and s.from_ == juliet.client.jid
        )
        assert seen_by_juliet.to is not None and seen_by_romeo.to is not None
        # Both rosters end at "both", in the pushes (§2.1.6) and in a fresh roster get (§2.2).
        async with asyncio.timeout(WAIT):
            while not (pushed(juliet, romeo_jid) is pushed(romeo, juliet_jid) is Subscription.BOTH):
                await asyncio.sleep(0.05)
        assert await subscription_of(juliet, romeo_jid) is Subscription.BOTH
        assert await subscription_of(romeo, juliet_jid) is Subscription.BOTH

        # §5: chat both ways.
        await juliet.client.send(Message.build(romeo_jid, "Romeo, Romeo!", type=MessageType.CHAT))
        received = await romeo.next(chat_with_body("Romeo, Romeo!"))
        assert received.from_ == juliet.client.jid
        await romeo.client.send(Message.build(received.from_, "I take thee at thy word", type=MessageType.CHAT))
        answer = await juliet.next(chat_with_body("I take thee at thy word"))
        assert answer.from_ == romeo.client.jid


async def test_offline_message_survives_a_restart_with_delay_stamp(pair: JaybirdWithAccounts) -> None:
    server = pair.server
    body = f"read this when you are back {uuid.uuid4()}"
    async with session(server, pair.romeo):
        pass
    async with session(server, pair.juliet) as juliet:
        before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        await juliet.client.send(Message.build(pair.romeo.jid, body, type=MessageType.CHAT))
        await barrier(juliet.client)
        assert await juliet.nothing(lambda s: s.is_error)
    server.restart()
    async with session(server, pair.romeo) as romeo:
        received = await romeo.next(chat_with_body(body))
    assert received.from_ is not None and received.from_.bare == JID(pair.juliet.jid)
    delay_element = received.find(DELAY)
    assert delay_element is not None, received
    delay = Delay.from_element(delay_element)
    # XEP-0203 §3: when the server first received it, in UTC.
    assert before <= delay.stamp <= datetime.datetime.now(datetime.UTC)
    assert delay.from_ == pair.server.domain


async def test_blocking_stops_delivery_and_unblock_restores_it(pair: JaybirdWithAccounts) -> None:
    juliet_jid, romeo_jid = JID(pair.juliet.jid), JID(pair.romeo.jid)
    async with session(pair.server, pair.romeo) as romeo, session(pair.server, pair.juliet) as juliet:
        await romeo.client.iq(Iq.build(IqType.SET, Block((juliet_jid,))))
        listed = await romeo.client.iq(Iq.build(IqType.GET, BlockList()))
        assert listed.get(BlockList) == BlockList((juliet_jid,))

        attempt = Message.build(romeo_jid, "are you there?", type=MessageType.CHAT)
        await juliet.client.send(attempt)
        # XEP-0191 §3.3: not delivered; the blocked sender is told service-unavailable.
        error = await juliet.next(lambda s: isinstance(s, Message) and s.is_error and s.id == attempt.id)
        assert error.error is not None and error.error.condition is StanzaErrorCondition.SERVICE_UNAVAILABLE
        assert await romeo.nothing(chat_with_body("are you there?"))

        await romeo.client.iq(Iq.build(IqType.SET, Unblock((juliet_jid,))))
        await juliet.client.send(Message.build(romeo_jid, "now?", type=MessageType.CHAT))
        received = await romeo.next(chat_with_body("now?"))
        assert received.from_ == juliet.client.jid


async def test_vcard_round_trip(pair: JaybirdWithAccounts) -> None:
    card = Element(VCARD)
    card.add(f"{{{VCARD_NS}}}FN", text="Juliet Capulet")
    card.add(f"{{{VCARD_NS}}}NICKNAME", text="jules")
    async with session(pair.server, pair.juliet) as juliet:
        await juliet.client.iq(Iq.build(IqType.SET, VCard(card)))
        own = (await juliet.client.iq(Iq.build(IqType.GET, VCard()))).get(VCard)
        assert own is not None and own.field("FN") == "Juliet Capulet"
    async with session(pair.server, pair.romeo) as romeo:
        # XEP-0054 §3.2: another user's vCard, at her bare JID, while she is offline.
        reply = await romeo.client.iq(Iq.build(IqType.GET, VCard(), to=pair.juliet.jid))
    other = reply.get(VCard)
    assert other is not None
    assert (other.field("FN"), other.field("NICKNAME")) == ("Juliet Capulet", "jules")


async def test_go_sendxmpp_delivers_to_a_jaybird_account(pair: JaybirdWithAccounts, tmp_path: Path) -> None:
    binary = require_binary("go-sendxmpp")
    server = pair.server
    body = f"hello from go-sendxmpp {uuid.uuid4()}"
    # Go reads extra trust anchors from SSL_CERT_FILE, so the certificate is verified (no -n); HOME is an
    # empty directory, so no user configuration file is read.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "SSL_CERT_FILE": str(server.ca_file)}
    async with session(server, pair.romeo) as romeo:
        process = await asyncio.create_subprocess_exec(
            binary,
            "--jserver", f"{server.host}:{server.c2s_port}",
            "--username", pair.juliet.jid,
            "--password", pair.juliet.password,
            "--timeout", "10",
            pair.romeo.jid,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )  # fmt: skip
        try:
            output, _ = await asyncio.wait_for(process.communicate(body.encode()), WAIT)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, output.decode(errors="replace")
        received = await romeo.next(lambda s: isinstance(s, Message) and s.body == body)
    assert received.from_ is not None and received.from_.bare == JID(pair.juliet.jid)
    # This go-sendxmpp (Debian, go-xmpp of 2022) picks PLAIN over TLS whatever SCRAM is offered.
    assert f"authenticated as {pair.juliet.jid} (" in server.log_text()
