"""slixmpp (a third-party client library) against `jaybird serve` running as a subprocess.

The IM basics a stock client relies on: SCRAM over STARTTLS (RFC 6120 §5, §6), the subscription handshake and
presence (RFC 6121 §3, §4), messages (§5), offline storage across a restart with a XEP-0203 delay stamp
(XEP-0160), blocking (XEP-0191) and vcard-temp (XEP-0054).
"""

import asyncio
import datetime
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import slixmpp

from tests.peers import Account
from tests.peers.jaybird import JaybirdServer, JaybirdWithAccounts

pytestmark = pytest.mark.interop

WAIT = 10.0
#: How long to watch for a stanza that must not arrive.
QUIET = 1.0
PLUGINS = ("xep_0030", "xep_0054", "xep_0191", "xep_0199", "xep_0203")


@pytest.fixture(scope="module")
def jaybird(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JaybirdServer]:
    with JaybirdServer(tmp_path_factory.mktemp("jaybird-slixmpp")) as server:
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
    """A logged-in slixmpp client and what it has received since before it connected."""

    client: slixmpp.ClientXMPP
    messages: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    errors: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    available: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    subscribe_requests: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)

    @property
    def mechanism(self) -> str:
        mech = self.client.plugin["feature_mechanisms"].mech
        assert mech is not None, "not authenticated"
        return str(mech.name)

    def subscription(self, jid: str) -> str:
        return str(self.client.client_roster[jid]["subscription"])


@asynccontextmanager
async def session(server: JaybirdServer, account: Account) -> AsyncIterator[Peer]:
    """A slixmpp client logged in as `account` over STARTTLS, verifying the server against the test CA, with
    its roster fetched and initial presence sent back to it; disconnected on exit, whatever happened."""
    client = slixmpp.ClientXMPP(account.jid, account.password)
    for plugin in PLUGINS:
        client.register_plugin(plugin)
    client.ca_certs = server.ca_file
    client.enable_plaintext = False
    client.enable_direct_tls = False
    client.enable_starttls = True
    # Subscription requests are answered by the test, not by slixmpp's defaults.
    # slixmpp documents None as "do not answer" but types the property as bool.
    client.roster.auto_authorize = None  # type: ignore[assignment]
    client.roster.auto_subscribe = False
    peer = Peer(client)
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def fail(reason: str) -> None:
        if not ready.done():
            ready.set_exception(AssertionError(f"{account.jid}: {reason}"))

    async def on_session_start(_: Any) -> None:
        await client.get_roster(timeout=WAIT)
        client.send_presence()

    def on_available(presence: Any) -> None:
        # RFC 6121 §4.2.2: the server returns initial presence to the resource that sent it.
        if presence["from"] == client.boundjid:
            if not ready.done():
                ready.set_result(None)
        else:
            peer.available.put_nowait(presence)

    client.add_event_handler("session_start", on_session_start)
    client.add_event_handler("presence_available", on_available)
    client.add_event_handler("presence_subscribe", peer.subscribe_requests.put_nowait)
    # slixmpp's "message" event is for messages with a body; errors (which need not carry one) come apart.
    client.add_event_handler("message", peer.messages.put_nowait)
    client.add_event_handler("message_error", peer.errors.put_nowait)
    client.add_event_handler("failed_all_auth", lambda _: fail("authentication failed"))
    client.add_event_handler("connection_failed", lambda err: fail(f"connection failed: {err}"))
    try:
        client.connect(host=server.host, port=server.c2s_port)
        await asyncio.wait_for(ready, WAIT)
        yield peer
    finally:
        client.cancel_connection_attempt()
        with suppress(TimeoutError):
            await asyncio.wait_for(client.disconnect(wait=1.0), WAIT)
        client.abort()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` (state slixmpp updates from its own handlers) for at most WAIT seconds."""
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.05)
    assert condition(), what


async def next_matching(queue: asyncio.Queue[Any], match: Callable[[Any], bool]) -> Any:
    async with asyncio.timeout(WAIT):
        while True:
            item = await queue.get()
            if match(item):
                return item


async def nothing_matching(queue: asyncio.Queue[Any], match: Callable[[Any], bool]) -> bool:
    try:
        await asyncio.wait_for(next_matching(queue, match), QUIET)
    except TimeoutError:
        return True
    return False


def with_body(body: str) -> Callable[[Any], bool]:
    return lambda message: bool(message["body"] == body)


async def round_trip(peer: Peer) -> None:
    """An IQ to the server and back: what the client sent before has been routed once this returns."""
    await peer.client.plugin["xep_0199"].ping(jid=slixmpp.JID(peer.client.boundjid.domain), timeout=WAIT)


async def test_scram_login_over_starttls(pair: JaybirdWithAccounts) -> None:
    async with session(pair.server, pair.juliet) as juliet:
        assert juliet.client.boundjid.bare == pair.juliet.jid
        assert juliet.mechanism.startswith("SCRAM-SHA-"), juliet.mechanism
    # The server's side of the same fact (RFC 6120 §6.4.6: the mechanism the client chose).
    assert f"authenticated as {pair.juliet.jid} ({juliet.mechanism})" in pair.server.log_text()


async def test_subscription_handshake_presence_and_chat(pair: JaybirdWithAccounts) -> None:
    juliet_jid, romeo_jid = pair.juliet.jid, pair.romeo.jid
    async with session(pair.server, pair.romeo) as romeo, session(pair.server, pair.juliet) as juliet:
        # RFC 6121 §3.1: juliet asks; romeo approves and asks back; juliet approves.
        juliet.client.send_presence(pto=romeo_jid, ptype="subscribe")
        request = await next_matching(romeo.subscribe_requests, lambda p: p["from"].bare == juliet_jid)
        assert request["to"].bare == romeo_jid
        romeo.client.send_presence(pto=juliet_jid, ptype="subscribed")
        romeo.client.send_presence(pto=juliet_jid, ptype="subscribe")
        await next_matching(juliet.subscribe_requests, lambda p: p["from"].bare == romeo_jid)
        juliet.client.send_presence(pto=romeo_jid, ptype="subscribed")

        # §3.1.5 / §3.1.6: each roster ends at "both" (roster pushes), and each side is sent the other's
        # current presence once its subscription is approved.
        await until(lambda: juliet.subscription(romeo_jid) == "both", "juliet's roster: romeo both")
        await until(lambda: romeo.subscription(juliet_jid) == "both", "romeo's roster: juliet both")
        seen_by_juliet = await next_matching(juliet.available, lambda p: p["from"].bare == romeo_jid)
        seen_by_romeo = await next_matching(romeo.available, lambda p: p["from"].bare == juliet_jid)
        assert seen_by_juliet["from"] == romeo.client.boundjid
        assert seen_by_romeo["from"] == juliet.client.boundjid

        # RFC 6121 §5: chat both ways, to the bare JID.
        juliet.client.send_message(mto=slixmpp.JID(romeo_jid), mbody="Romeo, Romeo!", mtype="chat")
        received = await next_matching(romeo.messages, with_body("Romeo, Romeo!"))
        assert received["from"] == juliet.client.boundjid
        assert received["type"] == "chat"
        romeo.client.send_message(mto=received["from"], mbody="I take thee at thy word", mtype="chat")
        answer = await next_matching(juliet.messages, with_body("I take thee at thy word"))
        assert answer["from"] == romeo.client.boundjid


async def test_offline_message_survives_a_restart_with_delay_stamp(pair: JaybirdWithAccounts) -> None:
    server = pair.server
    body = f"read this when you are back {uuid.uuid4()}"
    async with session(server, pair.romeo):
        pass  # romeo has been online once, and is offline now
    async with session(server, pair.juliet) as juliet:
        before = datetime.datetime.now(datetime.UTC)
        juliet.client.send_message(mto=slixmpp.JID(pair.romeo.jid), mbody=body, mtype="chat")
        await round_trip(juliet)
        assert juliet.errors.empty(), juliet.errors.get_nowait()
    server.restart()  # SIGTERM -> exit status 0 -> start on the same data and ports
    async with session(server, pair.romeo) as romeo:
        received = await next_matching(romeo.messages, with_body(body))
    assert received["from"].bare == pair.juliet.jid
    stamp = received["delay"]["stamp"]
    # XEP-0203 §3: the time the server first received it, in UTC; seconds precision is allowed.
    assert isinstance(stamp, datetime.datetime), stamp
    assert stamp.tzinfo is not None
    assert before - datetime.timedelta(seconds=1) <= stamp <= datetime.datetime.now(datetime.UTC)


async def test_blocking_stops_delivery_and_unblock_restores_it(pair: JaybirdWithAccounts) -> None:
    juliet_jid = slixmpp.JID(pair.juliet.jid)
    romeo_jid = slixmpp.JID(pair.romeo.jid)
    async with session(pair.server, pair.romeo) as romeo, session(pair.server, pair.juliet) as juliet:
        await romeo.client.plugin["xep_0191"].block([juliet_jid], timeout=WAIT)
        assert juliet_jid in await romeo.client.plugin["xep_0191"].get_blocked_jids(timeout=WAIT)

        message = juliet.client.make_message(mto=romeo_jid, mbody="are you there?", mtype="chat")
        message["id"] = sent_id = uuid.uuid4().hex
        message.send()
        # XEP-0191 §3.3 (blocked entity): the message is not delivered; the sender gets service-unavailable,
        # matched by id (RFC 6120 §8.3.1: the error need not carry the original payload).
        error = await next_matching(juliet.errors, lambda m: m["id"] == sent_id)
        assert error["error"]["condition"] == "service-unavailable"
        assert await nothing_matching(romeo.messages, with_body("are you there?"))

        await romeo.client.plugin["xep_0191"].unblock([juliet_jid], timeout=WAIT)
        assert juliet_jid not in await romeo.client.plugin["xep_0191"].get_blocked_jids(timeout=WAIT)
        juliet.client.send_message(mto=romeo_jid, mbody="now?", mtype="chat")
        received = await next_matching(romeo.messages, with_body("now?"))
        assert received["from"] == juliet.client.boundjid


async def test_vcard_round_trip(pair: JaybirdWithAccounts) -> None:
    juliet_jid = slixmpp.JID(pair.juliet.jid)
    async with session(pair.server, pair.juliet) as juliet:
        vcard = juliet.client.plugin["xep_0054"].make_vcard()
        vcard["FN"] = "Juliet Capulet"
        vcard["NICKNAME"] = "jules"
        await juliet.client.plugin["xep_0054"].publish_vcard(vcard, timeout=WAIT)
        # XEP-0054 §3.1: her own vCard, fetched from the server, not from slixmpp's cache.
        own = await juliet.client.plugin["xep_0054"].get_vcard(juliet_jid, local=False, timeout=WAIT)
        assert own["vcard_temp"]["FN"] == "Juliet Capulet"
        assert own["vcard_temp"]["NICKNAME"] == ["jules"]  # slixmpp reads NICKNAME as a list
    async with session(pair.server, pair.romeo) as romeo:
        # §3.2: another user's vCard, addressed to her bare JID, while she is offline.
        other = await romeo.client.plugin["xep_0054"].get_vcard(juliet_jid, local=False, timeout=WAIT)
    assert other["from"].bare == pair.juliet.jid
    assert other["vcard_temp"]["FN"] == "Juliet Capulet"
    assert other["vcard_temp"]["NICKNAME"] == ["jules"]


async def test_restart_exits_zero_and_keeps_accounts(tmp_path: Path) -> None:
    # The fixture's own contract: a graceful stop is exit status 0, and the data directory survives it.
    with JaybirdServer(tmp_path) as server:
        account = server.add_user("nurse", "secret")
        ports = (server.c2s_port, server.c2s_tls_port)
        first_pid = server.pid
        server.restart()
        assert server.last_exit_code == 0
        assert (server.c2s_port, server.c2s_tls_port) == ports
        assert server.pid != first_pid
        async with session(server, account) as nurse:
            assert nurse.client.boundjid.bare == "nurse@localhost"
    assert server.pid is None
    assert server.last_exit_code == 0
