"""The per-location tag cache: GHL's tag list, searchable and pageable without calling GHL."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.store.db import Database


@dataclass(frozen=True)
class CachedTag:
    id: str
    name: str
    created_at: str | None


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class TagStore:
    def __init__(self, db: Database, now: Callable[[], float]) -> None:
        self._db, self._now = db, now

    async def replace(self, location_id: str, tags: Iterable[tuple[str, str, str | None]]) -> int:
        """Swap in a fresh list (id, name, created_at) atomically; returns how many."""
        rows = [(location_id, i, n, c) for i, n, c in tags]
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM tag_cache WHERE location_id=?", (location_id,))
            await tx.executemany("INSERT OR REPLACE INTO tag_cache (location_id, tag_id, name, created_at)"
                                 " VALUES (?, ?, ?, ?)", rows)
            await tx.execute("INSERT OR REPLACE INTO tag_cache_meta (location_id, fetched_at, count) VALUES (?, ?, ?)",
                             (location_id, self._now(), len(rows)))
        return len(rows)

    async def add(self, location_id: str, tags: Iterable[tuple[str, str, str | None]]) -> None:
        await self._db.executemany("INSERT OR REPLACE INTO tag_cache (location_id, tag_id, name, created_at)"
                                   " VALUES (?, ?, ?, ?)", [(location_id, i, n, c) for i, n, c in tags])

    async def fetched_at(self, location_id: str) -> float | None:
        row = await self._db.fetchone("SELECT fetched_at FROM tag_cache_meta WHERE location_id=?", (location_id,))
        return None if row is None else float(row["fetched_at"])

    async def page(self, location_id: str, search: str | None, offset: int, limit: int) -> tuple[list[CachedTag], int]:
        where, params = "location_id=?", [location_id]
        if search:
            where += " AND name LIKE ? ESCAPE '\\' COLLATE NOCASE"
            params.append(_like(search))
        total_row = await self._db.fetchone(f"SELECT COUNT(*) AS n FROM tag_cache WHERE {where}", params)
        rows = await self._db.fetchall(
            f"SELECT tag_id, name, created_at FROM tag_cache WHERE {where}"
            " ORDER BY name COLLATE NOCASE, tag_id LIMIT ? OFFSET ?", (*params, limit, offset))
        total = int(total_row["n"]) if total_row else 0
        return [CachedTag(r["tag_id"], r["name"], r["created_at"]) for r in rows], total

    async def all(self, location_id: str) -> list[CachedTag]:
        rows = await self._db.fetchall(
            "SELECT tag_id, name, created_at FROM tag_cache WHERE location_id=? ORDER BY name COLLATE NOCASE",
            (location_id,))
        return [CachedTag(r["tag_id"], r["name"], r["created_at"]) for r in rows]

    async def get(self, location_id: str, tag_id: str) -> CachedTag | None:
        r = await self._db.fetchone("SELECT tag_id, name, created_at FROM tag_cache WHERE location_id=? AND tag_id=?",
                                    (location_id, tag_id))
        return None if r is None else CachedTag(r["tag_id"], r["name"], r["created_at"])

    async def names(self, location_id: str, tag_ids: list[str]) -> dict[str, str]:
        if not tag_ids:
            return {}
        marks = ",".join("?" * len(tag_ids))
        rows = await self._db.fetchall(
            f"SELECT tag_id, name FROM tag_cache WHERE location_id=? AND tag_id IN ({marks})", (location_id, *tag_ids))
        return {r["tag_id"]: r["name"] for r in rows}
