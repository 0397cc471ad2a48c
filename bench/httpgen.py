"""The HTTP-transport load generator: lean BOSH (XEP-0124 / XEP-0206) and WebSocket (RFC 7395) clients.

Written by hand for the benchmark rather than through jaybird's transports so the generator stays cheap and
alike for every server: one aiohttp connector shared by every BOSH session (sized so each can keep its long
poll open), request bodies built from pre-encoded pieces, logins with SASL PLAIN (both servers are told the
HTTP port is secure), and responses only searched for the few bytes that matter (a marker, a timestamp,
the opening of a ``<message``).
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import aiohttp

LOGIN_TIMEOUT: Final = 30.0
_HEADERS: Final = {"Content-Type": "text/xml; charset=utf-8"}
_BODY_NS: Final = b"xmlns='http://jabber.org/protocol/httpbind'"
_XBOSH_NS: Final = b"xmlns:xmpp='urn:xmpp:xbosh'"
_SID: Final = re.compile(rb"""\bsid=['"]([^'"]+)['"]""")
_JID: Final = re.compile(r"<jid>([^<]+)</jid>")
_JID_BYTES: Final = re.compile(rb"<jid>([^<]+)</jid>")
_STAMP: Final = re.compile(rb"<body>t(\d+)</body>")
_FRAMING_OPEN: Final = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{domain}' version='1.0'/>"


class LoginFailed(Exception):
    pass


def _plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def _auth(user: str, password: str) -> str:
    return f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{_plain(user, password)}</auth>"


_BIND: Final = (
    "<iq type='set' id='bind1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
    "<resource>bench</resource></bind></iq>"
)


def chat(to: str, body: str) -> str:
    return f"<message to='{to}' type='chat' xmlns='jabber:client'><body>{body}</body></message>"


# -- BOSH ------------------------------------------------------------------------------------------------------


def bosh_connector(sessions: int) -> aiohttp.TCPConnector:
    """One pool for every session: each holds one long poll, and logins need a few connections more."""
    return aiohttp.TCPConnector(limit=sessions + 64, limit_per_host=sessions + 64, keepalive_timeout=300)


@dataclass(slots=True)
class BoshSession:
    """A logged-in BOSH session; :meth:`poll_forever` keeps one request held at the connection manager."""

    http: aiohttp.ClientSession
    url: str
    sid: str
    rid: int
    jid: str = ""
    _head: bytes = b""

    def __post_init__(self) -> None:
        self._head = b"<body " + _BODY_NS + b" sid='" + self.sid.encode() + b"' rid='"

    async def post(self, payload: bytes = b"", attrs: bytes = b"") -> bytes:
        self.rid += 1
        body = self._head + str(self.rid).encode() + b"'" + attrs
        body += b"/>" if not payload else b">" + payload + b"</body>"
        async with self.http.post(self.url, data=body, headers=_HEADERS) as response:
            data = await response.read()
            if response.status != 200:
                raise LoginFailed(f"HTTP {response.status}: {data[:200]!r}")
        if b"type='terminate'" in data or b'type="terminate"' in data:
            raise LoginFailed(f"session terminated: {data[:300]!r}")
        return data

    async def until(self, marker: bytes, first: bytes, payload: bytes = b"", attrs: bytes = b"") -> bytes:
        """Send ``payload``; poll (a few times at most) until a response carries ``marker``."""
        data = first + await self.post(payload, attrs)
        for _ in range(5):
            if marker in data:
                return data
            data += await self.post()
        raise LoginFailed(f"no {marker!r} in {data[:300]!r}")

    async def poll_forever(self, on_data: Callable[[bytes, int], None]) -> None:
        """Post empty bodies one after another; each answer (data or the empty one after ``wait``) is handed
        to ``on_data`` with the arrival time in perf-counter nanoseconds."""
        while True:
            data = await self.post()
            on_data(data, time.perf_counter_ns())


async def bosh_login(http: aiohttp.ClientSession, url: str, domain: str, user: str, password: str, *,
                     wait: int) -> BoshSession:  # fmt: skip
    """Create a session, SASL PLAIN, restart, bind: four round trips (more when the manager answers early)."""
    async with asyncio.timeout(LOGIN_TIMEOUT):
        rid = secrets.randbelow(2**31) + 1
        create = (
            b"<body " + _BODY_NS + b" " + _XBOSH_NS + b" content='text/xml; charset=utf-8' hold='1' rid='"
            + str(rid).encode() + b"' to='" + domain.encode() + b"' ver='1.6' wait='" + str(wait).encode()
            + b"' xml:lang='en' xmpp:version='1.0'/>"
        )  # fmt: skip
        async with http.post(url, data=create, headers=_HEADERS) as response:
            first = await response.read()
        found = _SID.search(first)
        if found is None:
            raise LoginFailed(f"{user}: no sid in {first[:300]!r}")
        session = BoshSession(http, url, found.group(1).decode(), rid)
        await session.until(b"<success", b"", _auth(user, password).encode())
        restart = b" to='" + domain.encode() + b"' xml:lang='en' xmpp:restart='true' " + _XBOSH_NS
        await session.until(b"bind", b"", attrs=restart)
        bound = await session.until(b"</jid>", b"", _BIND.encode())
        jid = _JID_BYTES.search(bound)
        if jid is None:
            raise LoginFailed(f"{user}: no bound JID in {bound[:300]!r}")
        session.jid = jid.group(1).decode()
        return session


async def bosh_login_many(http: aiohttp.ClientSession, url: str, domain: str, users: Sequence[tuple[str, str]],
                          *, wait: int, concurrency: int) -> list[BoshSession]:  # fmt: skip
    semaphore = asyncio.Semaphore(concurrency)

    async def one(user: str, password: str) -> BoshSession:
        async with semaphore:
            return await bosh_login(http, url, domain, user, password, wait=wait)

    return list(await asyncio.gather(*(one(u, p) for u, p in users)))


@dataclass(slots=True)
class Stamps:
    """One-way delays (ns) of timestamped message bodies; collects only while ``active``."""

    samples: list[int] = field(default_factory=list)
    active: bool = False

    def on_data(self, data: bytes, now: int) -> None:
        if self.active and b"<body>t" in data:
            self.samples.extend(now - int(stamp) for stamp in _STAMP.findall(data))


@dataclass(frozen=True, slots=True)
class Latency:
    p50_ms: float
    p99_ms: float
    samples: int
    sent: int


def percentiles(samples: Sequence[int], sent: int) -> Latency:
    if len(samples) < 2:
        raise RuntimeError(f"only {len(samples)} of {sent} timed messages arrived")
    cuts = statistics.quantiles(sorted(samples), n=100)
    return Latency(cuts[49] / 1e6, cuts[98] / 1e6, len(samples), sent)


async def paced(write: Callable[[bytes], None], targets: Sequence[str], *, rate: float, duration: float) -> int:
    """Timestamped chat messages to ``targets`` round-robin, ``rate`` per second in total; returns how many."""
    began = time.perf_counter()
    sent = 0
    while (elapsed := time.perf_counter() - began) < duration:
        for _ in range(int(elapsed * rate) - sent):
            write(chat(targets[sent % len(targets)], f"t{time.perf_counter_ns()}").encode())
            sent += 1
        await asyncio.sleep(0.001)
    return sent


# -- WebSocket --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class WsClient:
    ws: aiohttp.ClientWebSocketResponse
    jid: str
    received: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


async def _ws_until(ws: aiohttp.ClientWebSocketResponse, marker: str) -> str:
    seen = ""
    while marker not in seen:
        msg = await ws.receive()
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise LoginFailed(f"WebSocket {msg.type.name} while waiting for {marker!r}; got {seen[:300]!r}")
        seen += str(msg.data)
    return seen


async def ws_login(http: aiohttp.ClientSession, url: str, domain: str, user: str, password: str) -> WsClient:
    async with asyncio.timeout(LOGIN_TIMEOUT):
        ws = await http.ws_connect(url, protocols=("xmpp",), autoping=True, max_msg_size=1 << 20)
        try:
            opening = _FRAMING_OPEN.format(domain=domain)
            await ws.send_str(opening)
            await _ws_until(ws, "mechanisms")
            await ws.send_str(_auth(user, password))
            await _ws_until(ws, "<success")
            await ws.send_str(opening)
            await _ws_until(ws, "bind")
            await ws.send_str(_BIND)
            bound = _JID.search(await _ws_until(ws, "</jid>"))
            if bound is None:
                raise LoginFailed(f"{user}: no bound JID")
            return WsClient(ws, bound.group(1))
        except BaseException:
            await ws.close()
            raise


@dataclass(frozen=True, slots=True)
class Throughput:
    delivered_per_s: float
    seconds: float
    delivered: int


async def ws_throughput(pairs: Sequence[tuple[WsClient, WsClient]], *, window: int, warmup: float,
                        duration: float, sample: Callable[[], None]) -> Throughput:  # fmt: skip
    """Both ends of every pair send to each other, keeping ``window`` messages in flight each way."""
    stop = asyncio.Event()
    payload = "x" * 64

    async def sender(me: WsClient, peer: WsClient) -> None:
        message = chat(peer.jid, payload)
        sent = 0
        half = max(1, window // 2)
        while not stop.is_set():
            room = window - (sent - peer.received)
            if room >= half:
                for _ in range(room):
                    await me.ws.send_str(message)
                sent += room
            peer.arrived.clear()
            await peer.arrived.wait()

    async def counter(client: WsClient) -> None:
        receive = client.ws.receive
        while True:
            msg = await receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return
            if str(msg.data).startswith("<message"):
                client.received += 1
                client.arrived.set()

    clients = [c for pair in pairs for c in pair]
    tasks = [asyncio.create_task(counter(c)) for c in clients]
    tasks += [asyncio.create_task(sender(a, b)) for a, b in pairs]
    tasks += [asyncio.create_task(sender(b, a)) for a, b in pairs]
    await asyncio.sleep(warmup)
    start = sum(c.received for c in clients)
    sample()
    began = time.perf_counter()
    await asyncio.sleep(duration)
    delivered = sum(c.received for c in clients) - start
    elapsed = time.perf_counter() - began
    sample()
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return Throughput(delivered / elapsed, elapsed, delivered)
