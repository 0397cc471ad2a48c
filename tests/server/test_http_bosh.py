"""The BOSH connection manager (XEP-0124, XEP-0206) on the wire: raw HTTP requests, one case per rule."""

from __future__ import annotations

import asyncio
import hashlib
import time

import aiohttp
import pytest

from jaybird import ns
from jaybird.xml import parser
from jaybird.xml.element import Element
from tests.server.conftest import ServerFactory
from tests.web.support import WebServer, start_web_server

HTTPBIND = ns.HTTPBIND
XBOSH = ns.XBOSH


def body(attrs: str = "", payload: str = "") -> bytes:
    return f"<body xmlns='{HTTPBIND}' xmlns:xmpp='{XBOSH}' {attrs}>{payload}</body>".encode()


def parse(data: bytes) -> Element:
    events = parser.XMLStreamParser(root=None).feed(data)
    assert len(events) == 1 and isinstance(events[0], parser.ElementReceived)
    element = events[0].element
    assert element.name == f"{{{HTTPBIND}}}body"
    return element


async def post(http: aiohttp.ClientSession, web: WebServer, data: bytes, status: int = 200) -> Element:
    async with http.post(web.bosh_url, data=data, headers={"Content-Type": "text/xml; charset=utf-8"}) as resp:
        assert resp.status == status
        assert resp.headers["Access-Control-Allow-Origin"] == "*"  # POST responses carry CORS too
        return parse(await resp.read())


async def create(http: aiohttp.ClientSession, web: WebServer, rid: int, extra: str = "") -> Element:
    return await post(
        http, web, body(f"rid='{rid}' to='localhost' wait='2' hold='1' ver='1.11' xmpp:version='1.0' {extra}")
    )


def terminated(element: Element, condition: str) -> bool:
    return element.get("type") == "terminate" and element.get("condition") == condition


@pytest.fixture
async def web(start_server: ServerFactory) -> WebServer:
    return await start_web_server(start_server, http_toml="bosh_inactivity_s = 2\nbosh_max_wait_s = 30\n")


async def test_cors_preflight(web: WebServer) -> None:
    # A page on another origin first sends OPTIONS; without these headers a browser never sends the POST.
    headers = {
        "Origin": "http://127.0.0.1:1",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    async with aiohttp.ClientSession() as http, http.options(web.bosh_url, headers=headers) as resp:
        assert 200 <= resp.status < 300
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        assert "Content-Type" in resp.headers["Access-Control-Allow-Headers"]


async def test_session_creation_response(web: WebServer) -> None:
    # XEP-0124 §7.1, XEP-0206 §4: sid, wait, requests, hold, ver, from, xmpp:version and the features.
    async with aiohttp.ClientSession() as http:
        reply = await post(
            http, web, body("rid='1000' to='localhost' wait='600' hold='5' ver='1.11' xmpp:version='1.0'")
        )
    assert reply.get("sid")
    assert reply.get("wait") == "30"  # capped by bosh_max_wait_s
    assert reply.get("hold") == "1" and reply.get("requests") == "2"
    assert reply.get("ver") == "1.11" and reply.get("from") == "localhost"
    assert reply.get(f"{{{XBOSH}}}version") == "1.0" and reply.get("inactivity") == "2"
    features = reply.find(f"{{{ns.STREAM}}}features")
    assert features is not None and features.find(f"{{{ns.SASL}}}mechanisms") is not None


async def test_unknown_host_and_unknown_sid(web: WebServer) -> None:
    async with aiohttp.ClientSession() as http:
        reply = await post(http, web, body("rid='5' to='nowhere.example' wait='5' hold='1' xmpp:version='1.0'"))
        assert terminated(reply, "host-unknown")
        reply = await post(http, web, body("rid='6' sid='no-such-session'"))
        assert terminated(reply, "item-not-found")  # XEP-0124 §17.2


async def test_not_xml_and_oversize(web: WebServer) -> None:
    async with aiohttp.ClientSession() as http:
        assert terminated(await post(http, web, b"this is not XML", status=400), "bad-request")
        assert terminated(await post(http, web, b"<notbody/>", status=400), "bad-request")
        big = body("rid='7' sid='x'", "<message>" + "a" * 400_000 + "</message>")
        assert terminated(await post(http, web, big, status=413), "policy-violation")
        reply = await post(http, web, body("rid='abc' to='localhost' wait='5' hold='1' xmpp:version='1.0'"))
        assert terminated(reply, "bad-request")


async def test_empty_poll_is_held_for_wait_then_answered(web: WebServer) -> None:
    async with aiohttp.ClientSession() as http:
        sid = (await create(http, web, 100)).get("sid")
        started = time.monotonic()
        reply = await post(http, web, body(f"rid='101' sid='{sid}'"))
        elapsed = time.monotonic() - started
        assert 1.5 <= elapsed < 5  # held for 'wait' (2 s) with nothing to say, then an empty body (§7)
        assert reply.get("type") is None and not reply.children


async def test_repeated_rid_gets_the_same_response(web: WebServer) -> None:
    # XEP-0124 §14.3: a client that lost a response asks again with the same rid and gets it again.
    async with aiohttp.ClientSession() as http:
        first = await create(http, web, 200)
        sid = first.get("sid")
        again = await post(http, web, body(f"rid='200' sid='{sid}'"))
        assert again.get("sid") == sid and again.find(f"{{{ns.STREAM}}}features") is not None


async def test_rid_outside_the_window_ends_the_session(web: WebServer) -> None:
    # §14.2: a rid beyond the window, or too old to resend, is item-not-found and the session is gone.
    async with aiohttp.ClientSession() as http:
        sid = (await create(http, web, 300)).get("sid")
        assert terminated(await post(http, web, body(f"rid='310' sid='{sid}'")), "item-not-found")
        assert terminated(await post(http, web, body(f"rid='301' sid='{sid}'")), "item-not-found")
        sid = (await create(http, web, 400)).get("sid")
        assert terminated(await post(http, web, body(f"rid='399' sid='{sid}'")), "item-not-found")


async def test_out_of_order_requests_are_processed_in_rid_order(web: WebServer) -> None:
    async with aiohttp.ClientSession() as http:
        sid = (await create(http, web, 500)).get("sid")
        later = asyncio.ensure_future(post(http, web, body(f"rid='502' sid='{sid}'")))
        await asyncio.sleep(0.2)
        assert not later.done()  # 502 waits for 501
        earlier = await post(http, web, body(f"rid='501' sid='{sid}'"))
        assert earlier.get("type") is None  # hold=1: 501 is answered when 502 is held (§10)
        assert (await later).get("type") is None


async def test_too_many_simultaneous_requests(web: WebServer) -> None:
    # §11: more requests open than 'requests' (2) is overactivity: policy-violation.
    async with aiohttp.ClientSession() as http:
        sid = (await create(http, web, 600)).get("sid")
        held = asyncio.ensure_future(post(http, web, body(f"rid='601' sid='{sid}'")))
        await asyncio.sleep(0.2)
        ahead = asyncio.ensure_future(post(http, web, body(f"rid='603' sid='{sid}'")))
        await asyncio.sleep(0.2)
        third = await post(http, web, body(f"rid='602' sid='{sid}'"))
        assert terminated(third, "policy-violation")
        assert terminated(await held, "policy-violation") and terminated(await ahead, "policy-violation")


async def test_key_sequencing(web: WebServer) -> None:
    # §15: each key must hash (SHA-1) to the previous one.
    keys = ["k0"]
    for _ in range(3):
        keys.append(hashlib.sha1(keys[-1].encode()).hexdigest())
    k3, k2 = keys[3], keys[2]
    async with aiohttp.ClientSession() as http:
        sid = (await create(http, web, 700, f"newkey='{k3}'")).get("sid")
        ok = await post(http, web, body(f"rid='701' sid='{sid}' key='{k2}' pause='1'"))
        assert ok.get("type") is None
        bad = await post(http, web, body(f"rid='702' sid='{sid}' key='{k2}'"))
        assert terminated(bad, "item-not-found")
        sid = (await create(http, web, 800, f"newkey='{k3}'")).get("sid")
        assert terminated(await post(http, web, body(f"rid='801' sid='{sid}'")), "item-not-found")


async def test_pause_answers_held_requests_and_inactivity_ends_the_session(web: WebServer) -> None:
    async with aiohttp.ClientSession() as http:
        sid = (await create(http, web, 900)).get("sid")
        held = asyncio.ensure_future(post(http, web, body(f"rid='901' sid='{sid}'")))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await post(http, web, body(f"rid='902' sid='{sid}' pause='1'"))
        await held
        assert time.monotonic() - started < 1.0  # §10: a pause answers everything held at once
        sessions = web.running.server.http.bosh.sessions
        assert sid in sessions
        async with asyncio.timeout(6):
            while sid in sessions:  # inactivity (here the 1 s pause) ends it
                await asyncio.sleep(0.2)
        assert terminated(await post(http, web, body(f"rid='903' sid='{sid}'")), "item-not-found")
        assert not web.running.server.http.connections


async def test_terminate_from_client(web: WebServer) -> None:
    async with aiohttp.ClientSession() as http:
        sid = (await create(http, web, 1000)).get("sid")
        reply = await post(http, web, body(f"rid='1001' sid='{sid}' type='terminate'"))
        assert reply.get("type") == "terminate"
        async with asyncio.timeout(3):
            while web.running.server.http.connections:
                await asyncio.sleep(0.05)


async def test_server_shutdown_terminates_with_the_stream_error(web: WebServer) -> None:
    async with aiohttp.ClientSession() as http:
        sid = (await create(http, web, 1100)).get("sid")
        held = asyncio.ensure_future(post(http, web, body(f"rid='1101' sid='{sid}'")))
        await asyncio.sleep(0.2)
        await web.running.server.stop()
        reply = await held
        # XEP-0206 §7: a stream error travels in a terminate body with condition remote-stream-error
        assert terminated(reply, "remote-stream-error")
        error = reply.find(f"{{{ns.STREAM}}}error")
        assert error is not None and error.find(f"{{{ns.STREAMS}}}system-shutdown") is not None


async def test_host_meta_xml_and_json(web: WebServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{web.base}/.well-known/host-meta") as resp:
            assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == "*"
            text = await resp.text()
        async with http.get(f"{web.base}/.well-known/host-meta.json") as resp:
            data = await resp.json()
    from jaybird.transport.discovery import parse_host_meta_json, parse_host_meta_xml

    for found in (parse_host_meta_xml(text.encode()), parse_host_meta_json(__import__("json").dumps(data).encode())):
        assert found.websocket == (web.websocket_url,)
        assert found.bosh == (web.bosh_url,)
