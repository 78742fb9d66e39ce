"""One-time OAuth `state` values: each binds a chat and a user, expires, and can be used once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.store.db import Database


@dataclass(frozen=True)
class PendingConnect:
    nonce: str
    chat_id: str
    user_open_id: str


class OAuthStates:
    def __init__(self, db: Database, now: Callable[[], float]) -> None:
        self._db, self._now = db, now

    async def create(self, nonce: str, chat_id: str, user_open_id: str, ttl: float) -> None:
        now = self._now()
        await self._db.execute(
            "INSERT INTO oauth_states (nonce, chat_id, user_open_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            (nonce, chat_id, user_open_id, now, now + ttl))

    async def prune(self, older_than: float) -> int:
        return await self._db.execute("DELETE FROM oauth_states WHERE expires_at < ?", (older_than,))

    async def consume(self, nonce: str) -> PendingConnect | None:
        """Mark the state used and return it; None if unknown, expired or already used."""
        now = self._now()
        async with self._db.transaction() as tx:
            cur = await tx.execute("UPDATE oauth_states SET used_at=? WHERE nonce=? AND used_at IS NULL"
                                   " AND expires_at>=?", (now, nonce, now))
            if cur.rowcount != 1:
                return None
            row = await (await tx.execute("SELECT chat_id, user_open_id FROM oauth_states WHERE nonce=?",
                                          (nonce,))).fetchone()
        assert row is not None
        return PendingConnect(nonce, row["chat_id"], row["user_open_id"])
