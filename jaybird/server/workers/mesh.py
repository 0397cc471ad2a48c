"""How the worker processes of one server see each other's client sessions.

Every worker listens on ``<dir>/worker-<i>.sock`` and connects to every other worker: it writes only on the
link it opened and reads only on those it accepted, so the frames from one worker to another keep their order
(a session's SESSION_UP comes before the stanzas for it, its SESSION_DOWN after them).

A session bound here is published (SESSION_UP) once its stream is ready, and again (SESSION_STATE) whenever a
module changes what the others route by: availability, interest in roster pushes, priority, the last available
presence. The others keep a :class:`RemoteSession` for it in the same registry as their own sessions, so
modules and the router treat both alike; a stanza for a remote session goes over the link to the worker that
holds the client's connection.

A resource bound on two workers at once: the session bound last wins (as the local rule in
:mod:`jaybird.server.sessions`), the other is closed with ``conflict``; both workers decide alike, since they
compare the same (bind time, worker index) pair.

A link lost without a BYE ends the worker (its supervisor then stops the others): a worker that can no longer
reach part of the server would route wrongly, so it stops rather than serving half the sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from jaybird.errors import StreamError, StreamErrorCondition
from jaybird.jid import JID
from jaybird.server.c2s import C2SConnection
from jaybird.server.events import SessionEnded, SessionStarted, SharedStateChanged
from jaybird.server.hooks import Registration
from jaybird.server.host import VirtualHost
from jaybird.server.workers.frames import MAX_FRAME_BYTES, Frame, FrameDecoder, FrameError, FrameType, encode_frame
from jaybird.stanza import Presence, Stanza
from jaybird.xml.element import Element
from jaybird.xml.parser import ElementReceived, XMLStreamParser
from jaybird.xml.serializer import serialize

__all__ = ["RemoteSession", "WorkerConnection", "WorkerMesh", "socket_path"]

log = logging.getLogger("jaybird.server.workers")

#: How long a starting worker waits for every other one to be linked to it.
LINK_TIMEOUT_S: Final = 30.0
#: Retry delays while the other workers start: first, then doubled up to the second.
_CONNECT_BACKOFF: Final = (0.02, 0.5)
#: After its outgoing link ends, how long a worker waits for the incoming one to show a BYE.
_BYE_GRACE_S: Final = 2.0
#: Bytes queued on a link before a stanza's sender waits for the socket (backpressure across workers).
_HIGH_WATER: Final = 1024 * 1024
#: The mesh hears of sessions starting and ending before any module acts on them.
_FIRST: Final = 1_000_000
_READ_SIZE: Final = 256 * 1024

SessionObserver = Callable[["WorkerConnection"], None]


def socket_path(directory: Path, index: int) -> Path:
    return directory / f"worker-{index}.sock"


class WorkerConnection(C2SConnection):
    """A client connection whose routing state is published to the other workers when a module changes it.

    The four :class:`~jaybird.server.api.Session` attributes modules set are properties here (plain attributes
    on :class:`C2SConnection`, so a single-process server pays nothing for this)."""

    _observer: SessionObserver | None = None
    _w_available: bool
    _w_interested: bool
    _w_priority: int
    _w_presence: Presence | None

    def observe(self, observer: SessionObserver | None) -> None:
        self._observer = observer

    def _changed(self) -> None:
        if self._observer is not None:
            self._observer(self)

    @property
    def available(self) -> bool:
        return self._w_available

    @available.setter
    def available(self, value: bool) -> None:
        changed = value != getattr(self, "_w_available", None)
        self._w_available = value
        if changed:
            self._changed()

    @property
    def interested(self) -> bool:
        return self._w_interested

    @interested.setter
    def interested(self, value: bool) -> None:
        changed = value != getattr(self, "_w_interested", None)
        self._w_interested = value
        if changed:
            self._changed()

    @property
    def priority(self) -> int:
        return self._w_priority

    @priority.setter
    def priority(self, value: int) -> None:
        changed = value != getattr(self, "_w_priority", None)
        self._w_priority = value
        if changed:
            self._changed()

    @property
    def presence(self) -> Presence | None:
        return self._w_presence

    @presence.setter
    def presence(self, value: Presence | None) -> None:
        changed = value is not getattr(self, "_w_presence", None)
        self._w_presence = value
        if changed:
            self._changed()


class RemoteSession:
    """A session bound on another worker, as this worker's modules see it (:class:`~jaybird.server.api.Session`).

    ``data`` is this worker's own (modules keep per-session state where the session lives); ``last_received``
    is always now, since the worker holding the connection is the one that watches it for silence."""

    def __init__(self, peer: _Peer, host: VirtualHost, jid: JID, sid: str, bound_at: float) -> None:
        self._peer = peer
        self._host = host
        self._jid = jid
        self.sid = sid
        self.bound_at = bound_at
        self.available = False
        self.interested = False
        self.priority = 0
        self.presence: Presence | None = None
        self.data: dict[type[Any], Any] = {}
        self._closing = False

    @property
    def jid(self) -> JID:
        return self._jid

    @property
    def host(self) -> VirtualHost:
        return self._host

    @property
    def worker(self) -> int:
        """The index of the worker holding the client's connection."""
        return self._peer.index

    @property
    def last_received(self) -> float:
        return time.monotonic()

    @last_received.setter
    def last_received(self, value: float) -> None:
        pass  # the owning worker keeps the real one

    @property
    def closing(self) -> bool:
        return self._closing

    async def send(self, stanza: Stanza | Element) -> None:
        if self._closing:
            return
        element = stanza.element if isinstance(stanza, Stanza) else stanza
        await self._peer.send_stanza(self.sid, element)

    def close(self, error: StreamError | None = None) -> None:
        if self._closing:
            return
        self._closing = True
        header: dict[str, Any] = {"sid": self.sid, "jid": str(self._jid), "host": self._host.domain}
        if error is not None:
            header["condition"] = error.condition.value
            header["text"] = error.text
        self._peer.send(FrameType.CLOSE, header)

    def gone(self) -> None:
        """The session ended on its worker, or was replaced: it takes nothing more."""
        self._closing = True

    def __str__(self) -> str:
        return f"{self._jid} (worker {self._peer.index})"


@dataclass(frozen=True, slots=True)
class _Published:
    sid: str
    bound_at: float


class _Peer:
    """Another worker: the link this worker writes on, and what is known of its state."""

    def __init__(self, index: int) -> None:
        self.index = index
        self._writer: asyncio.StreamWriter | None = None
        self._pending: list[bytes] = []  # frames not written yet (all of them until the link is attached)
        self._flush_scheduled = False
        #: Our link to it is open (we can write).
        self.connected = asyncio.Event()
        #: Its link to us said HELLO (we hear from it).
        self.hello = asyncio.Event()
        #: Its link to us has ended (after every frame on it was handled).
        self.incoming_done = asyncio.Event()
        #: It said BYE: it is stopping; its links closing is expected.
        self.leaving = False

    def attach(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._flush()
        self.connected.set()

    def send(self, type: FrameType, header: dict[str, Any], body: bytes = b"") -> None:
        """Queue a frame. Frames queued in one turn of the loop go out in one write: a busy worker forwards
        many stanzas per turn, and a system call each cost more than the rest of forwarding (profiled)."""
        if self.leaving:
            return
        self._pending.append(encode_frame(type, header, body))
        if self._writer is not None and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._writer is not None and self._pending:
            self._writer.writelines(self._pending)
            self._pending.clear()

    async def send_stanza(self, sid: str, element: Element) -> None:
        self.send(FrameType.STANZA, {"sid": sid}, serialize(element).encode())
        writer = self._writer
        if writer is not None and writer.transport.get_write_buffer_size() > _HIGH_WATER:
            self._flush()
            with contextlib.suppress(ConnectionError):
                await writer.drain()  # a lost link is reported by its reader

    async def close(self, timeout: float) -> None:
        self._flush()
        writer, self._writer = self._writer, None
        if writer is None:
            return
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            async with asyncio.timeout(timeout):
                await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            async with asyncio.timeout(timeout):
                await writer.wait_closed()


class WorkerMesh:
    """This worker's links to the others, and the sessions it learns through them.

    ``attach(hosts)`` before the hosts have sessions, ``await start()`` (returns once every worker is linked
    both ways), ``await stop()`` once this worker's sessions are closed. ``failed`` is set when a link is lost.
    """

    connection_class: Final = WorkerConnection

    def __init__(self, index: int, workers: int, directory: Path) -> None:
        if not 0 <= index < workers:
            raise ValueError(f"worker index {index} is not in 0..{workers - 1}")
        self.index = index
        self.workers = workers
        self.directory = directory
        self._peers = {i: _Peer(i) for i in range(workers) if i != index}
        self._hosts: Mapping[str, VirtualHost] = {}
        self._registrations: list[Registration] = []
        self._published: dict[WorkerConnection, _Published] = {}
        self._by_sid: dict[str, WorkerConnection] = {}  # what STANZA frames name (no JID to parse per stanza)
        self._sids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        #: Why this worker must stop (a lost link), once ``failed`` is set.
        self.failure: str | None = None
        self.failed = asyncio.Event()

    @property
    def path(self) -> Path:
        return socket_path(self.directory, self.index)

    # -- life cycle -----------------------------------------------------------------------------------------------
    def attach(self, hosts: Mapping[str, VirtualHost]) -> None:
        """Hear of the hosts' sessions starting and ending (before any module does)."""
        self._hosts = hosts
        for host in hosts.values():
            self._registrations.append(host.hooks.on(SessionStarted, self._session_started, priority=_FIRST))
            self._registrations.append(host.hooks.on(SessionEnded, self._session_ended, priority=_FIRST))
            self._registrations.append(host.hooks.on(SharedStateChanged, self._sharer(host), priority=_FIRST))

    async def start(self, timeout: float = LINK_TIMEOUT_S) -> None:
        """Listen, link to every other worker, and wait until each has linked back. Raises OSError on failure."""
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._accepted, str(self.path))
        deadline = asyncio.get_running_loop().time() + timeout
        for peer in self._peers.values():
            self._spawn(self._connect(peer, deadline), f"link to worker {peer.index}")
        waits = [peer.connected.wait() for peer in self._peers.values()]
        waits += [peer.hello.wait() for peer in self._peers.values()]
        linked = asyncio.ensure_future(asyncio.gather(*waits))
        failed = asyncio.ensure_future(self.failed.wait())
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.wait((linked, failed), return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            missing = sorted(p.index for p in self._peers.values() if not (p.connected.is_set() and p.hello.is_set()))
            raise OSError(f"worker {self.index}: no link with worker(s) {missing} within {timeout:.0f} s") from None
        finally:
            linked.cancel()
            failed.cancel()
        if self.failure is not None:
            raise OSError(self.failure)
        log.info("linked to the %d other worker(s)", len(self._peers))

    async def stop(self, timeout: float = 2.0) -> None:
        """Say BYE to every worker and close the links."""
        self._stopping = True
        for peer in self._peers.values():
            peer.send(FrameType.BYE, {"index": self.index})
        await asyncio.gather(*(peer.close(timeout) for peer in self._peers.values()))
        if self._server is not None:
            self._server.close()
            for sock in self._server.sockets:
                sock.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.directory.rmdir()  # the last worker out (the supervisor removes it too, unless it was killed)
        for registration in reversed(self._registrations):
            registration.cancel()
        self._registrations.clear()
        self._published.clear()
        self._by_sid.clear()

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fail(self, reason: str) -> None:
        if self._stopping or self.failure is not None:
            return
        self.failure = reason
        log.error("%s; stopping", reason)
        self.failed.set()

    # -- links ----------------------------------------------------------------------------------------------------
    async def _connect(self, peer: _Peer, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        path = str(socket_path(self.directory, peer.index))
        delay = _CONNECT_BACKOFF[0]
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if loop.time() + delay > deadline:
                    return  # start() reports the missing link
                await asyncio.sleep(delay)
                delay = min(delay * 2, _CONNECT_BACKOFF[1])
        writer.write(encode_frame(FrameType.HELLO, {"index": self.index, "workers": self.workers}))
        writer.write(
            encode_frame(FrameType.SNAPSHOT, {"sessions": [self._state(c, p) for c, p in self._published.items()]})
        )
        peer.attach(writer)
        # Nothing comes back on this link; reading only tells when the other end is gone.
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(_READ_SIZE):
                pass
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_BYE_GRACE_S):
                await peer.incoming_done.wait()
        if not peer.leaving:
            self._fail(f"lost the link to worker {peer.index}")

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A task of our own, not the server's handler task: stop() may cancel it (cancelling a handler task
        # makes asyncio log an error on Python 3.11).
        self._spawn(self._read_link(reader, writer), "link from a worker")

    async def _read_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        parser = XMLStreamParser(root=None, max_stanza_bytes=MAX_FRAME_BYTES)
        peer: _Peer | None = None
        try:
            while data := await reader.read(_READ_SIZE):
                for frame in decoder.feed(data):
                    if peer is None:
                        peer = self._greeted(frame)
                    else:
                        await self._dispatch(peer, frame, parser)
        except (ConnectionError, OSError):
            pass
        except FrameError as exc:
            self._fail(f"a broken link from worker {peer.index if peer else '?'}: {exc}")
        finally:
            writer.close()
            if peer is not None:
                peer.incoming_done.set()
        if peer is not None and not peer.leaving:
            self._fail(f"lost the link from worker {peer.index}")

    def _greeted(self, frame: Frame) -> _Peer:
        index = frame.header.get("index")
        peer = self._peers.get(index) if isinstance(index, int) else None
        if frame.type is not FrameType.HELLO or peer is None or frame.header.get("workers") != self.workers:
            raise FrameError(f"expected HELLO from one of workers {sorted(self._peers)}, got {frame.type.name}")
        peer.hello.set()
        return peer

    async def _dispatch(self, peer: _Peer, frame: Frame, parser: XMLStreamParser) -> None:
        header = frame.header
        try:
            match frame.type:
                case FrameType.STANZA:
                    await self._on_stanza(header["sid"], frame.body, parser)
                case FrameType.SESSION_STATE:
                    self._on_state(header, parser)
                case FrameType.SESSION_UP:
                    self._on_up(peer, header, parser)
                case FrameType.SESSION_DOWN:
                    self._on_down(header)
                case FrameType.SNAPSHOT:
                    for session in header["sessions"]:
                        self._on_up(peer, session, parser)
                case FrameType.CLOSE:
                    self._on_close(header)
                case FrameType.BYE:
                    self._on_bye(peer)
                case FrameType.SHARED_STATE:
                    await self._on_shared_state(header, frame.body, parser)
                case FrameType.HELLO:
                    raise FrameError("a second HELLO")
        except FrameError:
            raise
        except Exception:
            log.exception("worker %d: a %s frame from worker %d failed", self.index, frame.type.name, peer.index)

    # -- this worker's sessions -----------------------------------------------------------------------------------
    def _session_started(self, event: SessionStarted) -> None:
        session = event.session
        if not isinstance(session, WorkerConnection):
            return
        published = _Published(f"{self.index}.{next(self._sids)}", time.time())
        self._published[session] = published
        self._by_sid[published.sid] = session
        session.observe(self._state_changed)
        self._broadcast(FrameType.SESSION_UP, self._state(session, published))

    def _session_ended(self, event: SessionEnded) -> None:
        session = event.session
        published = self._published.pop(session, None) if isinstance(session, WorkerConnection) else None
        if published is None or not isinstance(session, WorkerConnection):
            return
        del self._by_sid[published.sid]
        session.observe(None)
        # Replaced by a newer session (here or on another worker): the others learn of that one instead.
        if session.host.sessions.get(session.jid) is None:
            header = {"sid": published.sid, "jid": str(session.jid), "host": session.host.domain}
            self._broadcast(FrameType.SESSION_DOWN, header)

    def _state_changed(self, session: WorkerConnection) -> None:
        published = self._published.get(session)
        if published is not None:
            self._broadcast(FrameType.SESSION_STATE, self._state(session, published))

    @staticmethod
    def _state(session: WorkerConnection, published: _Published) -> dict[str, Any]:
        presence = session.presence
        return {
            "sid": published.sid,
            "jid": str(session.jid),
            "host": session.host.domain,
            "bound_at": published.bound_at,
            "available": session.available,
            "interested": session.interested,
            "priority": session.priority,
            "presence": None if presence is None else serialize(presence.element),
        }

    def _broadcast(self, type: FrameType, header: dict[str, Any], body: bytes = b"") -> None:
        for peer in self._peers.values():
            peer.send(type, header, body)

    def _sharer(self, host: VirtualHost) -> Callable[[SharedStateChanged], None]:
        def share(event: SharedStateChanged) -> None:
            if not event.remote:
                header = {"host": host.domain, "kind": event.kind, "key": event.key}
                body = b"" if event.payload is None else serialize(event.payload).encode()
                self._broadcast(FrameType.SHARED_STATE, header, body)

        return share

    # -- the others' sessions -------------------------------------------------------------------------------------
    def _lookup(self, header: Mapping[str, Any]) -> tuple[VirtualHost, JID] | None:
        host = self._hosts.get(header["host"])
        return None if host is None else (host, JID(header["jid"]))

    def _remote(self, header: Mapping[str, Any]) -> RemoteSession | None:
        found = self._lookup(header)
        if found is None:
            return None
        session = found[0].sessions.get(found[1])
        return session if isinstance(session, RemoteSession) and session.sid == header["sid"] else None

    def _on_up(self, peer: _Peer, header: Mapping[str, Any], parser: XMLStreamParser) -> None:
        found = self._lookup(header)
        if found is None:
            return
        host, jid = found
        existing = host.sessions.get(jid)
        if existing is not None and not isinstance(existing, RemoteSession):
            mine = self._published.get(existing) if isinstance(existing, WorkerConnection) else None
            # Not yet published: bound a moment ago, so the newer one.
            if mine is None or (mine.bound_at, self.index) > (header["bound_at"], peer.index):
                log.info("%s: resource conflict with worker %d; the session here is newer", jid, peer.index)
                close = {"sid": header["sid"], "jid": str(jid), "host": host.domain}
                peer.send(FrameType.CLOSE, {**close, "condition": _CONFLICT.condition.value, "text": _CONFLICT.text})
                return
        remote = RemoteSession(peer, host, jid, header["sid"], header["bound_at"])
        _apply(remote, header, parser)
        old = host.sessions.add(remote)
        if isinstance(old, RemoteSession):
            old.gone()
        elif old is not None:
            log.info("%s: resource conflict, replaced by the session on worker %d", jid, peer.index)
            old.close(_CONFLICT)

    def _on_state(self, header: Mapping[str, Any], parser: XMLStreamParser) -> None:
        remote = self._remote(header)
        if remote is not None:
            _apply(remote, header, parser)

    def _on_down(self, header: Mapping[str, Any]) -> None:
        remote = self._remote(header)
        if remote is not None:
            remote.host.sessions.remove(remote)
            remote.gone()

    def _on_close(self, header: Mapping[str, Any]) -> None:
        session = self._by_sid.get(header["sid"])
        if session is None:
            return  # it ended already
        condition = header.get("condition")
        session.close(None if condition is None else StreamError(StreamErrorCondition(condition), header.get("text")))

    def _on_bye(self, peer: _Peer) -> None:
        peer.leaving = True
        for host in self._hosts.values():
            for session in host.sessions.all():
                if isinstance(session, RemoteSession) and session.worker == peer.index:
                    host.sessions.remove(session)
                    session.gone()

    async def _on_shared_state(self, header: Mapping[str, Any], body: bytes, parser: XMLStreamParser) -> None:
        host = self._hosts.get(header["host"])
        if host is not None:
            payload = _parse(parser, body) if body else None
            await host.hooks.fire(SharedStateChanged(header["kind"], header["key"], payload, remote=True))

    async def _on_stanza(self, sid: str, body: bytes, parser: XMLStreamParser) -> None:
        element = _parse(parser, body)  # parsed even when dropped: the parser keeps no half element
        session = self._by_sid.get(sid)
        if session is None:
            # It ended while the stanza was on its way: as for a session that just closed here.
            log.debug("no session %s here; dropped a stanza", sid)
            return
        await session.send(element)


_CONFLICT: Final = StreamError(StreamErrorCondition.CONFLICT, "replaced by a new connection")


def _parse(parser: XMLStreamParser, data: bytes) -> Element:
    events = parser.feed(data)
    if len(events) != 1 or not isinstance(events[0], ElementReceived):
        raise FrameError(f"expected one element, got {len(events)} parser events")
    return events[0].element


def _apply(remote: RemoteSession, header: Mapping[str, Any], parser: XMLStreamParser) -> None:
    remote.available = bool(header["available"])
    remote.interested = bool(header["interested"])
    remote.priority = int(header["priority"])
    presence = header.get("presence")
    remote.presence = None if presence is None else Presence(_parse(parser, presence.encode()))
