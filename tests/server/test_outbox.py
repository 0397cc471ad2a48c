"""The c2s writer's queue and flags (jaybird.server.outbox): batching, the end mark, and waiting for writes.

RFC 6120 §5.4.3.3: after <proceed/> the server must not read or send anything on the plain stream, so the
STARTTLS path waits until <proceed/> is written; ``written`` is that wait.
"""

from __future__ import annotations

import asyncio
import contextlib

from jaybird.server.outbox import Flag, Outbox


async def test_take_returns_everything_queued_as_one_batch() -> None:
    box = Outbox()
    box.put([b"<a/>"])
    box.put([b"<b/>", b"<c/>"])
    assert await box.take() == [b"<a/>", b"<b/>", b"<c/>"]


async def test_take_waits_for_frames_and_returns_none_after_end() -> None:
    box = Outbox()
    taker = asyncio.ensure_future(box.take())
    await asyncio.sleep(0)
    assert not taker.done()
    box.put([b"<a/>"])
    assert await asyncio.wait_for(taker, 1) == [b"<a/>"]
    box.put([b"<last/>"])
    box.end()
    assert await box.take() == [b"<last/>"]  # what was queued before the end still goes out
    assert await box.take() is None


async def test_written_waits_until_the_writer_finished_the_batch() -> None:
    box = Outbox()
    await asyncio.wait_for(box.written(), 1)  # nothing queued: nothing to wait for
    box.put([b"<proceed/>"])
    waiter = asyncio.ensure_future(box.written())
    await asyncio.sleep(0)
    assert not waiter.done()
    await box.take()
    await asyncio.sleep(0)
    assert not waiter.done()  # taken but not yet written
    box.done_writing()
    await asyncio.wait_for(waiter, 1)


async def test_written_covers_frames_queued_while_a_batch_was_being_written() -> None:
    box = Outbox()
    box.put([b"<one/>"])
    await box.take()
    box.put([b"<two/>"])
    waiter = asyncio.ensure_future(box.written())
    box.done_writing()
    await asyncio.sleep(0)
    assert not waiter.done()  # <two/> is still queued
    assert await box.take() == [b"<two/>"]
    box.done_writing()
    await asyncio.wait_for(waiter, 1)


async def test_abandon_drops_frames_and_releases_waiters() -> None:
    box = Outbox()
    box.put([b"<a/>"])
    waiter = asyncio.ensure_future(box.written())
    await asyncio.sleep(0)
    box.abandon()
    await asyncio.wait_for(waiter, 1)
    assert await box.take() is None


async def test_flag_wakes_waiters_and_survives_a_cancelled_wait() -> None:
    flag = Flag()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(flag.wait(), 0.01)
    assert not flag.is_set()
    waiter = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    flag.set()
    await asyncio.wait_for(waiter, 1)
    assert flag.is_set()
    await asyncio.wait_for(flag.wait(), 1)  # already set: returns at once


async def test_direct_writes_what_one_loop_turn_queued_in_one_call() -> None:
    written: list[list[bytes]] = []
    box = Outbox(lambda frames: written.append(frames) is None)
    taker = asyncio.ensure_future(box.take())  # the writer task idles
    await asyncio.sleep(0)
    box.put([b"<a/>"])
    box.put([b"<b/>"])
    assert written == []  # not before the end of this turn
    waiter = asyncio.ensure_future(box.written())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert written == [[b"<a/>", b"<b/>"]]
    assert waiter.done()  # written() covers the direct path
    assert not taker.done()  # the writer task was never woken
    box.end()
    assert await asyncio.wait_for(taker, 1) is None


async def test_direct_refusing_hands_the_frames_to_the_writer_in_order() -> None:
    box = Outbox(lambda frames: False)  # a full send buffer
    taker = asyncio.ensure_future(box.take())
    await asyncio.sleep(0)
    box.put([b"<a/>"])
    assert await asyncio.wait_for(taker, 1) == [b"<a/>"]
    box.put([b"<b/>"])  # the writer holds a batch: queued for it, nothing direct
    box.done_writing()
    assert await box.take() == [b"<b/>"]


async def test_an_end_mark_before_the_direct_write_leaves_the_frames_to_the_writer() -> None:
    written: list[list[bytes]] = []
    box = Outbox(lambda frames: written.append(frames) is None)
    taker = asyncio.ensure_future(box.take())
    await asyncio.sleep(0)
    box.put([b"<last/>"])
    box.end()
    assert await asyncio.wait_for(taker, 1) == [b"<last/>"]
    await asyncio.sleep(0)
    assert written == []


async def test_without_a_writer_the_direct_path_writes_and_no_writer_is_started() -> None:
    written: list[list[bytes]] = []
    started: list[bool] = []
    box = Outbox(lambda frames: written.append(frames) is None, lambda: started.append(True))
    box.put([b"<a/>"])
    box.put([b"<b/>"])
    await asyncio.sleep(0)
    assert written == [[b"<a/>", b"<b/>"]] and started == []
    await asyncio.wait_for(box.written(), 1)


async def test_a_full_transport_without_a_writer_starts_one_that_gets_the_frames_in_order() -> None:
    started: list[asyncio.Task[list[bytes] | None]] = []
    box = Outbox(lambda frames: False, lambda: started.append(asyncio.ensure_future(box.take())))
    box.put([b"<a/>"])
    await asyncio.sleep(0)
    box.put([b"<b/>"])  # queued behind the refused frames
    assert len(started) == 1
    assert await asyncio.wait_for(started[0], 1) == [b"<a/>", b"<b/>"]
    box.put([b"<c/>"])  # the writer holds a batch: nothing direct, no second writer
    await asyncio.sleep(0)
    assert len(started) == 1
    box.done_writing()
    assert await box.take() == [b"<c/>"]


async def test_an_end_mark_without_a_writer_leaves_everything_to_the_one_who_takes() -> None:
    written: list[list[bytes]] = []
    box = Outbox(lambda frames: written.append(frames) is None, lambda: None)
    box.put([b"<last/>"])
    box.end()
    await asyncio.sleep(0)
    assert written == []
    assert await box.take() == [b"<last/>"]
    assert await box.take() is None
