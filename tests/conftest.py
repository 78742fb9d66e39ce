from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.clock import FakeClock
from tests import netguard
from tests.harness import BotHarness

netguard.install()


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[BotHarness]:
    async with BotHarness.start(tmp_path) as h:
        yield h


@pytest.fixture
def clock() -> FakeClock:
    """Time that moves only when a test says so (modules that start on a given day override it)."""
    return FakeClock()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """One client for the code under test to talk to the loopback fakes with."""
    async with httpx.AsyncClient(timeout=5) as client:
        yield client
