"""What one connection's writer waits on: its outgoing frames and two flags, small enough for idle clients.

An ``asyncio.Queue`` allocates four deques and an ``asyncio.Event`` one (about 700 bytes each, empty): for a
connection that mostly idles they were a tenth of its memory. These hold a list and create a future only
while someone actually waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Flag", "Outbox"]


class Flag:
    """A one-way flag (set, never cleared) that can be awaited; the future exists only while waited on."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        if self._set:
            return
        if self._waiter is None or self._waiter.done():  # done: a cancelled wait (a timeout) left it behind
            self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter


class Outbox:
    """Frames for one writer, taken all at once (so the writer makes one write per batch), then an end mark.

    ``put`` never blocks (the caller bounds the backlog); ``take`` returns everything queued so far, waiting
    for something if need be, and None once the outbox is ended and empty; ``written`` waits until the writer
    has taken and finished everything queued (``done_writing``) or has stopped (``abandon``).

    With ``direct``, the writer is only the slow path: while there is none, or it idles, what is put in one
    turn of the event loop is handed to ``direct`` at the end of that turn (one callback, one write, no task
    switch). ``direct`` returns False when it cannot take the frames now (the transport is full); the writer is
    then woken to write them and wait for the transport, or, if there is none yet, ``start_writer`` is called
    to start one. A writer is whoever calls :meth:`take`.
    """

    __slots__ = (
        "_direct",
        "_ended",
        "_flushed",
        "_frames",
        "_scheduled",
        "_start_writer",
        "_taken",
        "_waiter",
        "_writing",
    )

    def __init__(
        self,
        direct: Callable[[list[bytes]], bool] | None = None,
        start_writer: Callable[[], None] | None = None,
    ) -> None:
        self._frames: list[bytes] = []
        self._ended = False
        self._taken = False  # the writer holds a batch it has not finished writing
        self._waiter: asyncio.Future[None] | None = None
        self._flushed: asyncio.Future[None] | None = None
        self._direct = direct
        self._start_writer = start_writer
        self._writing = False  # a writer exists (it called take, or was asked to start)
        self._scheduled = False  # a direct write is due at the end of this loop turn

    @property
    def direct(self) -> Callable[[list[bytes]], bool] | None:
        return self._direct

    def put(self, frames: list[bytes]) -> None:
        self._frames += frames
        if self._direct is None or self._ended or (self._writing and self._waiter is None):
            self._wake()  # (a busy writer takes them with its next batch)
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._write_direct)

    def _write_direct(self) -> None:
        self._scheduled = False
        # The writer may have got busy meanwhile, or an end mark come: then it writes, in order, what is queued.
        if not self._frames or self._ended or self._direct is None or (self._writing and self._waiter is None):
            return
        frames, self._frames = self._frames, []
        if self._direct(frames):
            if not self._frames:
                self._release()
        else:
            self._frames[:0] = frames
            if self._writing:
                self._wake()
            elif self._start_writer is not None:
                self._writing = True
                self._start_writer()

    def end(self) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def take(self) -> list[bytes] | None:
        self._writing = True
        while not self._frames:
            if self._ended:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        frames, self._frames = self._frames, []
        self._taken = True
        return frames

    def done_writing(self) -> None:
        """The last batch taken is written: wake ``written`` if nothing new came meanwhile."""
        self._taken = False
        if not self._frames:
            self._release()

    def abandon(self) -> None:
        """The writer stopped: whatever is queued will never go out, and nobody may wait for it."""
        self._frames = []
        self._ended = True
        self._taken = False
        # Nothing goes out any more: the callbacks (bound methods of the connection, which holds this outbox)
        # are dropped, so the connection is freed as soon as it is let go, not by the garbage collector.
        self._direct = None
        self._start_writer = None
        self._release()

    def _release(self) -> None:
        flushed, self._flushed = self._flushed, None
        if flushed is not None and not flushed.done():
            flushed.set_result(None)

    async def written(self) -> None:
        if not self._frames and not self._taken:
            return
        if self._flushed is None or self._flushed.done():
            self._flushed = asyncio.get_running_loop().create_future()
        # Awaited directly, not through a shield: STARTTLS waits here for <proceed/> to go out, and every
        # extra loop iteration before the handshake starts is a chance for the client's ClientHello to be
        # read as stream data.
        await self._flushed
