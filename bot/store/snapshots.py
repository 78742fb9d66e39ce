"""Statistics history: one stored snapshot per location per UTC day (the day's latest one wins).

GHL's statistics are a rolling 7-day window, so the bot keeps its own history: day-over-day and
week-over-week changes and the trend chart come from these rows. `payload` is the `Statistics`
JSON exactly as parsed (camelCase); callers turn it back into a model.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.store.db import Database, Row


@dataclass(frozen=True)
class SnapshotRow:
    location_id: str
    taken_at: float
    day: str  # UTC date, YYYY-MM-DD
    payload: str


class SnapshotStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, location_id: str, taken_at: float, day: str, payload: str) -> None:
        """Store a snapshot, replacing the location's earlier snapshot(s) of the same day."""
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM stats_snapshots WHERE location_id=? AND day=? AND taken_at<=?",
                             (location_id, day, taken_at))
            await tx.execute("INSERT OR REPLACE INTO stats_snapshots (location_id, taken_at, day, payload)"
                             " VALUES (?, ?, ?, ?)", (location_id, taken_at, day, payload))

    async def latest(self, location_id: str) -> SnapshotRow | None:
        row = await self._db.fetchone(
            "SELECT * FROM stats_snapshots WHERE location_id=? ORDER BY taken_at DESC LIMIT 1", (location_id,))
        return None if row is None else _row(row)

    async def latest_taken_at(self, location_id: str) -> float | None:
        row = await self._db.fetchone("SELECT MAX(taken_at) AS t FROM stats_snapshots WHERE location_id=?",
                                      (location_id,))
        return None if row is None or row["t"] is None else float(row["t"])

    async def on_day(self, location_id: str, day: str) -> SnapshotRow | None:
        row = await self._db.fetchone(
            "SELECT * FROM stats_snapshots WHERE location_id=? AND day=? ORDER BY taken_at DESC LIMIT 1",
            (location_id, day))
        return None if row is None else _row(row)

    async def since(self, location_id: str, first_day: str) -> list[SnapshotRow]:
        """Snapshots from `first_day` on, oldest first."""
        rows = await self._db.fetchall(
            "SELECT * FROM stats_snapshots WHERE location_id=? AND day>=? ORDER BY day, taken_at",
            (location_id, first_day))
        return [_row(r) for r in rows]

    async def prune(self, before: float) -> int:
        """Delete snapshots taken before `before` (retention); returns how many went."""
        return await self._db.execute("DELETE FROM stats_snapshots WHERE taken_at < ?", (before,))

    async def count(self, location_id: str | None = None) -> int:
        if location_id is None:
            row = await self._db.fetchone("SELECT COUNT(*) AS n FROM stats_snapshots")
        else:
            row = await self._db.fetchone("SELECT COUNT(*) AS n FROM stats_snapshots WHERE location_id=?",
                                          (location_id,))
        return int(row["n"]) if row else 0


def _row(r: Row) -> SnapshotRow:
    return SnapshotRow(r["location_id"], float(r["taken_at"]), r["day"], r["payload"])
