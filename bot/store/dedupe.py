"""Durable dedupe of Lark deliveries: a key is recorded once, before the 200 goes out."""

from __future__ import annotations

from bot.store.db import Database

DEFAULT_TTL = 24 * 3600.0  # Lark retries for ~7.1 h; keep keys well past that


class DedupeStore:
    def __init__(self, db: Database, app_id: str, ttl: float = DEFAULT_TTL) -> None:
        self._db, self._app_id, self.ttl = db, app_id, ttl

    async def first_time(self, keys: list[str], now: float) -> bool:
        """Record every key; True only if none of them was seen before (one transaction)."""
        async with self._db.transaction() as tx:
            marks = ",".join("?" * len(keys))
            cur = await tx.execute(
                f"SELECT 1 FROM processed_events WHERE app_id=? AND key IN ({marks}) AND created_at>=? LIMIT 1",
                (self._app_id, *keys, now - self.ttl))
            if await cur.fetchone() is not None:
                return False
            await tx.executemany(
                "INSERT OR REPLACE INTO processed_events (app_id, key, created_at) VALUES (?, ?, ?)",
                [(self._app_id, k, now) for k in keys])
            return True

    async def prune(self, now: float) -> int:
        return await self._db.execute("DELETE FROM processed_events WHERE created_at < ?", (now - self.ttl,))
