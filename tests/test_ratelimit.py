"""Rate windows: the platform ceilings hold in every window, paced or not, under a simulated clock."""

from __future__ import annotations

import itertools

import httpx
import pytest

from bot.clock import FakeClock
from bot.ghl.auth import PrivateTokenProvider
from bot.ghl.client import GhlClient
from bot.ratelimit import KeyedWindows, SlidingWindow


def drive(window: SlidingWindow, now: list[float], n: int, step: float = 0.001) -> list[float]:
    """Take `n` slots as fast as the window allows; return when each was taken."""
    stamps = []
    for _ in range(n):
        while (wait := window.wait_time()) > 0:
            now[0] += wait
        window.stamp()
        stamps.append(now[0])
        now[0] += step
    return stamps


def busiest(stamps: list[float], span: float) -> int:
    best, j = 0, 0
    for i, t in enumerate(stamps):
        while t - stamps[j] >= span:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.parametrize("pace", [False, True])
def test_no_window_ever_holds_more_than_the_limit(pace: bool) -> None:
    now = [0.0]
    w = SlidingWindow(90, 10.0, monotonic=lambda: now[0], pace=pace)
    stamps = drive(w, now, 400)
    assert busiest(stamps, 10.0) == 90
    assert stamps[-1] >= 40.0  # 400 slots at 90 per 10 s need at least 4 full windows


def test_paced_window_keeps_its_rate_without_drift_or_bursts() -> None:
    now = [0.0]
    w = SlidingWindow(46, 1.0, monotonic=lambda: now[0], pace=True)
    stamps = drive(w, now, 460, step=0.002)  # every caller wakes 2 ms late
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.75 / 46 - 1e-9  # no catch-up burst closer than 3/4 of a slot
    assert stamps[-1] - stamps[0] == pytest.approx(459 / 46, rel=0.01)  # lateness does not add up
    assert busiest(stamps, 1.0) <= 46


def test_a_pause_holds_every_caller() -> None:
    now = [0.0]
    w = SlidingWindow(10, 1.0, monotonic=lambda: now[0])
    w.pause(5.0)
    assert w.wait_time() == pytest.approx(5.0)


async def test_ghl_client_defaults_to_an_exact_window_of_90_per_10_seconds() -> None:
    async with httpx.AsyncClient() as http:
        client = GhlClient(http, tokens=PrivateTokenProvider("t", "loc"), clock=FakeClock())
    limiter = client._limiter
    assert isinstance(limiter, KeyedWindows) and (limiter.limit, limiter.window) == (90, 10.0)
