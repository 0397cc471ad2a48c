"""Two-sided tests of the roster and presence modules: jaybird clients against an in-process jaybird server.

A :class:`Peer` records, in arrival order, every presence and roster push its client receives (pushes are
answered, as RFC 6121 §2.1.6 asks of clients), and lets a test wait for the one it expects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from jaybird.client import Client
from jaybird.ext.roster.client import handle_pushes
from jaybird.ext.roster.wire import RosterItem, Subscription
from jaybird.jid import JID
from jaybird.stanza import Presence, PresenceType
from tests.server.conftest import RunningServer

WAIT = 5.0
QUIET = 0.3
PASSWORD = "capulet-and-montague"


@dataclass(frozen=True)
class Push:
    item: RosterItem
    ver: str | None


Received = Presence | Push


class Peer:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._queue: asyncio.Queue[Received] = asyncio.Queue()
        self._backlog: list[Received] = []
        client.mux.handle_presence(self._queue.put_nowait)
        handle_pushes(client, lambda item, ver: self._queue.put_nowait(Push(item, ver)))

    @property
    def jid(self) -> JID:
        return self.client.jid

    async def expect(self, wanted: Callable[[Received], bool], what: str = "", timeout: float = WAIT) -> Received:
        """The first received stanza (earlier ones not yet expected included) that ``wanted`` accepts."""
        for index, got in enumerate(self._backlog):
            if wanted(got):
                return self._backlog.pop(index)
        async with asyncio.timeout(timeout):
            while True:
                got = await self._queue.get()
                if wanted(got):
                    return got
                self._backlog.append(got)
        raise AssertionError(f"unreachable: {what}")  # pragma: no cover

    async def expect_push(self, jid: JID, subscription: Subscription, *, ask: bool = False) -> Push:
        got = await self.expect(is_push(jid), f"push for {jid}")
        assert isinstance(got, Push)
        assert (got.item.subscription, got.item.ask) == (subscription, ask), got
        return got

    async def expect_presence(self, sender: JID, type_: PresenceType = PresenceType.AVAILABLE) -> Presence:
        got = await self.expect(is_presence(sender, type_), f"{type_} from {sender}")
        assert isinstance(got, Presence)
        return got

    async def nothing(self, wanted: Callable[[Received], bool], duration: float = QUIET) -> None:
        """Assert that no stanza ``wanted`` accepts arrives (or has arrived) within ``duration``."""
        with contextlib.suppress(TimeoutError):
            got = await self.expect(wanted, timeout=duration)
            raise AssertionError(f"unexpected {got}")


def is_push(jid: JID) -> Callable[[Received], bool]:
    return lambda got: isinstance(got, Push) and got.item.jid == jid.bare


def is_presence(sender: JID, type_: PresenceType | None = None) -> Callable[[Received], bool]:
    def check(got: Received) -> bool:
        return isinstance(got, Presence) and got.from_ == sender and (type_ is None or got.type is type_)

    return check


class Cast:
    """Accounts on one running server, and their connected peers."""

    def __init__(self, running: RunningServer, stack: contextlib.AsyncExitStack) -> None:
        self.running = running
        self._stack = stack

    async def account(self, local: str) -> JID:
        return await self.running.add_user(local, PASSWORD)

    async def connect(self, account: JID, resource: str) -> Peer:
        peer = Peer(self.running.client(account, PASSWORD, resource=resource))
        await peer.client.connect()
        self._stack.push_async_callback(peer.client.close)
        return peer


@contextlib.asynccontextmanager
async def cast(running: RunningServer) -> AsyncIterator[Cast]:
    async with contextlib.AsyncExitStack() as stack:
        yield Cast(running, stack)
