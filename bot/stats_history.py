"""The bot's own statistics history: periodic snapshots per location, and series built from them.

GHL answers a rolling 7-day window (the 7 days before today) and its per-day series carry only
weekday labels (reference ghl.md §4.4, §11). We store the latest snapshot of each UTC day per
location (`stats_snapshots`), label series with real dates (a snapshot of day D covers D-7 … D-1)
and stitch snapshots together into longer daily series (the newest snapshot wins for a date).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bot.ghl.insights import fetch_stats
from bot.ghl.models import Num, Statistics
from bot.services import Services
from bot.store.leases import Lease
from bot.store.snapshots import SnapshotRow, SnapshotStore

log = logging.getLogger("bot.stats_history")

SNAPSHOT_CONCURRENCY = 8
FRESH_FRACTION = 0.9  # a snapshot younger than 90 % of the interval is fresh: the job skips it


@dataclass(frozen=True)
class Snapshot:
    location_id: str
    taken_at: float
    day: date  # UTC date the snapshot was taken; its 7-day window is day-7 … day-1
    stats: Statistics

    def window_dates(self, length: int = 7) -> list[date]:
        """The dates of a `length`-long per-day series ending yesterday (relative to `day`)."""
        return window_dates(self.day, length)


def utc_day(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def window_dates(day: date, length: int = 7) -> list[date]:
    """GHL's window as seen on `day` (a UTC date): the `length` days before it. GHL does not say which
    time zone it uses; /stats and the digest both date it this way, so they always agree."""
    return [day - timedelta(days=n) for n in range(length, 0, -1)]


def _snapshot(row: SnapshotRow) -> Snapshot:
    return Snapshot(row.location_id, row.taken_at, date.fromisoformat(row.day),
                    Statistics.model_validate_json(row.payload))


def dated(snap: Snapshot, series: Sequence[Num]) -> list[tuple[date, float]]:
    """A per-day series of a snapshot with real dates (the last value is the day before `snap.day`)."""
    days = snap.window_dates(len(series))
    return [(d, float(v)) for d, v in zip(days, series, strict=True)]


def stitch(snapshots: Iterable[Snapshot], metric: str = "impressions") -> list[tuple[date, float]]:
    """One daily series from many snapshots (oldest first in, newest wins per date), sorted by date."""
    out: dict[date, float] = {}
    for snap in sorted(snapshots, key=lambda s: s.taken_at):
        series: Sequence[Num] = getattr(snap.stats.post_performance, metric)
        out.update(dated(snap, series))
    return sorted(out.items())


class StatsHistory:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.store = SnapshotStore(svc.db)

    async def latest(self, location_id: str) -> Snapshot | None:
        row = await self.store.latest(location_id)
        return None if row is None else _snapshot(row)

    async def on_day(self, location_id: str, day: date) -> Snapshot | None:
        row = await self.store.on_day(location_id, day.isoformat())
        return None if row is None else _snapshot(row)

    async def since(self, location_id: str, first_day: date) -> list[Snapshot]:
        return [_snapshot(r) for r in await self.store.since(location_id, first_day.isoformat())]

    async def take(self, location_id: str, now: float) -> Snapshot | None:
        """Fetch statistics now and store them; None when no account of the location reports."""
        hub = self.svc.ghl
        if hub is None:
            return None
        result = await fetch_stats(hub.client, location_id)
        if result.statistics is None:
            return None
        day = utc_day(now)
        await self.store.put(location_id, now, day.isoformat(),
                             result.statistics.model_dump_json(by_alias=True))
        return Snapshot(location_id, now, day, result.statistics)

    async def run(self, now: float, lease: Lease) -> dict[str, int]:
        """The periodic job: snapshot every reachable location (tag caches refreshed alongside),
        skipping locations whose snapshot is still fresh (so a restart or a second instance
        never doubles the work), then apply the retention."""
        svc = self.svc
        counts = {"stored": 0, "fresh": 0, "no_data": 0, "error": 0, "pruned": 0}
        hub = svc.ghl
        if hub is not None and hub.configured:
            interval = svc.settings.snapshot_interval_seconds
            sem = asyncio.Semaphore(SNAPSHOT_CONCURRENCY)

            async def one(location_id: str) -> None:
                latest = await self.store.latest_taken_at(location_id)
                if latest is not None and now - latest < interval * FRESH_FRACTION:
                    counts["fresh"] += 1
                    return
                async with sem:
                    await lease.keep()
                    outcome = await self._snapshot_one(location_id, now)
                counts[outcome] += 1

            await asyncio.gather(*(one(loc) for loc in await hub.all_locations()))
        counts["pruned"] = await self.store.prune(now - svc.settings.stats_retention_days * 86400)
        return counts

    async def _snapshot_one(self, location_id: str, now: float) -> str:
        hub = self.svc.ghl
        assert hub is not None
        stats, tags = await asyncio.gather(self.take(location_id, now), hub.tags.refresh(location_id),
                                           return_exceptions=True)
        for r in (stats, tags):
            if isinstance(r, BaseException) and not isinstance(r, Exception):
                raise r  # cancellation
        if isinstance(tags, BaseException):
            log.warning("tag refresh failed during snapshot",
                        extra={"location_id": location_id, "error": type(tags).__name__})
        if isinstance(stats, BaseException):
            log.warning("statistics snapshot failed", extra={"location_id": location_id,
                                                             "error": type(stats).__name__})
            await self.svc.audit.record(kind="stats", action="snapshot", outcome="error", location_id=location_id,
                                        detail={"error": type(stats).__name__})
            return "error"
        outcome = "stored" if stats is not None else "no_data"
        await self.svc.audit.record(kind="stats", action="snapshot", outcome="ok" if stats else "no_data",
                                    location_id=location_id,
                                    detail={"tags": "error" if isinstance(tags, BaseException) else tags})
        return outcome
