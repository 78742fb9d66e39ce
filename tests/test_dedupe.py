"""Group-committed dedupe: correct answers for concurrent, duplicate and expired keys, across processes."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from bot.store import dedupe as dedupe_mod
from bot.store.db import MIGRATIONS, Database
from bot.store.dedupe import DedupeStore
from bot.store.dedupe_log import SCHEMA, DedupeLog


class Opened:
    """A migrated database and a dedupe store on it; `close()` closes both."""

    def __init__(self, db: Database, store: DedupeStore) -> None:
        self.db, self.store = db, store

    async def close(self) -> None:
        await self.store.close()
        await self.db.close()


async def open_store(tmp_path: Path, app_id: str = "cli_a", **kw: float) -> tuple[Opened, DedupeStore]:
    db = await Database.open(f"sqlite:///{tmp_path / 'd.db'}")
    store = DedupeStore(db.path, app_id, ttl=100.0, **kw)
    return Opened(db, store), store


async def test_concurrent_deliveries_of_one_event_pass_once(tmp_path: Path) -> None:
    opened, store = await open_store(tmp_path)
    answers = await asyncio.gather(*(store.first_time(["e:1", "m:1"], 1000.0) for _ in range(20)))
    assert answers.count(True) == 1
    # the same message under a new event id, in another batch, is still a duplicate
    assert await store.first_time(["e:2", "m:1"], 1001.0) is False
    assert await store.first_time(["e:3", "m:3"], 1001.0) is True
    await opened.close()


async def test_mixed_batch_answers_each_delivery(tmp_path: Path) -> None:
    opened, store = await open_store(tmp_path)
    assert await store.first_time(["e:seen"], 1000.0)
    asks = [["e:seen"], ["e:a", "m:a"], ["e:b", "m:a"], ["e:c"], ["e:c"], ["e:d", "m:d"]]
    answers = await asyncio.gather(*(store.first_time(k, 1001.0) for k in asks))
    assert answers == [False, True, False, True, False, True]
    await opened.close()


async def test_expired_keys_count_as_new_and_are_renewed(tmp_path: Path) -> None:
    opened, store = await open_store(tmp_path)
    assert await store.first_time(["e:old"], 1000.0)
    assert not await store.first_time(["e:old"], 1099.0)
    assert await store.first_time(["e:old"], 1200.0)  # past the 100 s TTL
    assert not await store.first_time(["e:old"], 1250.0)  # renewed at 1200
    await opened.close()


async def test_keys_are_scoped_by_app_and_survive_a_restart(tmp_path: Path) -> None:
    opened, store = await open_store(tmp_path)
    assert await store.first_time(["e:1"], 1000.0)
    await opened.close()
    opened, store = await open_store(tmp_path)
    assert not await store.first_time(["e:1"], 1001.0)
    other = DedupeStore(opened.db.path, "cli_b", ttl=100.0)
    assert await other.first_time(["e:1"], 1001.0)
    await other.close()
    await opened.close()


async def test_more_keys_than_one_write_holds_are_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened, store = await open_store(tmp_path)
    monkeypatch.setattr(dedupe_mod, "MAX_ROWS_PER_WRITE", 10)
    answers = await asyncio.gather(*(store.first_time([f"e:{i}", f"m:{i % 30}"], 1000.0) for i in range(60)))
    assert answers == [True] * 30 + [False] * 30
    row = await opened.db.fetchone("SELECT COUNT(*) AS n FROM dedupe_log")
    assert row is not None and row["n"] == 90
    await opened.close()


async def test_a_failed_write_fails_its_waiters_records_nothing_and_the_next_one_works(tmp_path: Path) -> None:
    opened, store = await open_store(tmp_path, busy_timeout=0.05)
    assert await store.first_time(["e:before"], 1000.0)
    blocker = sqlite3.connect(tmp_path / "d.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock past our busy timeout
    failed = await asyncio.gather(store.first_time(["e:x", "m:x"], 1001.0), store.first_time(["e:y"], 1001.0),
                                  return_exceptions=True)
    assert all(isinstance(r, sqlite3.OperationalError) and "locked" in str(r) for r in failed), failed
    blocker.execute("ROLLBACK")
    blocker.close()
    # Nothing of the failed write stuck, in the database or in memory: Lark's redelivery is processed.
    assert await store.first_time(["e:x", "m:x"], 1002.0)
    assert await store.first_time(["e:y"], 1002.0)
    assert not await store.first_time(["e:before"], 1002.0)
    await opened.close()


async def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    opened, store = await open_store(tmp_path)
    await opened.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.first_time(["e:x"], 1000.0)


async def test_two_processes_on_one_database_never_both_take_a_key(tmp_path: Path) -> None:
    """Each store has its own connection and memory, as two bot processes would."""
    opened, a = await open_store(tmp_path)
    b = DedupeStore(opened.db.path, "cli_a", ttl=100.0)
    assert await a.first_time(["e:1"], 1000.0)
    assert not await b.first_time(["e:1", "m:1"], 1000.5)  # recorded by the other process
    assert not await a.first_time(["m:1"], 1001.0)  # and the key b recorded is known to a
    # Racing: 40 deliveries of 20 events, spread over both processes: each event passes exactly once.
    asks = [(a if i % 2 else b).first_time([f"e:r{i % 20}", f"m:r{i % 20}"], 1002.0) for i in range(40)]
    answers = await asyncio.gather(*asks)
    assert answers.count(True) == 20
    passed = sorted(i % 20 for i, ok in enumerate(answers) if ok)
    assert passed == list(range(20))
    await b.close()
    await opened.close()


async def test_prune_forgets_expired_keys_only(tmp_path: Path) -> None:
    opened, store = await open_store(tmp_path)
    for i in range(12):  # 12 keys, one a second
        assert await store.first_time([f"e:{i}"], 1000.0 + i)
    assert await store.prune(1105.5) == 6  # ttl 100: e:0 .. e:5 are older than 1005.5
    rows = await opened.db.fetchall("SELECT key FROM dedupe_log ORDER BY seq")
    assert [r["key"] for r in rows] == [f"e:{i}" for i in range(6, 12)]
    assert not await store.first_time(["e:6"], 1105.5)  # still within its TTL
    assert await store.first_time(["e:0"], 1105.5)  # expired: new again
    await opened.close()


async def test_prune_works_in_chunks_and_keeps_the_newest_row(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    opened, store = await open_store(tmp_path)
    monkeypatch.setattr(dedupe_mod, "PRUNE_CHUNK", 3)
    await asyncio.gather(*(store.first_time([f"e:{i}"], 1000.0) for i in range(10)))
    assert await store.prune(5000.0) == 9  # all expired; the newest row stays so seq never goes back
    assert await store.first_time(["e:new"], 5000.0)
    rows = await opened.db.fetchall("SELECT seq, key FROM dedupe_log ORDER BY seq")
    assert [r["key"] for r in rows] == ["e:9", "e:new"] and rows[1]["seq"] > rows[0]["seq"]
    await opened.close()


async def test_keys_recorded_before_the_log_carry_over(tmp_path: Path) -> None:
    """Migration 4 moves the keys of the old `processed_events` table into the log."""
    path = tmp_path / "d.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(f"BEGIN; {MIGRATIONS[0]} PRAGMA user_version=3; COMMIT;")
        conn.execute("INSERT INTO processed_events VALUES ('cli_a', 'e:old', 1000.0), ('cli_a', 'm:old', 1000.0)")
    opened, store = await open_store(tmp_path)
    assert opened.db.schema_version == len(MIGRATIONS)
    assert not await store.first_time(["e:new", "m:old"], 1001.0)
    assert await store.first_time(["e:other"], 1001.0)
    await opened.close()


def test_the_private_schema_matches_the_migration(tmp_path: Path) -> None:
    """An in-memory database gets the table from `SCHEMA`; a file database from migration 4."""
    def columns(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
        return conn.execute("PRAGMA table_info(dedupe_log)").fetchall()

    with sqlite3.connect(":memory:") as mem, sqlite3.connect(tmp_path / "m.db") as migrated:
        mem.executescript(SCHEMA)
        migrated.executescript("".join(MIGRATIONS))
        assert columns(mem) == columns(migrated) != []


async def test_an_in_memory_database_gets_a_private_log() -> None:
    """`sqlite:///:memory:` cannot be shared between connections: the log keeps its own (not durable)."""
    store = DedupeStore(":memory:", "cli_a", ttl=100.0)
    assert await store.first_time(["e:1", "m:1"], 1000.0)
    assert not await store.first_time(["e:2", "m:1"], 1001.0)
    await store.close()


class CommitFailsOnce:
    """A connection whose next COMMIT fails (as on a full disk), to test what a failed write leaves."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.armed = conn, True

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "COMMIT" and self.armed:
            self.armed = False
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)  # type: ignore[arg-type]

    def executemany(self, sql: str, rows: object) -> sqlite3.Cursor:
        return self.conn.executemany(sql, rows)  # type: ignore[arg-type]

    def close(self) -> None:
        self.conn.close()


async def test_a_failed_commit_neither_marks_keys_nor_skips_what_others_append(tmp_path: Path) -> None:
    opened, _ = await open_store(tmp_path)
    path = opened.db.path
    a, b = DedupeLog(path, "cli_a", 100.0), DedupeLog(path, "cli_a", 100.0)  # two processes
    a._conn = CommitFailsOnce(a._conn)  # type: ignore[assignment]
    with pytest.raises(sqlite3.OperationalError):
        a.record([(["e:1", "e:2", "e:3"], 1000.0)])
    assert b.record([(["e:x"], 1000.0)]) == [True]  # b's row reuses the seq a's rolled-back row had
    assert a.record([(["e:x"], 1001.0), (["e:1"], 1001.0)]) == [False, True]
    a.close()
    b.close()
    await opened.close()


async def test_a_lone_delivery_is_written_at_once_and_one_under_load_waits_for_company(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened, store = await open_store(tmp_path)
    monkeypatch.setattr(dedupe_mod, "COMMIT_DELAY", 0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await store.first_time(["e:alone"], 1000.0)
    assert loop.time() - started < 0.25  # no delay: nothing else was waiting
    # Under load: hold the dedupe thread so that a shared write is still in flight when more arrive.
    gate = threading.Event()
    store._thread.submit(gate.wait)
    shared = [asyncio.create_task(store.first_time([f"e:s{i}"], 1000.0)) for i in range(2)]
    await asyncio.sleep(0.05)  # the shared write is queued behind the gate
    late = asyncio.create_task(store.first_time(["e:late"], 1000.0))
    await asyncio.sleep(0)
    started = loop.time()
    gate.set()
    assert await asyncio.gather(*shared) == [True, True]
    assert await late and loop.time() - started >= 0.3  # waited COMMIT_DELAY for company
    await opened.close()
