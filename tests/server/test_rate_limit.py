"""``limits.c2s_rate_bytes_per_s``: a token bucket on the bytes each client stream reads.

Over the rate the server stops reading, so TCP flow control slows the client down (nothing is dropped), and a
paused stream still closes at once when the server shuts down (RFC 6120 §13.12 lists rate limiting among the
resource limits a server applies).
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

import pytest

from jaybird.server.ratelimit import BURST_SECONDS, ReadRate
from jaybird.stanza import Message, MessageType
from tests.server.conftest import ServerFactory
from tests.server.helpers import next_stanza, watch

PASSWORD = "balcony-at-midnight"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_pays_back_debt_at_the_rate() -> None:
    clock = FakeClock()
    bucket = ReadRate(1000, 4000, clock=clock)
    assert bucket.spend(4000) == 0.0  # the whole burst at once
    assert bucket.spend(500) == pytest.approx(0.5)  # 500 bytes of debt at 1000 B/s
    clock.now += 0.5
    assert bucket.spend(1000) == pytest.approx(1.0)  # the debt is paid; 1000 more is one second
    clock.now += 60.0
    assert bucket.spend(4000) == 0.0  # refilled, but never beyond the burst
    assert bucket.spend(1) > 0


def test_burst_is_seconds_of_rate_or_one_largest_stanza() -> None:
    assert ReadRate.for_stream(100_000, 10_000).burst == BURST_SECONDS * 100_000
    assert ReadRate.for_stream(1_000, 262_144).burst == 262_144
    with pytest.raises(ValueError):
        ReadRate(0, 10)


async def test_fast_sender_is_slowed_to_the_rate_and_nothing_is_lost(start_server: ServerFactory) -> None:
    rate = 16_000
    running = await start_server(toml=f"[limits]\nc2s_rate_bytes_per_s = {rate}\nmax_stanza_bytes = 10000\n")
    burst = ReadRate.for_stream(rate, 10_000).burst
    juliet = await running.add_user("juliet", PASSWORD)
    romeo = await running.add_user("romeo", PASSWORD)
    sent_bytes = 0

    def count(direction: Literal["in", "out"], text: str) -> None:
        nonlocal sent_bytes
        if direction == "out":
            sent_bytes += len(text.encode())

    bodies = [f"{index:04d}" + "x" * 2000 for index in range(40)]
    async with running.client(romeo, PASSWORD, resource="r") as receiver:
        inbox = receiver.stanzas()
        first = watch(inbox, timeout=30.0)
        async with running.client(juliet, PASSWORD, console=count) as sender:
            negotiation_bytes = sent_bytes
            began = time.monotonic()
            for body in bodies:
                await sender.send(Message.build(receiver.jid, body, type=MessageType.CHAT))
            received = [await first]
            while len(received) < len(bodies):
                received.append(await next_stanza(inbox, timeout=30.0))
            elapsed = time.monotonic() - began
    # Nothing lost, nothing reordered (RFC 6120 §10.1: in-order processing).
    assert [message.body for message in received if isinstance(message, Message)] == bodies
    # The bytes beyond the burst (what negotiation left of it) go at the rate; allow a factor of two each way.
    payload = sent_bytes - negotiation_bytes
    over_burst = payload - (burst - negotiation_bytes)
    assert over_burst > 2 * rate, "the test must send well beyond the burst to measure anything"
    expected = over_burst / rate
    assert expected / 2 <= elapsed <= expected * 2, (elapsed, expected, payload)


async def test_a_paused_stream_still_closes_promptly_on_shutdown(start_server: ServerFactory) -> None:
    # 1000 B/s with a 10000-byte burst: 40 kB is half a minute of reading, but shutdown must not wait for it.
    running = await start_server(toml="[limits]\nc2s_rate_bytes_per_s = 1000\nmax_stanza_bytes = 10000\n")
    juliet = await running.add_user("juliet", PASSWORD)
    async with running.client(juliet, PASSWORD) as sender:
        for index in range(20):
            await sender.send(Message.build("nobody@localhost", f"{index}" + "x" * 2000))
        await asyncio.sleep(0.2)  # the server has read the burst and is pausing
        began = time.monotonic()
        await running.server.stop()
        stopped_in = time.monotonic() - began
    # The shutdown's own bound is 5 s (app.SHUTDOWN_TIMEOUT_S); the pause would be ~30 s.
    assert stopped_in < 4.0, stopped_in
