"""The load generator: asyncio (on uvloop when installed), raw sockets, pre-serialised stanzas.

Each connection logs in with jaybird's sans-I/O stream machine (stream header, STARTTLS if asked, SASL, bind),
sends initial presence, and from then on is driven with raw bytes: messages are serialised once per sender and
written as they are, and receivers only count closing tags or pull timestamps out of bodies. That keeps the
generator's own cost per message to a few hundred nanoseconds, so the server is what saturates; each result
carries the generator's CPU time next to the server's so a reader can check.
"""

from __future__ import annotations

import asyncio
import re
import resource
import ssl
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from jaybird.jid import JID
from jaybird.sasl import ChannelBinding, ClientMechanism, client_mechanisms
from jaybird.stream import events as ev
from jaybird.stream.config import InitiatingConfig
from jaybird.stream.machine import XMPPStream

LOGIN_TIMEOUT = 30.0
_CLOSE_MESSAGE = b"</message>"
_STAMP = re.compile(rb"<body>t(\d+)</body>")


@dataclass(frozen=True, slots=True)
class Target:
    """Where the server under test listens (plain c2s port with STARTTLS optional) and its domain."""

    host: str
    port: int
    domain: str


@dataclass(frozen=True, slots=True)
class LoginOptions:
    tls: bool = False
    mechanism: str = "SCRAM-SHA-1"
    presence: bool = True


class LoginFailed(Exception):
    pass


class ProcessMeter:
    """CPU seconds and RSS of a process, from /proc (Linux)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._ticks = _clock_ticks()

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of proc(5); the split starts at field 3.
        return (int(fields[11]) + int(fields[12])) / self._ticks

    def rss_kb(self) -> int:
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for pid {self.pid}")


def _clock_ticks() -> int:
    import os

    return os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Progress:
    """One line per step of a benchmark, with the seconds since it began."""

    def __init__(self) -> None:
        self.began = time.monotonic()

    def step(self, text: str) -> None:
        print(f"[{time.monotonic() - self.began:7.1f} s] {text}", flush=True)


def raise_open_files_limit() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass(slots=True)
class Connection:
    """A logged-in client connection, driven with raw bytes from here on."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    jid: str
    received: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.write(b"</stream:stream>")
        self.writer.close()


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


_TLS = _insecure_context()


def _mechanisms(username: str, password: str, name: str) -> Callable[[ChannelBinding | None], list[ClientMechanism]]:
    def factory(_: ChannelBinding | None) -> list[ClientMechanism]:
        # No channel binding is handed over, so SCRAM says 'n' and every server compares alike.
        return [m for m in client_mechanisms(username=username, password=password) if m.name == name]

    return factory


async def login(target: Target, user: str, password: str, options: LoginOptions) -> Connection:
    """TCP, STARTTLS (optional), SASL, bind, initial presence (answered by the server's echo, RFC 6121 §4.2.2)."""
    async with asyncio.timeout(LOGIN_TIMEOUT):
        reader, writer = await asyncio.open_connection(target.host, target.port, limit=1 << 20)
        try:
            config = InitiatingConfig(
                jid=JID(f"{user}@{target.domain}"),
                password=password,
                mechanisms=_mechanisms(user, password, options.mechanism),
                require_tls=options.tls,
                tls_available=options.tls,
                allow_plain=True,
            )
            stream = XMPPStream(config)
            writer.write(stream.data_to_send())
            bound: str | None = None
            while bound is None:
                data = await reader.read(65536)
                if not data:
                    raise LoginFailed(f"{user}: connection closed during login")
                for event in stream.receive_data(data):
                    if isinstance(event, ev.TLSRequested):
                        writer.write(stream.data_to_send())
                        await writer.drain()
                        await writer.start_tls(_TLS, server_hostname=target.domain)
                        stream.tls_established(None)
                    elif isinstance(event, ev.Ready):
                        bound = str(stream.jid)
                    elif isinstance(event, ev.NegotiationFailed | ev.AuthenticationFailed | ev.StreamErrorReceived):
                        raise LoginFailed(f"{user}: {event}")
                writer.write(stream.data_to_send())
            connection = Connection(reader, writer, bound)
            if options.presence:
                writer.write(b"<presence/>")
                await _read_until(reader, b"<presence")
            return connection
        except BaseException:
            writer.close()
            raise


async def _read_until(reader: asyncio.StreamReader, marker: bytes) -> None:
    seen = b""
    while marker not in seen:
        data = await reader.read(65536)
        if not data:
            raise LoginFailed("connection closed before the presence echo")
        seen = seen[-len(marker) :] + data


async def login_many(
    target: Target, users: Sequence[tuple[str, str]], options: LoginOptions, *, concurrency: int = 50
) -> list[Connection]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(user: str, password: str) -> Connection:
        async with semaphore:
            return await login(target, user, password, options)

    return list(await asyncio.gather(*(one(u, p) for u, p in users)))


def close_all(connections: Sequence[Connection]) -> None:
    for connection in connections:
        connection.close()


# -- the scenarios' measured phases -------------------------------------------------------------------------


async def _count_messages(connection: Connection) -> None:
    tail = b""
    read = connection.reader.read
    while data := await read(1 << 18):
        chunk = tail + data
        # A closing tag cannot overlap itself, so one straddling two reads is counted exactly once.
        found = chunk.count(_CLOSE_MESSAGE) - tail.count(_CLOSE_MESSAGE)
        tail = data[-(len(_CLOSE_MESSAGE) - 1) :]
        if found:
            connection.received += found
            connection.arrived.set()


def chat(to: str, body: str) -> bytes:
    return f"<message to='{to}' type='chat'><body>{body}</body></message>".encode()


@dataclass(frozen=True, slots=True)
class Throughput:
    delivered_per_s: float
    seconds: float
    delivered: int


async def throughput(pairs: Sequence[tuple[Connection, Connection]], *, window: int, warmup: float,
                     duration: float, sample: Callable[[], None] = lambda: None) -> Throughput:  # fmt: skip
    """Every user sends to its partner, keeping `window` messages in flight (sent but not yet delivered)."""
    payload = "x" * 64
    stop = asyncio.Event()

    async def sender(me: Connection, peer: Connection) -> None:
        message = chat(peer.jid, payload)
        sent = 0
        half = max(1, window // 2)
        while not stop.is_set():
            room = window - (sent - peer.received)
            if room >= half:
                me.writer.write(message * room)
                sent += room
            peer.arrived.clear()
            await peer.arrived.wait()

    connections = [c for pair in pairs for c in pair]
    readers = [asyncio.create_task(_count_messages(c)) for c in connections]
    senders = [asyncio.create_task(sender(a, b)) for a, b in pairs]
    senders += [asyncio.create_task(sender(b, a)) for a, b in pairs]
    await asyncio.sleep(warmup)
    start_count = sum(c.received for c in connections)
    sample()
    began = time.perf_counter()
    await asyncio.sleep(duration)
    delivered = sum(c.received for c in connections) - start_count
    elapsed = time.perf_counter() - began
    sample()
    stop.set()
    for c in connections:
        c.arrived.set()
    for task in [*senders, *readers]:
        task.cancel()
    await asyncio.gather(*senders, *readers, return_exceptions=True)
    return Throughput(delivered / elapsed, elapsed, delivered)


@dataclass(frozen=True, slots=True)
class Latency:
    p50_ms: float
    p99_ms: float
    max_ms: float
    samples: int
    rate_per_s: float


async def latency(pairs: Sequence[tuple[Connection, Connection]], *, rate: float, duration: float) -> Latency:
    """Messages paced at `rate` per second in total, round-robin over the pairs; one-way delay from the
    sender's write to the receiver's read, on one clock (both ends live in this process)."""
    samples: list[int] = []

    async def receive(connection: Connection) -> None:
        tail = b""
        while data := await connection.reader.read(1 << 16):
            now = time.perf_counter_ns()
            chunk = tail + data
            cut = chunk.rfind(_CLOSE_MESSAGE)
            if cut < 0:
                tail = chunk
                continue
            done, tail = chunk[: cut + len(_CLOSE_MESSAGE)], chunk[cut + len(_CLOSE_MESSAGE) :]
            samples.extend(now - int(stamp) for stamp in _STAMP.findall(done))

    readers = [asyncio.create_task(receive(b)) for _, b in pairs]
    began = time.perf_counter()
    sent = 0
    while (elapsed := time.perf_counter() - began) < duration:
        due = int(elapsed * rate) - sent
        for _ in range(due):
            sender, peer = pairs[sent % len(pairs)]
            sender.writer.write(chat(peer.jid, f"t{time.perf_counter_ns()}"))
            sent += 1
        # uvloop's timers tick in milliseconds: a shorter sleep would spin.
        await asyncio.sleep(0.001)
    deadline = time.perf_counter() + 5
    while len(samples) < sent and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    if len(samples) < 2:
        raise RuntimeError(f"only {len(samples)} of {sent} timed messages arrived")
    ordered = sorted(samples)
    cuts = statistics.quantiles(ordered, n=100)
    return Latency(cuts[49] / 1e6, cuts[98] / 1e6, ordered[-1] / 1e6, len(samples), sent / duration)


@dataclass(frozen=True, slots=True)
class Logins:
    per_s: float
    count: int
    seconds: float


async def logins(target: Target, users: Sequence[tuple[str, str]], options: LoginOptions, *,
                 concurrency: int, duration: float) -> Logins:  # fmt: skip
    """Full logins (connect ... initial presence echoed, then stream close) for `duration` seconds by
    `concurrency` workers taking accounts round-robin."""
    done = 0
    began = time.perf_counter()
    stop_at = began + duration

    async def worker(offset: int) -> None:
        nonlocal done
        index = offset
        while time.perf_counter() < stop_at:
            user, password = users[index % len(users)]
            index += concurrency
            connection = await login(target, user, password, options)
            done += 1
            connection.close()

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - began
    return Logins(done / elapsed, done, elapsed)


async def wait_for_marker(connections: Sequence[Connection], marker: bytes, *, timeout: float) -> float:
    """Seconds until every connection has read `marker` (counted from this call)."""
    began = time.perf_counter()

    async def one(connection: Connection) -> None:
        tail = b""
        while True:
            data = await connection.reader.read(65536)
            if not data:
                raise LoginFailed(f"{connection.jid}: closed while waiting for {marker!r}")
            if marker in tail + data:
                return
            tail = data[-len(marker) :]

    async with asyncio.timeout(timeout):
        await asyncio.gather(*(one(c) for c in connections))
    return time.perf_counter() - began


async def drain(connections: Sequence[Connection], quiet: float = 0.3) -> None:
    """Read and drop whatever is pending until `quiet` seconds pass without data on any connection."""

    async def one(connection: Connection) -> None:
        try:
            while True:
                async with asyncio.timeout(quiet):
                    if not await connection.reader.read(65536):
                        return
        except TimeoutError:
            return

    await asyncio.gather(*(one(c) for c in connections))


def batched(items: Sequence[tuple[str, str]], size: int) -> Iterator[Sequence[tuple[str, str]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed (it halves the generator's cost per read), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
