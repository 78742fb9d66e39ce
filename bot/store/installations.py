"""GHL credentials per location (sub-account), tokens encrypted at rest.

`generation` counts rotations: a refresher reads it, calls the token endpoint, and stores the
new pair only if the generation is still the one it read (`rotate`, a compare-and-swap), so
two refreshers can never overwrite each other's pair silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot.clock import Clock
from bot.secrets import SecretBox, SecretError
from bot.store.db import Database, Row

__all__ = ["ACTIVE", "NEEDS_RECONNECT", "Installation", "InstallationStore"]

ACTIVE = "active"
NEEDS_RECONNECT = "needs_reconnect"
log = logging.getLogger("bot.store.installations")

_COLUMNS = "location_id, company_id, user_id, name, access_token, refresh_token, expires_at, scope, status, generation"


@dataclass(frozen=True)
class Installation:
    """One location's OAuth pair (plaintext in memory only; `repr` hides the tokens)."""

    location_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    company_id: str | None = None
    user_id: str | None = None
    name: str | None = None
    scope: str = ""
    status: str = ACTIVE
    generation: int = 0

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def seconds_left(self, now: float) -> float:
        return self.expires_at - now


class InstallationStore:
    """CRUD over the `installations` table; every token column holds SecretBox ciphertext."""

    def __init__(self, db: Database, box: SecretBox, clock: Clock) -> None:
        self._db = db
        self._box = box
        self._clock = clock

    def _decode(self, row: Row) -> Installation:
        """A row whose tokens no longer decrypt (BOT_SECRET_KEY changed) reads as needing a reconnect,
        so one such row cannot break every job and command that lists locations."""
        status = row["status"]
        try:
            access, refresh = self._box.decrypt(row["access_token"]), self._box.decrypt(row["refresh_token"])
        except SecretError:
            log.warning("stored GHL tokens for location %s cannot be decrypted", row["location_id"])
            access, refresh, status = "", "", NEEDS_RECONNECT
        return Installation(
            location_id=row["location_id"],
            company_id=row["company_id"],
            user_id=row["user_id"],
            name=row["name"],
            access_token=access,
            refresh_token=refresh,
            expires_at=float(row["expires_at"]),
            scope=row["scope"] or "",
            status=status,
            generation=int(row["generation"]),
        )

    async def get(self, location_id: str) -> Installation | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM installations WHERE location_id = ?", (location_id,))
        return self._decode(row) if row is not None else None

    async def save(self, inst: Installation) -> Installation:
        """Insert or replace (a fresh install or re-install); bumps `generation` on replace."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO installations (location_id, company_id, user_id, name, access_token,"
                " refresh_token, expires_at, scope, status, generation, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (location_id) DO UPDATE SET"
                " company_id = excluded.company_id, user_id = excluded.user_id,"
                " name = COALESCE(excluded.name, installations.name),"
                " access_token = excluded.access_token, refresh_token = excluded.refresh_token,"
                " expires_at = excluded.expires_at, scope = excluded.scope,"
                " status = excluded.status, generation = installations.generation + 1,"
                " updated_at = excluded.updated_at",
                (
                    inst.location_id,
                    inst.company_id,
                    inst.user_id,
                    inst.name,
                    self._box.encrypt(inst.access_token),
                    self._box.encrypt(inst.refresh_token),
                    inst.expires_at,
                    inst.scope,
                    inst.status,
                    inst.generation,
                    self._clock.time(),
                ),
            )
        saved = await self.get(inst.location_id)
        assert saved is not None
        return saved

    async def rotate(
        self,
        location_id: str,
        expected_generation: int,
        access: str,
        refresh: str,
        expires_at: float,
        scope: str | None = None,
    ) -> bool:
        """Store a refreshed pair iff nobody rotated since `expected_generation` was read.

        One transaction; on success the row is `active` again at `expected_generation + 1`.
        """
        async with self._db.transaction() as tx:
            cur = await tx.execute(
                "UPDATE installations SET access_token = ?, refresh_token = ?, expires_at = ?,"
                " scope = COALESCE(?, scope), status = ?, generation = generation + 1,"
                " updated_at = ? WHERE location_id = ? AND generation = ?",
                (
                    self._box.encrypt(access),
                    self._box.encrypt(refresh),
                    expires_at,
                    scope,
                    ACTIVE,
                    self._clock.time(),
                    location_id,
                    expected_generation,
                ),
            )
            return cur.rowcount == 1

    async def mark_needs_reconnect(self, location_id: str, expected_generation: int | None = None) -> bool:
        """Flag a location whose refresh token GHL refused.

        With `expected_generation`, only if nobody stored a new pair meanwhile. The generation is
        left alone, so a concurrent refresher that did succeed can still store its pair.
        """
        sql = "UPDATE installations SET status = ?, updated_at = ? WHERE location_id = ?"
        params: list[object] = [NEEDS_RECONNECT, self._clock.time(), location_id]
        if expected_generation is not None:
            sql += " AND generation = ?"
            params.append(expected_generation)
        return await self._db.execute(sql, params) == 1

    async def list_active(self) -> list[Installation]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM installations WHERE status = ? ORDER BY location_id",
            (ACTIVE,),
        )
        return [inst for inst in (self._decode(row) for row in rows) if inst.active]

    async def delete(self, location_id: str) -> bool:
        """Forget a location's tokens (an UNINSTALL webhook)."""
        return await self._db.execute("DELETE FROM installations WHERE location_id = ?", (location_id,)) == 1
