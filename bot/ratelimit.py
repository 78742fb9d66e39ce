"""Async token buckets: one per key (chat, app, location), waiting instead of failing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """`rate` tokens per `per` seconds, at most `burst` at once; `acquire` waits for a token.

    Waiters are served in arrival order (one lock), so a burst of callers is paced evenly.
    """

    rate: float
    per: float = 1.0
    burst: float | None = None
    monotonic: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _stamp: float = field(init=False)
    _lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)
    _paused_until: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._tokens = self.capacity
        self._stamp = self.monotonic()

    @property
    def capacity(self) -> float:
        return self.burst if self.burst is not None else self.rate

    def _refill(self) -> None:
        now = self.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate / self.per)
        self._stamp = now

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (a 429 told us to)."""
        self._paused_until = max(self._paused_until, self.monotonic() + seconds)
        self._tokens = 0.0

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                wait = self._paused_until - self.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                self._refill()
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) * self.per / self.rate)


class KeyedLimiter:
    """One bucket per key, created on first use; idle buckets are dropped past `max_keys`."""

    def __init__(self, rate: float, per: float = 1.0, burst: float | None = None, max_keys: int = 10_000) -> None:
        self.rate, self.per, self.burst, self.max_keys = rate, per, burst, max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, key: str) -> TokenBucket:
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.max_keys:
                idle = [k for k, v in self._buckets.items() if not v._lock.locked()]
                for k in idle[: len(idle) // 2 or 1]:
                    del self._buckets[k]
            b = self._buckets[key] = TokenBucket(self.rate, self.per, self.burst)
        return b

    async def acquire(self, key: str) -> None:
        await self.bucket(key).acquire()


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
        while self._stamps and self._stamps[0] <= now - self.window:
            self._stamps.popleft()
        wait = 0.0 if len(self._stamps) < self.limit else self._stamps[0] + self.window - now
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
