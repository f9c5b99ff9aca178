"""A client-side request throttle that never exceeds its rate.

Each request takes a slot: slots are at least ``1/rate`` seconds apart, and (a hard guarantee
checked against the actual slot times) no window of one second holds more than ``floor(rate)``
slots, with a small margin for network jitter so the server's own one-second window agrees.
Thread-safe: slots are handed out under a lock, the waiting happens outside it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class Throttle:
    def __init__(
        self,
        rate: float,
        *,
        margin: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.interval = 1.0 / rate
        self.per_window = max(1, math.floor(rate))
        self.margin = margin
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0
        self._recent: deque[float] = deque(maxlen=self.per_window)
        self.waited = 0.0  # total seconds spent waiting, for reports

    def reserve(self) -> float:
        """Take the next slot; returns the (clock) time at which the caller may send."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            if len(self._recent) == self.per_window:
                slot = max(slot, self._recent[0] + 1.0 + self.margin)
            self._recent.append(slot)
            self._next = slot + self.interval
            return slot

    def acquire(self) -> float:
        """Wait for a slot; returns the seconds waited."""
        slot = self.reserve()
        wait = slot - self._clock()
        if wait > 0:
            self._sleep(wait)
            with self._lock:
                self.waited += wait
            return wait
        return 0.0
