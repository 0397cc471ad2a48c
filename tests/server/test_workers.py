"""`jaybird serve` with `workers = 2`: clients on different worker processes see one server.

The server runs as a subprocess on free loopback ports. Every worker prefixes its log lines with
`[worker <i>]`, and the c2s driver logs `<full JID>: session bound`, so a test knows which worker holds each of
its clients and connects until it has them where it needs them (the kernel spreads connections over the
workers' SO_REUSEPORT sockets; each attempt lands on either worker, so a few attempts suffice).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jaybird.cli import main
from jaybird.client import Client, ConnectionLost
from jaybird.ext.blocking.wire import BLOCK, Block, BlockList
from jaybird.ext.offline.wire import DELAY
from jaybird.ext.roster.client import approve, get_roster, handle_pushes, set_item, subscribe
from jaybird.ext.roster.wire import RosterItem
from jaybird.jid import JID
from jaybird.server.auth import add_user
from jaybird.server.storage import open_storage
from jaybird.stanza import Iq, IqType, Message, MessageType, Presence, PresenceType
from tests.peers.jaybird import LOOPBACK, SCRAM_ITERATIONS, JaybirdError, JaybirdServer

WAIT = 10.0
QUIET = 0.5
PASSWORD = "shared-by-workers"
#: Connection attempts to land a client on a chosen worker: each lands on either, so failing all is ~2^-40.
ATTEMPTS = 40


class ClusterServer(JaybirdServer):
    """`jaybird serve` with two workers; started once the supervisor logs that both are ready."""

    def _config(self) -> str:
        return "workers = 2\n" + super()._config()

    def start(self) -> None:
        super().start()
        deadline = time.monotonic() + 30.0
        while "all 2 workers ready" not in self.log_text():
            if self._process is None or self._process.poll() is not None:
                raise JaybirdError(f"the supervisor exited\n{self._log_tail()}")
            if time.monotonic() > deadline:
                raise JaybirdError(f"the workers did not get ready\n{self._log_tail()}")
            time.sleep(0.02)

    @property
    def storage_url(self) -> str:
        return "sqlite:///" + str(self.data_dir / "jaybird.sqlite3")

    def worker_pids(self) -> list[int]:
        found = re.findall(r"started 2 workers \(pids (\d+), (\d+)\)", self.log_text())
        assert found, self._log_tail()
        return [int(pid) for pid in found[-1]]

    def worker_of(self, jid: JID) -> int | None:
        found = re.findall(rf"\[worker (\d+)\] {re.escape(str(jid))}: session bound", self.log_text())
        return int(found[-1]) if found else None

    def wait_exit(self, timeout: float) -> int:
        assert self._process is not None
        return self._process.wait(timeout)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServer]:
    with ClusterServer(tmp_path_factory.mktemp("workers")) as server:
        yield server


async def accounts(server: ClusterServer, *names: str) -> list[JID]:
    """Fresh accounts (a unique suffix per call), written straight into the database the workers share."""
    tag = uuid.uuid4().hex[:6]
    jids = [JID(f"{name}-{tag}@{server.domain}") for name in names]
    storage = await open_storage(server.storage_url)
    try:
        for jid in jids:
            await add_user(storage, jid, PASSWORD, iterations=SCRAM_ITERATIONS)
    finally:
        await storage.close()
    return jids


@dataclass
class Peer:
    """A logged-in client, the worker holding it, everything it received and its roster pushes."""

    client: Client
    worker: int
    received: list[object] = field(default_factory=list)
    pushes: list[RosterItem] = field(default_factory=list)
    ended: BaseException | None = None
    _taken: set[int] = field(default_factory=set)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def jid(self) -> JID:
        return self.client.jid

    def put(self, stanza: object) -> None:
        self.received.append(stanza)
        self._arrived.set()

    async def next(self, match: Callable[[object], bool], timeout: float = WAIT) -> object:
        async with asyncio.timeout(timeout):
            while True:
                for index, stanza in enumerate(self.received):
                    if index not in self._taken and match(stanza):
                        self._taken.add(index)
                        return stanza
                self._arrived.clear()
                await self._arrived.wait()

    async def nothing(self, match: Callable[[object], bool]) -> bool:
        try:
            await self.next(match, QUIET)
        except TimeoutError:
            return True
        return False


class Peers:
    """Connects clients to a chosen worker and closes them all at the end."""

    def __init__(self, server: ClusterServer, stack: contextlib.AsyncExitStack) -> None:
        self._server = server
        self._stack = stack

    async def _bind(self, account: JID, resource: str) -> tuple[Client, int]:
        client = Client(
            account,
            PASSWORD,
            host=LOOPBACK,
            port=self._server.c2s_port,
            direct_tls=False,
            ca_file=str(self._server.ca_file),
            resource=resource,
            reconnect=False,
            negotiation_timeout=WAIT,
            iq_timeout=WAIT,
        )
        await client.__aenter__()
        async with asyncio.timeout(WAIT):
            while (worker := self._server.worker_of(client.jid)) is None:
                await asyncio.sleep(0.01)
        return client, worker

    async def connect(
        self,
        account: JID,
        *,
        worker: int | None = None,
        resource: str | None = None,
        priority: int = 0,
        other_than: Peer | None = None,
    ) -> Peer:
        """A client of ``account`` on ``worker`` (or on the worker ``other_than`` is not on), that fetched its
        roster (so it gets pushes) and sent available presence with ``priority``, and saw it come back."""
        if other_than is not None:
            worker = 1 - other_than.worker
        for attempt in range(ATTEMPTS):
            client, landed = await self._bind(account, resource or f"r{attempt}-{uuid.uuid4().hex[:4]}")
            if worker is None or landed == worker:
                break
            await client.close()
        else:
            pytest.fail(f"no connection landed on worker {worker} in {ATTEMPTS} attempts")
        peer = Peer(client, landed)
        self._stack.push_async_callback(client.close)
        handle_pushes(client, lambda item, _ver: peer.pushes.append(item))
        subscribed = asyncio.Event()

        async def collect() -> None:
            stanzas = client.stanzas()
            subscribed.set()
            try:
                async for stanza in stanzas:
                    peer.put(stanza)
            except ConnectionLost as exc:
                peer.ended = exc
                peer._arrived.set()

        task = asyncio.ensure_future(collect())
        self._stack.callback(task.cancel)
        await asyncio.wait_for(subscribed.wait(), WAIT)
        await asyncio.sleep(0)
        assert await get_roster(client) is not None
        await client.send(Presence.build(priority=priority))
        await peer.next(lambda s: isinstance(s, Presence) and s.from_ == client.jid)
        return peer


@pytest.fixture
async def peers(cluster: ClusterServer) -> AsyncIterator[Peers]:
    async with contextlib.AsyncExitStack() as stack:
        yield Peers(cluster, stack)


def chat(body: str) -> Callable[[object], bool]:
    return lambda s: isinstance(s, Message) and s.body == body and not s.is_error


def presence_from(jid: JID, type_: PresenceType = PresenceType.AVAILABLE) -> Callable[[object], bool]:
    return lambda s: isinstance(s, Presence) and s.from_ == jid and s.type is type_


# -- routing between workers ------------------------------------------------------------------------------------


async def test_messages_between_clients_on_different_workers(cluster: ClusterServer, peers: Peers) -> None:
    alice_jid, bob_jid = await accounts(cluster, "alice", "bob")
    alice = await peers.connect(alice_jid, worker=0)
    bob = await peers.connect(bob_jid, worker=1)
    assert (alice.worker, bob.worker) == (0, 1)
    for n in range(3):
        await alice.client.send(Message.build(bob.jid, f"ping {n}", type=MessageType.CHAT))
        received = await bob.next(chat(f"ping {n}"))
        assert isinstance(received, Message) and received.from_ == alice.jid
        await bob.client.send(Message.build(alice.jid, f"pong {n}", type=MessageType.CHAT))
        answer = await alice.next(chat(f"pong {n}"))
        assert isinstance(answer, Message) and answer.from_ == bob.jid


async def test_presence_subscription_and_broadcast_across_workers(cluster: ClusterServer, peers: Peers) -> None:
    alice_jid, bob_jid = await accounts(cluster, "alice", "bob")
    alice = await peers.connect(alice_jid)
    bob = await peers.connect(bob_jid, other_than=alice)
    # RFC 6121 §3.1: alice asks, bob (on the other worker) approves; alice then hears bob's presence.
    await subscribe(alice.client, bob_jid)
    request = await bob.next(lambda s: isinstance(s, Presence) and s.type is PresenceType.SUBSCRIBE)
    assert isinstance(request, Presence) and request.from_ == alice_jid
    await approve(bob.client, alice_jid)
    await alice.next(presence_from(bob.jid))
    # §4.4: bob's presence update and §4.5 his going away reach alice on the other worker.
    await bob.client.send(Presence.build(status="in a meeting"))
    update = await alice.next(presence_from(bob.jid))
    assert isinstance(update, Presence) and update.status == "in a meeting"
    await bob.client.close()
    await alice.next(presence_from(bob.jid, PresenceType.UNAVAILABLE))


async def test_roster_push_reaches_a_resource_on_the_other_worker(cluster: ClusterServer, peers: Peers) -> None:
    (carol_jid,) = await accounts(cluster, "carol")
    here = await peers.connect(carol_jid)
    there = await peers.connect(carol_jid, other_than=here)
    await set_item(here.client, "nurse@verona.example", name="Nurse")
    async with asyncio.timeout(WAIT):
        while not any(item.jid == JID("nurse@verona.example") for item in there.pushes):
            await asyncio.sleep(0.02)
    assert next(item for item in there.pushes if item.jid == JID("nurse@verona.example")).name == "Nurse"


async def test_bare_jid_message_goes_to_the_highest_priority_resource(cluster: ClusterServer, peers: Peers) -> None:
    dave_jid, erin_jid = await accounts(cluster, "dave", "erin")
    low = await peers.connect(dave_jid, worker=0, priority=1)
    high = await peers.connect(dave_jid, worker=1, priority=5)
    erin = await peers.connect(erin_jid)
    await erin.client.send(Message.build(dave_jid, "to the top", type=MessageType.CHAT))
    await high.next(chat("to the top"))
    assert await low.nothing(chat("to the top"))
    # The other worker learns of a priority change: now the resource on worker 0 is the one.
    await low.client.send(Presence.build(priority=10))
    await low.next(presence_from(low.jid))
    await high.next(presence_from(low.jid))  # sent by worker 0 after it published the new priority
    await erin.client.send(Message.build(dave_jid, "new top", type=MessageType.CHAT))
    await low.next(chat("new top"))
    assert await high.nothing(chat("new top"))


async def test_offline_storage_when_no_worker_has_a_session(cluster: ClusterServer, peers: Peers) -> None:
    frank_jid, gina_jid = await accounts(cluster, "frank", "gina")
    gina = await peers.connect(gina_jid)
    frank = await peers.connect(frank_jid, other_than=gina)
    # frank's session ends on its worker; gina's worker must forget it, or the message would go nowhere.
    await frank.client.close()
    async with asyncio.timeout(WAIT):
        while not re.search(rf"\[worker {frank.worker}\] {re.escape(str(frank.jid))}: closed", cluster.log_text()):
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    await gina.client.send(Message.build(frank_jid, "while you were out", type=MessageType.CHAT))
    await asyncio.sleep(0.2)
    again = await peers.connect(frank_jid)
    stored = await again.next(chat("while you were out"))
    assert isinstance(stored, Message) and stored.element.find(DELAY) is not None


async def test_resource_conflict_across_workers_newer_session_wins(cluster: ClusterServer, peers: Peers) -> None:
    hank_jid, ivy_jid = await accounts(cluster, "hank", "ivy")
    ivy = await peers.connect(ivy_jid)
    # Bind the same full JID until two consecutive sessions are on different workers: the last one replaced
    # one on the other worker (the earlier replacements may have been on the same worker).
    older = await peers.connect(hank_jid, resource="desk")
    newer = await peers.connect(hank_jid, resource="desk")
    for _ in range(ATTEMPTS):
        if newer.worker != older.worker:
            break
        older, newer = newer, await peers.connect(hank_jid, resource="desk")
    assert newer.worker != older.worker
    async with asyncio.timeout(WAIT):
        while older.ended is None:
            await older._arrived.wait()
            older._arrived.clear()
    assert "conflict" in str(older.ended)
    await ivy.client.send(Message.build(newer.jid, "who is there?", type=MessageType.CHAT))
    await newer.next(chat("who is there?"))


async def test_a_block_on_one_worker_holds_on_the_other(cluster: ClusterServer, peers: Peers) -> None:
    # XEP-0191: each worker caches blocklists; a change on one reaches the other's cache and its resources.
    judy_jid, kim_jid = await accounts(cluster, "judy", "kim")
    judy = await peers.connect(judy_jid)
    judy_there = await peers.connect(judy_jid, other_than=judy)
    kim = await peers.connect(kim_jid, worker=judy_there.worker)
    await judy_there.client.iq(Iq.build(IqType.GET, BlockList()))  # this resource now gets blocklist pushes
    await kim.client.send(Message.build(judy_jid, "before", type=MessageType.CHAT))
    await judy.next(chat("before"))  # kim's worker has judy's (empty) blocklist cached now
    await judy.client.iq(Iq.build(IqType.SET, Block((kim_jid,))))
    push = await judy_there.next(lambda s: isinstance(s, Iq) and s.type is IqType.SET)
    assert isinstance(push, Iq) and push.payload is not None and push.payload.name == BLOCK
    await kim.client.send(Message.build(judy_jid, "after", type=MessageType.CHAT))
    bounced = await kim.next(lambda s: isinstance(s, Message) and s.is_error)
    assert isinstance(bounced, Message) and bounced.from_ == judy_jid
    assert await judy.nothing(chat("after"))


# -- the processes ----------------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"worker processes {pids} still running"
        time.sleep(0.02)


def test_sigterm_stops_every_worker(tmp_path: Path) -> None:
    server = ClusterServer(tmp_path)
    server.start()
    try:
        pids = server.worker_pids()
        assert all(_alive(pid) for pid in pids)
        began = time.monotonic()
        server.stop()  # SIGTERM to the supervisor, SIGKILL after stop_timeout
        assert server.last_exit_code == 0, server.log_text()
        assert time.monotonic() - began < 8.0
        _wait_gone(pids, 1.0)
        assert "stopping 2 workers" in server.log_text()
    finally:
        server.stop()


def test_a_killed_worker_stops_the_server_with_an_error(tmp_path: Path) -> None:
    server = ClusterServer(tmp_path)
    server.start()
    try:
        pids = server.worker_pids()
        os.kill(pids[1], signal.SIGKILL)
        try:
            code = server.wait_exit(15.0)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the supervisor kept running after a worker died\n{server.log_text()}")
        assert code == 1
        assert "worker 1 (pid" in server.log_text() and "was killed by SIGKILL" in server.log_text()
        _wait_gone(pids, 5.0)
    finally:
        server.stop()


def test_memory_storage_with_workers_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "jaybird.toml"
    config.write_text(f"workers = 2\ndata_dir = {json.dumps(str(tmp_path))}\n[storage]\nurl = 'memory://'\n")
    assert main(["serve", "--config", str(config)]) == 1
    assert (
        "workers: workers = 2 needs a storage every worker shares; storage.url is memory://" in capsys.readouterr().err
    )
    assert main(["serve", "--config", str(config), "--workers", "0"]) == 2
    assert "command line: --workers: expected" in capsys.readouterr().err
