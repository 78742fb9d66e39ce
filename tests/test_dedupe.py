"""Group-committed dedupe: correct answers for concurrent, duplicate and expired keys."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.store import dedupe as dedupe_mod
from bot.store.db import Database
from bot.store.dedupe import DedupeStore


async def open_store(tmp_path: Path, app_id: str = "cli_a") -> tuple[Database, DedupeStore]:
    db = await Database.open(f"sqlite:///{tmp_path / 'd.db'}")
    return db, DedupeStore(db, app_id, ttl=100.0)


async def test_concurrent_deliveries_of_one_event_pass_once(tmp_path: Path) -> None:
    db, store = await open_store(tmp_path)
    answers = await asyncio.gather(*(store.first_time(["e:1", "m:1"], 1000.0) for _ in range(20)))
    assert answers.count(True) == 1
    # the same message under a new event id, in another batch, is still a duplicate
    assert await store.first_time(["e:2", "m:1"], 1001.0) is False
    assert await store.first_time(["e:3", "m:3"], 1001.0) is True
    await db.close()


async def test_mixed_batch_answers_each_delivery(tmp_path: Path) -> None:
    db, store = await open_store(tmp_path)
    assert await store.first_time(["e:seen"], 1000.0)
    asks = [["e:seen"], ["e:a", "m:a"], ["e:b", "m:a"], ["e:c"], ["e:c"], ["e:d", "m:d"]]
    answers = await asyncio.gather(*(store.first_time(k, 1001.0) for k in asks))
    assert answers == [False, True, False, True, False, True]
    await db.close()


async def test_expired_keys_count_as_new_and_are_renewed(tmp_path: Path) -> None:
    db, store = await open_store(tmp_path)
    assert await store.first_time(["e:old"], 1000.0)
    assert not await store.first_time(["e:old"], 1099.0)
    assert await store.first_time(["e:old"], 1200.0)  # past the 100 s TTL
    assert not await store.first_time(["e:old"], 1250.0)  # renewed at 1200
    await db.close()


async def test_keys_are_scoped_by_app_and_survive_a_restart(tmp_path: Path) -> None:
    db, store = await open_store(tmp_path)
    assert await store.first_time(["e:1"], 1000.0)
    await db.close()
    db, store = await open_store(tmp_path)
    assert not await store.first_time(["e:1"], 1001.0)
    other = DedupeStore(db, "cli_b", ttl=100.0)
    assert await other.first_time(["e:1"], 1001.0)
    await db.close()


async def test_more_keys_than_one_write_holds_are_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db, store = await open_store(tmp_path)
    monkeypatch.setattr(dedupe_mod, "MAX_ROWS_PER_WRITE", 10)
    answers = await asyncio.gather(*(store.first_time([f"e:{i}", f"m:{i % 30}"], 1000.0) for i in range(60)))
    assert answers == [True] * 30 + [False] * 30
    row = await db.fetchone("SELECT COUNT(*) AS n FROM processed_events")
    assert row is not None and row["n"] == 90
    await db.close()


async def test_a_failed_write_fails_its_waiters_and_the_next_one_works(tmp_path: Path) -> None:
    db, store = await open_store(tmp_path)
    await db.close()
    try:
        await store.first_time(["e:x"], 1000.0)
    except Exception as exc:
        assert "closed" in str(exc).lower() or isinstance(exc, ValueError)
    else:
        raise AssertionError("a write on a closed database must fail")
    db, store = await open_store(tmp_path)
    assert await store.first_time(["e:x"], 1000.0)
    await db.close()
