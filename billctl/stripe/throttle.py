"""A client-side request throttle that never exceeds its rate.

Requests are let go at least ``1/rate`` seconds apart, and (a hard guarantee, checked against
the times they were actually let go) no window of ``1 + margin`` seconds holds more than
``floor(rate)`` of them: the margin absorbs network and scheduling jitter so that the server's
own one-second window agrees. Thread-safe: the check is under a lock, the waiting outside it.
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
        margin: float = 0.05,
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

    def acquire(self) -> float:
        """Wait until a request may be sent and count it as sent now; returns the seconds waited.

        The window is checked against the times requests were actually let go (not reserved
        slots), so a thread that wakes late can never make a burst with the ones after it."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                allowed = self._next
                if len(self._recent) == self.per_window:
                    allowed = max(allowed, self._recent[0] + 1.0 + self.margin)
                if now >= allowed:
                    self._recent.append(now)
                    self._next = now + self.interval
                    self.waited += waited
                    return waited
                wait = allowed - now
            self._sleep(wait)
            waited += wait
