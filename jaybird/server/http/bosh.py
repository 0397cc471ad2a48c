"""The BOSH connection manager (XEP-0124, XEP-0206): HTTP requests in, one c2s stream per session.

A :class:`BoshSession` is the c2s transport of one session: the bodies the client posts go to the stream
machine whole and in ``rid`` order (:meth:`BoshSession.read`); what the machine writes is buffered and goes
out in the response to the oldest request held (:meth:`BoshSession.write`). Everything HTTP stays here: the
session id, the rid window (§14), holding requests up to ``wait`` (§7), acknowledgements (§9), re-sending the
response to a repeated rid (§14.3), key sequencing (§15), pause (§10), overactivity (§11), inactivity and
terminal conditions (§17). Errors are reported the XEP-0124 §17 way: HTTP 200 and a terminate body with a
condition; only bodies that are not XML at all (400) or too large to read (413) get an HTTP error status.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import hashlib
import logging
import secrets
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from jaybird import ns
from jaybird.errors import RemoteProtocolError
from jaybird.stream.framing import (
    BODY,
    XBOSH_RESTART,
    XBOSH_VERSION,
    Framing,
    body_frame_attrs,
    is_body_frame,
    wrap_body,
)
from jaybird.xml import parser
from jaybird.xml.element import Element

__all__ = ["BoshLimits", "BoshManager", "BoshSession", "Condition", "terminate_body"]

log = logging.getLogger(__name__)

#: XEP-0124 §14.1: rids stay below 2**53 so every JSON/JS number holds them exactly.
_MAX_RID: Final = 2**53 - 1
_VERSION: Final = "1.11"
#: Bodies received but not yet read by the stream machine: beyond this the client is overactive (§11).
_MAX_INBOX: Final = 16
#: Outgoing bytes buffered before the stream's writer waits for a request to carry them.
_MAX_BUFFERED: Final = 1024 * 1024
_STREAM_ERROR_START: Final = b'<error xmlns="' + ns.STREAM.encode()
_EMPTY: Final = wrap_body({}, ())


class Condition(enum.Enum):
    """XEP-0124 §17.2 terminal binding conditions (the ones a connection manager sends)."""

    BAD_REQUEST = "bad-request"
    HOST_UNKNOWN = "host-unknown"
    ITEM_NOT_FOUND = "item-not-found"
    POLICY_VIOLATION = "policy-violation"
    REMOTE_STREAM_ERROR = "remote-stream-error"
    SYSTEM_SHUTDOWN = "system-shutdown"
    INTERNAL_SERVER_ERROR = "internal-server-error"


def terminate_body(condition: Condition | None = None, payload: Sequence[bytes] = ()) -> bytes:
    attrs = {"type": "terminate"}
    if condition is not None:
        attrs["condition"] = condition.value
    return wrap_body(attrs, payload)


@dataclass(frozen=True, slots=True)
class BoshLimits:
    max_wait: int
    max_hold: int
    inactivity: int
    max_pause: int
    max_request_bytes: int


class BoshSession:
    """One BOSH session; the c2s transport of its stream."""

    framing: Final = Framing.BOSH
    redirect: Final[str | None] = None

    def __init__(
        self,
        sid: str,
        *,
        peer: tuple[str, int] | None,
        secure: bool,
        first_rid: int,
        wait: int,
        hold: int,
        inactivity: int,
        max_pause: int,
        key: str | None,
        acks: bool,
    ) -> None:
        self.sid = sid
        self._peer = peer
        self._secure = secure
        self.wait, self.hold, self.requests = wait, hold, hold + 1
        self.inactivity, self.max_pause = inactivity, max_pause
        self._first_rid = first_rid
        self._last_rid = first_rid - 1  # the highest rid processed in order
        self._key = key
        self._acks = acks
        self._bodies: dict[int, tuple[Element, bytes]] = {}  # received ahead of a gap in the rids
        self._waiting: dict[int, asyncio.Future[bytes]] = {}  # open HTTP requests
        self._held: collections.deque[int] = collections.deque()  # processed, waiting for something to carry
        self._responses: collections.OrderedDict[int, bytes] = collections.OrderedDict()  # for §14.3 resends
        self._inbox: collections.deque[bytes] = collections.deque()
        self._inbox_ready = asyncio.Event()
        self._payload: list[bytes] = []
        self._attrs: dict[str, str] = {}
        self._buffered = 0
        self._sent = asyncio.Event()
        self._terminating = False
        self._condition: Condition | None = None
        self._final: bytes | None = None  # the terminate body nobody has collected yet
        self.closed = False
        self.last_activity = time.monotonic()
        self._quiet_limit = float(inactivity)

    # -- the c2s transport -----------------------------------------------------------------------------------------
    @property
    def peer_address(self) -> tuple[str, int] | None:
        return self._peer

    @property
    def is_secure(self) -> bool:
        return self._secure

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        return None  # a session spans many HTTP connections: nothing to bind a channel to

    async def read(self) -> bytes:
        while not self._inbox:
            if self.closed:
                return b""
            self._inbox_ready.clear()
            await self._inbox_ready.wait()
        return self._inbox.popleft()

    def write(self, frames: Sequence[bytes]) -> None:
        for frame in frames:
            if is_body_frame(frame):
                attrs = body_frame_attrs(frame)
                if attrs.pop("type", None) == "terminate":
                    self._terminating = True
                self._attrs.update(attrs)
            else:
                if frame.startswith(_STREAM_ERROR_START) and self._condition is None:
                    self._condition = Condition.REMOTE_STREAM_ERROR  # XEP-0206 §7
                self._payload.append(frame)
                self._buffered += len(frame)
        self._dispatch()

    async def drain(self, timeout: float) -> None:
        if self._buffered <= _MAX_BUFFERED or self.closed:
            return
        async with asyncio.timeout(timeout):
            while self._buffered > _MAX_BUFFERED and not self.closed:
                self._sent.clear()
                await self._sent.wait()

    async def start_tls(self, context: ssl.SSLContext, timeout: float) -> None:
        raise ConnectionError("no STARTTLS over BOSH (XEP-0206 §8)")

    def close(self) -> None:
        """The stream is over: whatever is buffered goes out with the terminate body."""
        self._end(None)

    async def wait_closed(self) -> None:
        return None

    # -- HTTP side ---------------------------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """Closed, and the terminate body delivered (or nobody came for it in time)."""
        return self.closed and self._final is None

    def expired(self, now: float) -> bool:
        return not self._waiting and now - self.last_activity > self._quiet_limit

    def expire(self) -> None:
        """No request for too long (§7.1 inactivity): the session ends, nothing left to deliver."""
        log.info("BOSH session %s: inactive for %.0f s; ending it", self.sid, self._quiet_limit)
        self._end(None)
        self._final = None

    def fail(self, condition: Condition) -> bytes:
        """End the session with a terminal condition; returns the body for the request that caused it."""
        log.info("BOSH session %s: terminated (%s)", self.sid, condition.value)
        self._condition = condition
        self._payload, self._buffered = [], 0
        self._end(condition)
        final, self._final = self._final, None
        return final if final is not None else terminate_body(condition)

    async def request(self, rid: int, body: Element, raw: bytes) -> bytes:
        """One HTTP request of the session: the response body, once there is something to say (or ``wait``)."""
        self.last_activity = time.monotonic()
        if self.closed:
            final, self._final = self._final, None
            return final if final is not None else terminate_body(Condition.ITEM_NOT_FOUND)
        cached = self._responses.get(rid)
        if cached is not None:
            return cached  # §14.3: the client lost the response; send it again
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        old = self._waiting.get(rid)
        if old is not None:
            # The same request again while the first copy is still open: the copy takes its place.
            if not old.done():
                old.set_result(_EMPTY)
        elif rid <= self._last_rid or rid > self._last_rid + self.requests:
            return self.fail(Condition.ITEM_NOT_FOUND)  # §14.2: outside the window, or too old to resend
        elif len(self._waiting) >= self.requests:
            return self.fail(Condition.POLICY_VIOLATION)  # §11: more simultaneous requests than allowed
        else:
            self._bodies[rid] = (body, raw)
        self._waiting[rid] = future
        try:
            self._process()
            done, _ = await asyncio.wait({future}, timeout=self.wait)
            if done:
                return future.result()
            if rid in self._held:  # §7: nothing to say within 'wait': an empty body
                self._held.remove(rid)
                return self._respond(rid)
            return _EMPTY
        finally:
            if self._waiting.get(rid) is future:
                del self._waiting[rid]
            self.last_activity = time.monotonic()

    # -- internals ----------------------------------------------------------------------------------------------------
    def _process(self) -> None:
        """Hand bodies to the stream strictly in rid order (§14.2), then answer what must be answered."""
        while not self.closed and (self._last_rid + 1) in self._bodies:
            rid = self._last_rid + 1
            body, raw = self._bodies.pop(rid)
            self._last_rid = rid
            if rid != self._first_rid and not self._check_key(body):
                self._answer(self.fail(Condition.ITEM_NOT_FOUND), rid)
                return
            self._quiet_limit = float(self.inactivity)
            if rid in self._waiting:
                self._held.append(rid)
            pause = body.get("pause")
            if pause is not None:
                self._pause(pause)
            terminate = body.get("type") == "terminate"
            if rid == self._first_rid or terminate or body.get(XBOSH_RESTART) == "true" or body.children:
                if len(self._inbox) >= _MAX_INBOX:
                    self._answer(self.fail(Condition.POLICY_VIOLATION), rid)
                    return
                self._inbox.append(raw)
            else:
                self._inbox.append(b" ")  # an empty poll: a keepalive for the stream, like TCP whitespace
            self._inbox_ready.set()
        while len(self._held) > self.hold:  # §10: never hold more than 'hold' requests
            self._answer_oldest()
        self._dispatch()

    def _pause(self, value: str) -> None:
        try:
            seconds = int(value)
        except ValueError:
            return
        if 0 < seconds <= self.max_pause:
            # §10: the client goes away for a while; every held request is answered now.
            self._quiet_limit = float(seconds)
            while self._held:
                self._answer_oldest()

    def _check_key(self, body: Element) -> bool:
        """§15.3: sha1(key) must equal the previous key; ``newkey`` starts a new sequence."""
        if self._key is None:
            return True
        key = body.get("key")
        if key is None or hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest() != self._key:
            return False
        self._key = body.get("newkey") or key
        return True

    def _dispatch(self) -> None:
        while self._held and (self._payload or self._attrs or self._terminating):
            self._answer_oldest()
            if not self._terminating:
                break
        if self._terminating and not self.closed:
            self._end(self._condition)

    def _answer_oldest(self) -> None:
        rid = self._held.popleft()
        self._answer(self._respond(rid), rid)

    def _answer(self, body: bytes, rid: int) -> None:
        future = self._waiting.get(rid)
        if future is not None and not future.done():
            future.set_result(body)

    def _respond(self, rid: int | None) -> bytes:
        """The body answering ``rid`` (None: the next request to come): what is buffered, merged attributes,
        and the creation attributes."""
        attrs: dict[str, str] = {}
        if rid == self._first_rid:
            attrs.update(self._creation_attrs())
        attrs.update(self._attrs)
        if self._acks and rid is not None and self._last_rid > rid:
            attrs["ack"] = str(self._last_rid)  # §9.1: requests after this one were received too
        payload, self._payload, self._attrs = self._payload, [], {}
        self._buffered = 0
        self._sent.set()
        if self._terminating:
            attrs["type"] = "terminate"
            if self._condition is not None:
                attrs["condition"] = self._condition.value
        body = wrap_body(attrs, payload)
        if rid is None:
            return body
        self._responses[rid] = body
        while len(self._responses) > self.requests:
            self._responses.popitem(last=False)
        return body

    def _creation_attrs(self) -> dict[str, str]:
        """§7.1 / XEP-0206 §4: what the session creation response tells the client."""
        return {
            "sid": self.sid,
            "wait": str(self.wait),
            "requests": str(self.requests),
            "hold": str(self.hold),
            "inactivity": str(self.inactivity),
            "maxpause": str(self.max_pause),
            "polling": "2",
            "ver": _VERSION,
            XBOSH_VERSION: "1.0",
            "xmpp:restartlogic": "true",  # XEP-0206 §5: restarts are understood
        }

    def _end(self, condition: Condition | None) -> None:
        if self.closed:
            return
        self._terminating = True
        if condition is not None:
            self._condition = condition
        if self._held:
            self._answer_oldest()
            while self._held:  # every other open request learns the session is over
                rid = self._held.popleft()
                self._answer(terminate_body(self._condition), rid)
        else:
            self._final = self._respond(None)
        for rid, future in self._waiting.items():
            if not future.done():
                self._answer(terminate_body(self._condition), rid)
        self.closed = True
        self._bodies.clear()
        self._sent.set()
        self._inbox_ready.set()


class BoshManager:
    """Finds a request's session (or creates one) and hands the request to it."""

    def __init__(
        self,
        limits: BoshLimits,
        *,
        domains: Callable[[], Mapping[str, object]],
    ) -> None:
        self._limits = limits
        self._domains = domains
        self.sessions: dict[str, BoshSession] = {}

    def parse(self, raw: bytes) -> Element | None:
        """The request's ``<body/>``, or None when it is not one."""
        try:
            events = parser.XMLStreamParser(root=None, max_stanza_bytes=self._limits.max_request_bytes).feed(raw)
        except RemoteProtocolError:
            return None
        if len(events) != 1 or not isinstance(events[0], parser.ElementReceived) or events[0].element.name != BODY:
            return None
        return events[0].element

    async def handle(
        self,
        body: Element,
        raw: bytes,
        *,
        peer: tuple[str, int] | None,
        secure: bool,
        admit: Callable[[BoshSession], str | None],
    ) -> bytes:
        """The response body to one request. ``admit`` starts the stream of a new session, or says why not."""
        rid = _rid(body.get("rid"))
        sid = body.get("sid")
        if sid is None:
            if rid is None:
                return terminate_body(Condition.BAD_REQUEST)
            return await self._create(body, raw, rid, peer=peer, secure=secure, admit=admit)
        session = self.sessions.get(sid)
        if session is None:
            return terminate_body(Condition.ITEM_NOT_FOUND)  # §17.2: unknown (or ended) session
        if rid is None:
            return session.fail(Condition.BAD_REQUEST)
        return await session.request(rid, body, raw)

    async def _create(
        self,
        body: Element,
        raw: bytes,
        rid: int,
        *,
        peer: tuple[str, int] | None,
        secure: bool,
        admit: Callable[[BoshSession], str | None],
    ) -> bytes:
        limits = self._limits
        if body.get("to") not in self._domains():
            return terminate_body(Condition.HOST_UNKNOWN)
        wait, hold = _int(body.get("wait"), limits.max_wait), _int(body.get("hold"), 1)
        if wait is None or hold is None:
            return terminate_body(Condition.BAD_REQUEST)
        session = BoshSession(
            secrets.token_urlsafe(18),
            peer=peer,
            secure=secure,
            first_rid=rid,
            wait=max(1, min(wait, limits.max_wait)),
            hold=max(0, min(hold, limits.max_hold)),
            inactivity=limits.inactivity,
            max_pause=limits.max_pause,
            key=body.get("newkey"),
            acks=body.get("ack") == "1",
        )
        refusal = admit(session)
        if refusal is not None:
            log.warning("BOSH session from %s refused: %s", peer, refusal)
            return terminate_body(Condition.POLICY_VIOLATION)
        self.sessions[session.sid] = session
        log.debug("BOSH session %s created (wait %d, hold %d)", session.sid, session.wait, session.hold)
        return await session.request(rid, body, raw)

    def sweep(self, now: float) -> None:
        """End inactive sessions (§7.1) and forget finished ones."""
        for sid, session in list(self.sessions.items()):
            if session.expired(now):
                session.expire()
            if session.finished or (session.closed and session.expired(now)):
                del self.sessions[sid]


def _rid(value: str | None) -> int | None:
    rid = _int(value, None)
    return rid if rid is not None and 0 < rid <= _MAX_RID else None


def _int(value: str | None, default: int | None) -> int | None:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return None
