"""The database: readers never see another coroutine's unfinished transaction."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.store.db import Database
from bot.store.tags import TagStore


async def test_a_page_read_during_a_cache_refresh_sees_the_old_or_the_new_list_never_a_half(
        tmp_path: Path) -> None:
    db = await Database.open(f"sqlite:///{tmp_path / 'x.db'}")
    store = TagStore(db, lambda: 1.0)
    rows = [(f"id{i}", f"name {i}", None) for i in range(2000)]
    await store.replace("loc", rows)
    totals: set[int] = set()

    async def read() -> None:
        for _ in range(200):
            totals.add((await store.page("loc", None, 0, 10))[1])

    await asyncio.gather(read(), *(store.replace("loc", rows) for _ in range(10)))
    assert totals == {2000}
    await db.close()


async def test_migrations_bring_an_old_database_up_to_date(tmp_path: Path) -> None:
    import aiosqlite

    from bot.store.db import MIGRATIONS

    path = tmp_path / "old.db"
    async with aiosqlite.connect(path) as conn:  # a database from the first release
        await conn.executescript(MIGRATIONS[0] + "\nPRAGMA user_version=1;")
    db = await Database.open(f"sqlite:///{path}")
    row = await db.fetchone("PRAGMA user_version")
    assert row is not None and row[0] == len(MIGRATIONS) == db.schema_version
    assert await db.fetchone("SELECT name FROM sqlite_master WHERE name='tag_cache_page'") is not None
    await db.close()
