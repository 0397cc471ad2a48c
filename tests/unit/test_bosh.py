"""The BOSH client transport against a small scripted connection manager (aiohttp on loopback): session
creation (XEP-0124 §7.1), rid sequencing and in-order delivery (§7), acks (§9), resending after a network error
with the same rid (§14.3), HTTP errors (§17.1) and terminate (§13)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from jaybird.stream.framing import TERMINATE_FRAME, XBOSH_VERSION, body_frame
from jaybird.transport.bosh import BoshConnection, BoshError, KeySequence, open_bosh
from jaybird.xml import parser
from jaybird.xml.element import Element

pytestmark = pytest.mark.timeout(20)

FIRST_RID = 1000
BODY_NS = "http://jabber.org/protocol/httpbind"
Script = Callable[[web.Request, Element, "Manager"], Awaitable[web.StreamResponse]]


def parse(data: bytes) -> Element:
    (event,) = parser.XMLStreamParser(root=None).feed(data)
    assert isinstance(event, parser.ElementReceived)
    return event.element


def reply(inner: str = "", **attrs: str) -> web.Response:
    head = "".join(f" {k}='{v}'" for k, v in attrs.items())
    return web.Response(text=f"<body xmlns='{BODY_NS}'{head}>{inner}</body>", content_type="text/xml")


@dataclass
class Manager:
    script: Script
    seen: list[Element] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    attempts: dict[int, int] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        data = await request.read()
        body = parse(data)
        self.raw.append(data)
        self.seen.append(body)
        rid = int(body.attrs["rid"])
        self.attempts[rid] = self.attempts.get(rid, 0) + 1
        return await self.script(request, body, self)


async def start(manager: Manager) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/http-bind", manager.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/http-bind"


@pytest.fixture
async def served() -> AsyncIterator[Callable[[Script], Awaitable[tuple[Manager, BoshConnection]]]]:
    runners: list[web.AppRunner] = []
    conns: list[BoshConnection] = []
    managers: list[Manager] = []

    async def make(script: Script) -> tuple[Manager, BoshConnection]:
        manager = Manager(script)
        managers.append(manager)
        runner, url = await start(manager)
        runners.append(runner)
        conn = await open_bosh(url, domain="example.net", wait=5)
        conn._next_rid = conn._first_rid = conn._deliver_rid = FIRST_RID  # a known first rid to assert on
        conns.append(conn)
        return manager, conn

    yield make
    for conn in conns:
        await conn.aclose()
    for manager in managers:
        manager.release.set()  # no handler may stay held past the test
    for runner in runners:
        await runner.cleanup()


def creating(request: web.Request, body: Element) -> web.Response:
    return reply("<f xmlns='urn:test'/>", sid="S1", requests="2", hold="1", wait="5", authid="S1")


async def open_session(conn: BoshConnection) -> bytes:
    conn.write(body_frame({"to": "example.net", XBOSH_VERSION: "1.0"}))
    await conn.drain()
    return await asyncio.wait_for(conn.read(), 5)


async def test_creation_then_consecutive_rids_and_ack(
    served: Callable[..., Awaitable[tuple[Manager, BoshConnection]]],
) -> None:
    async def script(request: web.Request, body: Element, m: Manager) -> web.StreamResponse:
        rid = int(body.attrs["rid"])
        if "sid" not in body.attrs:
            return creating(request, body)
        if not list(body.elements()):  # the empty poll: held until the test releases it
            await m.release.wait()
            return reply("<held xmlns='urn:test'/>", sid="S1")
        return reply(f"<echo xmlns='urn:test' rid='{rid}'/>", sid="S1", ack=str(rid))

    manager, conn = await served(script)
    first = parse(await open_session(conn))
    assert first.attrs["sid"] == "S1" and conn.sid == "S1" and conn.requests == 2
    creation = manager.seen[0]
    # §7.1 / XEP-0206 §4: the creation request carries everything the manager needs to set the session up.
    assert creation.attrs["rid"] == str(FIRST_RID) and "sid" not in creation.attrs
    assert creation.attrs["to"] == "example.net" and creation.attrs[XBOSH_VERSION] == "1.0"
    assert {k: creation.attrs[k] for k in ("hold", "wait", "ver", "ack")} == {
        "hold": "1",
        "wait": "5",
        "ver": "1.6",
        "ack": "1",
    }
    for _ in range(100):  # the transport keeps `hold` requests waiting at the manager
        if len(manager.seen) == 2:
            break
        await asyncio.sleep(0.01)
    # §15: each request after creation reveals the key whose SHA-1 the previous request announced.
    newkey = creation.attrs["newkey"]
    second = manager.seen[1].attrs
    assert {k: v for k, v in second.items() if k != "key"} == {"rid": str(FIRST_RID + 1), "sid": "S1"}
    assert hashlib.sha1(second["key"].encode()).hexdigest() == newkey

    conn.write(b"<message xmlns='jabber:client' to='a@example.net'/>")
    await conn.drain()
    for _ in range(100):
        if len(manager.seen) == 3:
            break
        await asyncio.sleep(0.01)
    data_request = manager.seen[2]
    assert data_request.attrs["rid"] == str(FIRST_RID + 2)
    assert hashlib.sha1(data_request.attrs["key"].encode()).hexdigest() == second["key"]
    # §9.1: the response to rid+1 is still missing, so the client says which it has seen in order.
    assert data_request.attrs["ack"] == str(FIRST_RID)
    await asyncio.sleep(0.1)  # the echo of rid+2 arrives first ...
    manager.release.set()
    # ... but responses are handed over in rid order (§7).
    second, third = parse(await conn.read()), parse(await conn.read())
    assert second.elements().__next__().name == "{urn:test}held"
    assert third.elements().__next__().attrs["rid"] == str(FIRST_RID + 2)
    assert conn.acked == FIRST_RID + 2


async def test_network_error_resends_the_same_rid(
    served: Callable[..., Awaitable[tuple[Manager, BoshConnection]]],
) -> None:
    async def script(request: web.Request, body: Element, m: Manager) -> web.StreamResponse:
        rid = int(body.attrs["rid"])
        if "sid" not in body.attrs:
            return creating(request, body)
        if list(body.elements()) and m.attempts[rid] == 1:
            assert request.transport is not None
            request.transport.close()  # the connection breaks before any answer
            return web.Response()
        if not list(body.elements()):  # a held poll, answered when data comes (as a manager does, §11)
            await m.release.wait()
            m.release.clear()
            return reply(sid="S1")
        m.release.set()
        return reply("<ok xmlns='urn:test'/>", sid="S1")

    manager, conn = await served(script)
    await open_session(conn)
    conn.write(b"<presence xmlns='jabber:client'/>")
    await conn.drain()
    held = parse(await asyncio.wait_for(conn.read(), 10))
    assert not list(held.elements())  # rid+1 comes first, whatever order the answers arrived in
    answer = parse(await asyncio.wait_for(conn.read(), 10))
    assert next(answer.elements()).name == "{urn:test}ok"
    retried = [raw for raw, body in zip(manager.raw, manager.seen, strict=True) if list(body.elements())]
    # §14.3: the same rid and the same payload, so the manager can tell a resend from a new request.
    assert len(retried) == 2 and retried[0] == retried[1]


async def test_http_error_ends_the_session(served: Callable[..., Awaitable[tuple[Manager, BoshConnection]]]) -> None:
    async def script(request: web.Request, body: Element, m: Manager) -> web.StreamResponse:
        return web.Response(status=404)

    _, conn = await served(script)
    conn.write(body_frame({"to": "example.net"}))
    await conn.drain()
    with pytest.raises(BoshError, match="404"):
        await asyncio.wait_for(conn.read(), 5)
    assert conn.is_closing


async def test_terminate_ends_reading(served: Callable[..., Awaitable[tuple[Manager, BoshConnection]]]) -> None:
    async def script(request: web.Request, body: Element, m: Manager) -> web.StreamResponse:
        if "sid" not in body.attrs:
            return creating(request, body)
        if body.attrs.get("type") == "terminate":
            m.release.set()
            return reply(sid="S1", type="terminate")
        await m.release.wait()
        return reply(sid="S1")

    manager, conn = await served(script)
    await open_session(conn)
    conn.write(b"<presence xmlns='jabber:client' type='unavailable'/>")
    conn.write(TERMINATE_FRAME)
    await conn.drain()
    held = parse(await asyncio.wait_for(conn.read(), 5))
    assert "type" not in held.attrs
    last = parse(await asyncio.wait_for(conn.read(), 5))
    assert last.attrs["type"] == "terminate"
    assert await asyncio.wait_for(conn.read(), 5) == b""
    terminate = [b for b in manager.seen if b.attrs.get("type") == "terminate"]
    # XEP-0124 §13: the last stanzas travel in the terminate body itself.
    assert len(terminate) == 1 and next(terminate[0].elements()).name == "{jabber:client}presence"
    with pytest.raises(Exception, match="ended"):
        conn.write(b"<presence xmlns='jabber:client'/>")


def test_key_chain_renews_before_it_runs_out() -> None:
    """XEP-0124 §15.3: the request that uses the last key K(1) also announces a new chain with ``newkey``."""
    keys = KeySequence(length=3)
    announced = keys.first()["newkey"]  # K(3); then K(2) plainly, then K(1) with the next chain's newkey
    for _ in range(1):
        step = keys.next()
        assert hashlib.sha1(step["key"].encode()).hexdigest() == announced and "newkey" not in step
        announced = step["key"]
    last = keys.next()
    assert hashlib.sha1(last["key"].encode()).hexdigest() == announced
    fresh = last["newkey"]
    assert hashlib.sha1(keys.next()["key"].encode()).hexdigest() == fresh
