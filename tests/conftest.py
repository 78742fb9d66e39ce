from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests import netguard
from tests.harness import BotHarness

netguard.install()


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[BotHarness]:
    async with BotHarness.start(tmp_path) as h:
        yield h
