"""The load generator: asyncio (on uvloop when installed), raw sockets, pre-serialised stanzas.

Each connection logs in through a script of raw bytes (stream header, STARTTLS if asked, SASL, bind, initial
presence), with SCRAM keys cached per salt as a real client keeps them, so that a login costs the generator
little more than its side of the TLS handshake. From then on connections are driven with raw bytes too: messages
are serialised once per sender and written as they are, and receivers only count closing tags or pull timestamps
out of bodies. That keeps the generator's own cost per message to a few hundred nanoseconds, so the server is
what saturates; each result carries the generator's CPU time next to the server's so a reader can check.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import hashlib
import hmac
import html
import os
import re
import resource
import ssl
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

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
    """CPU seconds and RSS of a server: its process and every process below it (worker processes), from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._ticks = _clock_ticks()

    def pids(self) -> list[int]:
        found, queue = [], [self.pid]
        while queue:
            pid = queue.pop()
            found.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as children:
                        queue += [int(child) for child in children.read().split()]
            except OSError:  # gone meanwhile
                continue
        return found

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # utime and stime are fields 14 and 15 of proc(5); the split starts at field 3.
            total += int(fields[11]) + int(fields[12])
        return total / self._ticks

    def rss_kb(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/status", encoding="ascii") as status:
                    total += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
            except OSError:
                continue
        return total


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
    # The servers' certificates are throw-away ones: nothing is verified, so no CA store is loaded either.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


_TLS = _insecure_context()

# -- login: a scripted exchange of raw bytes -------------------------------------------------------------------
#
# Each step writes pre-built bytes, then reads until the element it expects is complete, found by a regular
# expression on the bytes read so far. Servers differ in the prefixes they declare, in their quotes and in how
# they split their output over reads, so the patterns take any prefix (`(\w+:|)`, so that a closing tag can
# name the same one) and either quote, and reads accumulate until a pattern matches. A full XML parser, PRECIS
# and a SASL library per login cost the generator more CPU than the servers spend on the login.

_SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"
_STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
_BIND_ID = b"bench-bind"
_BIND = b"<iq type='set' id='" + _BIND_ID + b"'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"

_FEATURES = re.compile(rb"<(\w+:|)features\b[^>]*?(?:/>|>(.*?)</\1features\s*>)", re.DOTALL)
_MECHANISM = re.compile(rb"<(?:\w+:)?mechanism\s*>\s*([^<\s]+)\s*</")
_OFFERS_STARTTLS = re.compile(rb"<(?:\w+:)?starttls\b")
_OFFERS_BIND = re.compile(rb"<(?:\w+:)?bind\b")
_PROCEED = re.compile(rb"<(\w+:|)proceed\b[^>]*?(?:/>|>\s*</\1proceed\s*>)")
_SASL_REPLY = re.compile(rb"<(\w+:|)(challenge|success)\b[^>]*?(?:/>|>([^<]*)</\1\2\s*>)")
_IQ = re.compile(rb"<(\w+:|)iq\b([^>]*?)(?:/>|>(.*?)</\1iq\s*>)", re.DOTALL)
_IQ_TYPE_RESULT = re.compile(rb"""\btype\s*=\s*['"]result['"]""")
_BOUND_JID = re.compile(rb"<(?:\w+:)?jid\s*>([^<]+)</")
_PRESENCE = re.compile(rb"<(?:\w+:)?presence\b")
# What ends a login early: a stream error (prefixed in practice; unprefixed, it declares the streams namespace)
# or the stream's close; while STARTTLS or SASL is negotiated, also <failure/>.
_STREAM_ENDS = rb"<\w+:error\b|<error\s+xmlns\s*=\s*['\"]http://etherx\.jabber\.org/streams|</(?:\w+:)?stream\s*>"
_ENDED = re.compile(_STREAM_ENDS)
_ENDED_OR_FAILED = re.compile(_STREAM_ENDS + rb"|<(?:\w+:)?failure\b")
_TAG_CLOSED = re.compile(rb"/>|</")


@functools.cache
def _stream_header(domain: str) -> bytes:
    return (
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
        f" to='{domain}' version='1.0'>"
    ).encode()


def _sasl(element: str, payload: bytes | None, mechanism: str = "") -> bytes:
    """<auth/> or <response/>; `None` for no data at all, `b""` for empty data ('=', RFC 6120 §6.4.2)."""
    attribute = f" mechanism='{mechanism}'" if mechanism else ""
    if payload is None:
        return f"<{element} xmlns='{_SASL_NS}'{attribute}/>".encode()
    text = base64.b64encode(payload).decode() if payload else "="
    return f"<{element} xmlns='{_SASL_NS}'{attribute}>{text}</{element}>".encode()


class _Wire:
    """One login's input: what was read and not yet matched, kept until an expected element is complete."""

    __slots__ = ("_pending", "_reader", "_user")

    def __init__(self, reader: asyncio.StreamReader, user: str) -> None:
        self._reader, self._user, self._pending = reader, user, b""

    async def expect(self, wanted: re.Pattern[bytes], what: str, ends: re.Pattern[bytes] = _ENDED) -> re.Match[bytes]:
        """The first complete `wanted`, with everything before it dropped. LoginFailed when something in `ends`
        comes first, or the connection closes."""
        while True:
            found = wanted.search(self._pending)
            ended = ends.search(self._pending)
            if ended is not None and (found is None or ended.start() < found.start()):
                raise self.failed(f"waiting for {what}, the server sent {await self._rest_from(ended.start())!r}")
            if found is not None:
                self._pending = self._pending[found.end() :]
                return found
            data = await self._reader.read(65536)
            if not data:
                raise self.failed(f"connection closed while waiting for {what}")
            self._pending += data

    async def _rest_from(self, start: int) -> bytes:
        """The server's output from `start`, read on for a second at most until a tag closes in it, so that the
        message names the error's condition."""
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(1.0):
                while _TAG_CLOSED.search(self._pending, start) is None:
                    data = await self._reader.read(65536)
                    if not data:
                        break
                    self._pending += data
        return self._pending[start : start + 300]

    def before_tls(self) -> None:
        # The server sends nothing after <proceed/> until the client's TLS hello: anything left is a broken server.
        if self._pending.strip():
            raise self.failed(f"data after <proceed/>: {self._pending[:300]!r}")
        self._pending = b""

    def failed(self, reason: str) -> LoginFailed:
        return LoginFailed(f"{self._user}: {reason}")


async def _open_stream(wire: _Wire, writer: asyncio.StreamWriter, domain: str, when: str) -> bytes:
    """Sends a stream header (the first, or a restart) and returns the inside of the server's features."""
    writer.write(_stream_header(domain))
    features = await wire.expect(_FEATURES, f"stream features {when}")
    return features[2] or b""


def _sasl_data(reply: re.Match[bytes], wire: _Wire) -> bytes:
    text = (reply[3] or b"").strip()
    if text in (b"", b"="):
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise wire.failed(f"bad base64 in {reply[0]!r}") from None


@functools.lru_cache(maxsize=1 << 16)
def _scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes, bytes]:
    """ClientKey, StoredKey and ServerKey (RFC 5802 §3). SaltedPassword's PBKDF2 is nearly all of a SCRAM
    client's work; a real client stores these keys (§5.1), and so does the generator for the many clients it
    plays, keyed by what they are derived from. The bench's passwords are ASCII: SASLprep leaves them alone."""
    salted = hashlib.pbkdf2_hmac("sha1", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha1")
    return client_key, hashlib.sha1(client_key).digest(), hmac.digest(salted, b"Server Key", "sha1")


class _ScramSha1:
    """The client side of SCRAM-SHA-1 without channel binding (gs2 header 'n,,'), RFC 5802 §5."""

    __slots__ = ("_first_bare", "_nonce", "_password", "_server_signature", "_wire")

    def __init__(self, user: str, password: str, wire: _Wire) -> None:
        self._password, self._wire = password, wire
        self._nonce = base64.b64encode(os.urandom(18)).decode()
        name = user.replace("=", "=3D").replace(",", "=2C")
        self._first_bare = f"n={name},r={self._nonce}"
        self._server_signature = b""

    def client_first(self) -> bytes:
        return f"n,,{self._first_bare}".encode()

    def client_final(self, server_first: bytes) -> bytes:
        text = server_first.decode("utf-8", "replace")
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        nonce, salt, iterations = fields.get("r", ""), fields.get("s", ""), fields.get("i", "")
        if "m" in fields or not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise self._wire.failed(f"SCRAM: bad server-first message {text!r}")
        if not iterations.isdigit() or int(iterations) < 1 or not salt:
            raise self._wire.failed(f"SCRAM: bad salt or iteration count in {text!r}")
        try:
            salt_bytes = base64.b64decode(salt, validate=True)
        except binascii.Error:
            raise self._wire.failed(f"SCRAM: bad salt in {text!r}") from None
        client_key, stored_key, server_key = _scram_keys(self._password, salt_bytes, int(iterations))
        without_proof = f"c=biws,r={nonce}"  # biws: base64 of the gs2 header 'n,,'
        auth_message = f"{self._first_bare},{text},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha1")
        proof = bytes(k ^ s for k, s in zip(client_key, signature, strict=True))
        self._server_signature = hmac.digest(server_key, auth_message, "sha1")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def check_server_final(self, server_final: bytes) -> None:
        """A server that does not prove it knows the password has not logged anyone in (RFC 5802 §5)."""
        text = server_final.decode("utf-8", "replace")
        verifier = text.split(",", 1)[0]
        if not verifier.startswith("v="):
            raise self._wire.failed(f"SCRAM: no server signature in {text!r}")
        try:
            signature = base64.b64decode(verifier[2:], validate=True)
        except binascii.Error:
            signature = b""
        if not hmac.compare_digest(signature, self._server_signature):
            raise self._wire.failed(f"SCRAM: wrong server signature {verifier!r}")


async def _authenticate(
    wire: _Wire, writer: asyncio.StreamWriter, features: bytes, user: str, password: str, mechanism: str
) -> None:
    offered = [name.decode() for name in _MECHANISM.findall(features)]
    if mechanism not in offered:
        raise wire.failed(f"the server does not offer {mechanism} (it offers {', '.join(offered) or 'none'})")
    if mechanism == "PLAIN":
        writer.write(_sasl("auth", f"\0{user}\0{password}".encode(), "PLAIN"))
        reply = await wire.expect(_SASL_REPLY, "the outcome of PLAIN", _ENDED_OR_FAILED)
        if reply[2] != b"success":
            raise wire.failed(f"PLAIN: unexpected {reply[0]!r}")
        return
    scram = _ScramSha1(user, password, wire)
    writer.write(_sasl("auth", scram.client_first(), "SCRAM-SHA-1"))
    reply = await wire.expect(_SASL_REPLY, "the SCRAM server-first message", _ENDED_OR_FAILED)
    if reply[2] != b"challenge":
        raise wire.failed(f"SCRAM: {reply[0]!r} before the client's proof")
    writer.write(_sasl("response", scram.client_final(_sasl_data(reply, wire))))
    reply = await wire.expect(_SASL_REPLY, "the outcome of SCRAM", _ENDED_OR_FAILED)
    scram.check_server_final(_sasl_data(reply, wire))
    if reply[2] == b"challenge":
        # The server-final message may come as a last challenge, answered with no data (RFC 6120 §6.3.10).
        writer.write(_sasl("response", None))
        reply = await wire.expect(_SASL_REPLY, "the outcome of SCRAM", _ENDED_OR_FAILED)
        if reply[2] != b"success":
            raise wire.failed(f"SCRAM: unexpected {reply[0]!r} after the server-final message")


async def _bind(wire: _Wire, writer: asyncio.StreamWriter, features: bytes) -> str:
    """Binds a resource the server chooses; returns the full JID."""
    if not _OFFERS_BIND.search(features):
        raise wire.failed(f"no resource binding offered after SASL: {features[:300]!r}")
    writer.write(_BIND)
    while True:
        iq = await wire.expect(_IQ, "the bind result")
        if _BIND_ID in iq[2]:
            break
    jid = _BOUND_JID.search(iq[3] or b"") if _IQ_TYPE_RESULT.search(iq[2]) else None
    if jid is None:
        raise wire.failed(f"bind refused: {iq[0][:300]!r}")
    text = jid[1].decode()
    return html.unescape(text) if "&" in text else text


async def login(target: Target, user: str, password: str, options: LoginOptions) -> Connection:
    """TCP, STARTTLS (optional), SASL (SCRAM-SHA-1 or PLAIN), bind, initial presence (answered by the server's
    echo, RFC 6121 §4.2.2), scripted as raw bytes (see above)."""
    if options.mechanism not in ("SCRAM-SHA-1", "PLAIN"):
        raise ValueError(f"unsupported SASL mechanism {options.mechanism!r}")
    async with asyncio.timeout(LOGIN_TIMEOUT):
        reader, writer = await asyncio.open_connection(target.host, target.port, limit=1 << 20)
        try:
            wire = _Wire(reader, user)
            features = await _open_stream(wire, writer, target.domain, "after connecting")
            if options.tls:
                if not _OFFERS_STARTTLS.search(features):
                    raise wire.failed("the server does not offer STARTTLS")
                writer.write(_STARTTLS)
                await wire.expect(_PROCEED, "<proceed/>", _ENDED_OR_FAILED)
                wire.before_tls()
                await writer.start_tls(_TLS, server_hostname=target.domain)
                features = await _open_stream(wire, writer, target.domain, "after STARTTLS")
            await _authenticate(wire, writer, features, user, password, options.mechanism)
            features = await _open_stream(wire, writer, target.domain, "after SASL")
            connection = Connection(reader, writer, await _bind(wire, writer, features))
            if options.presence:
                writer.write(b"<presence/>")
                await wire.expect(_PRESENCE, "the presence echo")
            return connection
        except BaseException:
            writer.close()
            raise


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


#: A measured window is cut into this many equal parts; the figure is the median part's rate, so a burst of
#: other work on a shared machine moves one part, not the figure (the spread shows how much it moved).
WINDOWS = 5


@dataclass(frozen=True, slots=True)
class Rates:
    """Rates over the consecutive parts of one measured window."""

    parts: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.parts)

    @property
    def spread_pct(self) -> float:
        """(fastest - slowest part) / median, in per cent."""
        return 100 * (max(self.parts) - min(self.parts)) / self.median if self.median else 0.0


async def rates(count: Callable[[], int], duration: float) -> Rates:
    """Sample `count()` at the edges of WINDOWS equal parts of `duration` seconds: each part's rate."""
    parts: list[float] = []
    last, then = count(), time.perf_counter()
    for _ in range(WINDOWS):
        await asyncio.sleep(duration / WINDOWS)
        now_count, now = count(), time.perf_counter()
        parts.append((now_count - last) / (now - then))
        last, then = now_count, now
    return Rates(tuple(parts))


@dataclass(frozen=True, slots=True)
class Throughput:
    delivered_per_s: float  # the median part's rate
    seconds: float
    delivered: int
    parts: Rates


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
    parts = await rates(lambda: sum(c.received for c in connections), duration)
    delivered = sum(c.received for c in connections) - start_count
    elapsed = time.perf_counter() - began
    sample()
    stop.set()
    for c in connections:
        c.arrived.set()
    for task in [*senders, *readers]:
        task.cancel()
    await asyncio.gather(*senders, *readers, return_exceptions=True)
    return Throughput(parts.median, elapsed, delivered, parts)


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
    per_s: float  # the median part's rate
    count: int
    seconds: float
    parts: Rates


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

    workers = asyncio.gather(*(worker(i) for i in range(concurrency)))
    try:
        parts = await rates(lambda: done, duration)
    finally:
        await workers
    elapsed = time.perf_counter() - began
    return Logins(parts.median, done, elapsed, parts)


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
