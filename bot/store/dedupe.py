"""Durable dedupe of Lark deliveries: a key is recorded once, before the 200 goes out.

Recording is a group commit: deliveries that arrive while a write is in flight queue up, and the
next write records all of their keys in one statement (one transaction, one hop to the database
thread). Under load that is what keeps intake fast; alone, a delivery waits for one write, as before.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bot.store.db import Database

DEFAULT_TTL = 24 * 3600.0  # Lark retries for ~7.1 h; keep keys well past that
MAX_ROWS_PER_WRITE = 2000  # 3 bound values a row, well under SQLite's variable limit


@dataclass
class _Ask:
    keys: list[str]
    now: float
    answer: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class DedupeStore:
    def __init__(self, db: Database, app_id: str, ttl: float = DEFAULT_TTL) -> None:
        self._db, self._app_id, self.ttl = db, app_id, ttl
        self._queue: list[_Ask] = []
        self._writer: asyncio.Task[None] | None = None

    async def first_time(self, keys: list[str], now: float) -> bool:
        """Record every key; True only if none of them was seen (within the TTL) before."""
        ask = _Ask(list(dict.fromkeys(keys)), now)
        self._queue.append(ask)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain(), name="dedupe writer")
        return await asyncio.shield(ask.answer)

    async def _drain(self) -> None:
        while self._queue:
            batch: list[_Ask] = []
            rows = 0
            while self._queue and rows + len(self._queue[0].keys) <= MAX_ROWS_PER_WRITE:
                batch.append(self._queue.pop(0))
                rows += len(batch[-1].keys)
            if not batch:  # one ask larger than a whole write: take it alone
                batch.append(self._queue.pop(0))
            try:
                fresh = await self._record(batch)
            except Exception as exc:  # every waiter of this write learns it failed
                for ask in batch:
                    if not ask.answer.done():
                        ask.answer.set_exception(exc)
                continue
            claimed: set[str] = set()
            for ask in batch:  # within one write, the first delivery to name a key wins
                new = all(k in fresh and k not in claimed for k in ask.keys)
                claimed.update(ask.keys)
                if not ask.answer.done():
                    ask.answer.set_result(new)

    async def _record(self, batch: list[_Ask]) -> set[str]:
        """Insert every key; return those that were new or had expired (and are now renewed)."""
        values, params = [], []
        for ask in batch:
            for key in ask.keys:
                values.append("(?, ?, ?)")
                params += [self._app_id, key, ask.now]
        cutoff = min(a.now for a in batch) - self.ttl
        rows = await self._db.write_returning(
            "INSERT INTO processed_events (app_id, key, created_at) VALUES " + ", ".join(values)
            + " ON CONFLICT (app_id, key) DO UPDATE SET created_at = excluded.created_at"
            " WHERE processed_events.created_at < ? RETURNING key", (*params, cutoff))
        return {str(r[0]) for r in rows}

    async def prune(self, now: float) -> int:
        return await self._db.execute("DELETE FROM processed_events WHERE created_at < ?", (now - self.ttl,))
