"""Leases: named, expiring locks in the database, so two processes never run the same job at once.

Semantics (every operation is one SQL statement, atomic across connections and processes):

* `acquire(name, holder, ttl)` succeeds when nobody holds the lease, when the holder's lease has
  expired (`expires_at <= now`), or when `holder` already holds it (re-entry extends it).
* `renew(name, holder, ttl)` extends the lease only while `holder` still owns the row; once
  another holder has taken it over (after expiry) renewal fails and the old holder must stop.
* `release(name, holder)` deletes the row only if `holder` owns it.

Times are wall-clock seconds from the injected clock (`now`), because two processes share them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.store.db import Database


@dataclass(frozen=True)
class LeaseRow:
    name: str
    holder: str
    expires_at: float


class LeaseStore:
    def __init__(self, db: Database, now: Callable[[], float]) -> None:
        self._db, self._now = db, now

    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        now = self._now()
        changed = await self._db.execute(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET holder=excluded.holder, expires_at=excluded.expires_at"
            " WHERE leases.expires_at <= ? OR leases.holder = excluded.holder",
            (name, holder, now + ttl, now))
        return changed == 1

    async def renew(self, name: str, holder: str, ttl: float) -> bool:
        changed = await self._db.execute("UPDATE leases SET expires_at=? WHERE name=? AND holder=?",
                                         (self._now() + ttl, name, holder))
        return changed == 1

    async def release(self, name: str, holder: str) -> bool:
        changed = await self._db.execute("DELETE FROM leases WHERE name=? AND holder=?", (name, holder))
        return changed == 1

    async def get(self, name: str) -> LeaseRow | None:
        row = await self._db.fetchone("SELECT name, holder, expires_at FROM leases WHERE name=?", (name,))
        return None if row is None else LeaseRow(row["name"], row["holder"], float(row["expires_at"]))


class LeaseLost(Exception):
    """Another holder took the lease over (ours expired): stop the work it guarded."""


class Lease:
    """A lease we hold. Long work calls `keep()` between steps: it renews once a third of the TTL
    has passed (no background timer, so a fake clock stays still) and raises `LeaseLost` if the
    lease is gone."""

    def __init__(self, store: LeaseStore, name: str, holder: str, ttl: float, now: Callable[[], float]) -> None:
        self.store, self.name, self.holder, self.ttl, self._now = store, name, holder, ttl, now
        self._renewed = now()
        self.lost = False

    async def keep(self) -> None:
        if self.lost:
            raise LeaseLost(self.name)
        if self._now() - self._renewed < self.ttl / 3:
            return
        stamp = self._now()
        if not await self.store.renew(self.name, self.holder, self.ttl):
            self.lost = True
            raise LeaseLost(self.name)
        self._renewed = stamp

    async def release(self) -> None:
        if not self.lost:
            await self.store.release(self.name, self.holder)
