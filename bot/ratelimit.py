"""Async rate windows, one per key (chat, message, location) or app-wide: callers wait instead of failing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Unlimited:
    """Stand-in limiter for benchmarks that measure raw throughput."""

    async def acquire(self, key: str = "") -> None:
        return None

    def wait_time(self) -> float:
        return 0.0

    def stamp(self) -> None:
        return None

    def pause(self, seconds: float) -> None:
        return None


EDGE = 0.001  # seconds


class SlidingWindow:
    """At most `limit` acquisitions in any `window` seconds (exact, unlike a token bucket's burst).

    Used for platform ceilings stated as "N per second/minute", which a server counts the same way.
    With `pace`, acquisitions are also spread `window / limit` apart on a fixed schedule (GCRA with
    half a slot of tolerance): a caller that wakes a little late does not push every later slot back,
    so a long fan-out runs at the full rate instead of drifting slower by the sleep overshoot, and
    the catch-up never sends two requests closer than half a slot.
    """

    def __init__(self, limit: int, window: float, monotonic: Callable[[], float] = time.monotonic, *,
                 pace: bool = False) -> None:
        from collections import deque

        self.limit, self.window, self._mono = limit, window, monotonic
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._paused_until = 0.0
        self._gap = window / limit if pace else 0.0
        self._next_slot = 0.0  # GCRA's "theoretical arrival time"

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._mono() + seconds)

    def wait_time(self) -> float:
        """Seconds until one more acquisition fits (0 when it fits now)."""
        now = self._mono()
        if self._paused_until > now:
            return self._paused_until - now
        # A stamp leaves the window only `EDGE` after `window` seconds: a request exactly on the
        # boundary would count in both windows of a server measuring the same way.
        while self._stamps and self._stamps[0] + self.window + EDGE <= now:
            self._stamps.popleft()
        wait = 0.0 if len(self._stamps) < self.limit else self._stamps[0] + self.window + EDGE - now
        if self._gap:
            wait = max(wait, self._next_slot - self._gap / 4 - now)
        return max(0.0, wait)

    def stamp(self) -> None:
        """Record one acquisition now (call only right after `wait_time()` returned 0, with no await between)."""
        now = self._mono()
        self._stamps.append(now)
        if self._gap:
            self._next_slot = max(self._next_slot, now - self._gap / 4) + self._gap

    def idle(self) -> bool:
        return not self._lock.locked() and (not self._stamps or self._stamps[-1] < self._mono() - self.window)

    async def acquire(self, key: str = "") -> None:
        async with self._lock:
            while True:
                wait = self.wait_time()
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            self.stamp()


class KeyedWindows:
    """One `SlidingWindow` per key (per chat, per message), forgotten once idle."""

    def __init__(self, limit: int, window: float, max_keys: int = 10_000) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._windows: dict[str, SlidingWindow] = {}

    def get(self, key: str) -> SlidingWindow:
        w = self._windows.get(key)
        if w is None:
            if len(self._windows) >= self.max_keys:
                for k in [k for k, v in self._windows.items() if v.idle()]:
                    del self._windows[k]
            w = self._windows[key] = SlidingWindow(self.limit, self.window)
        return w

    async def acquire(self, key: str) -> None:
        await self.get(key).acquire()
