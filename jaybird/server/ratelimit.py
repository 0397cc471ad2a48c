"""A token bucket on the bytes one connection reads (``limits.c2s_rate_bytes_per_s``).

The driver reads, spends what it read, and before its next read waits for as long as the bucket is in debt.
While it waits nothing drains the socket, so the kernel's buffers fill and TCP flow control slows the sender
down: nothing is dropped, and a waiting connection costs one timer, not a loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

__all__ = ["BURST_SECONDS", "ReadRate"]

#: The burst is this many seconds of the rate, or one stanza of the largest allowed size if that is more:
#: a client can always send one whole stanza at full speed, and an idle one a short flurry.
BURST_SECONDS: Final = 2.0


class ReadRate:
    """``rate`` bytes per second on average, up to ``burst`` bytes at once after a quiet spell."""

    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("the rate and the burst must be positive")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()

    @classmethod
    def for_stream(cls, rate: int, max_stanza_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> ReadRate:
        return cls(rate, max(BURST_SECONDS * rate, max_stanza_bytes), clock=clock)

    def spend(self, size: int) -> float:
        """Account for ``size`` bytes just read; return how many seconds to wait before reading again.

        The bytes are already read, so the bucket may go into debt; the wait is exactly what pays it back.
        """
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate) - size
        self._stamp = now
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
