"""Chats the bot is in, and which GHL locations each chat may use and has selected."""

from __future__ import annotations

from collections.abc import Callable

from bot.store.db import Database


class ChatStore:
    def __init__(self, db: Database, now: Callable[[], float]) -> None:
        self._db, self._now = db, now

    async def seen(self, chat_id: str, chat_type: str | None = None, name: str | None = None) -> None:
        now = self._now()
        await self._db.execute(
            "INSERT INTO chats (chat_id, chat_type, name, active, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)"
            " ON CONFLICT(chat_id) DO UPDATE SET active=1, updated_at=excluded.updated_at,"
            " chat_type=COALESCE(excluded.chat_type, chats.chat_type), name=COALESCE(excluded.name, chats.name)",
            (chat_id, chat_type, name, now, now))

    async def deactivate(self, chat_id: str) -> None:
        await self._db.execute("UPDATE chats SET active=0, updated_at=? WHERE chat_id=?", (self._now(), chat_id))

    async def is_active(self, chat_id: str) -> bool:
        row = await self._db.fetchone("SELECT active FROM chats WHERE chat_id=?", (chat_id,))
        return row is None or bool(row["active"])

    async def chat_type(self, chat_id: str) -> str | None:
        row = await self._db.fetchone("SELECT chat_type FROM chats WHERE chat_id=?", (chat_id,))
        return None if row is None else row["chat_type"]

    async def bound_location(self, chat_id: str) -> str | None:
        row = await self._db.fetchone("SELECT location_id FROM chats WHERE chat_id=?", (chat_id,))
        return None if row is None else row["location_id"]

    async def bind_location(self, chat_id: str, location_id: str) -> None:
        await self.seen(chat_id)
        await self._db.execute("UPDATE chats SET location_id=?, updated_at=? WHERE chat_id=?",
                               (location_id, self._now(), chat_id))

    async def allow_location(self, chat_id: str, location_id: str, added_by: str | None) -> None:
        await self._db.execute(
            "INSERT OR IGNORE INTO chat_locations (chat_id, location_id, added_by, added_at) VALUES (?, ?, ?, ?)",
            (chat_id, location_id, added_by, self._now()))

    async def allowed_locations(self, chat_id: str) -> list[str]:
        rows = await self._db.fetchall(
            "SELECT location_id FROM chat_locations WHERE chat_id=? ORDER BY added_at", (chat_id,))
        return [r["location_id"] for r in rows]

    async def chats_with_access(self, location_id: str) -> list[str]:
        """Active chats that connected this location (bound to it or not)."""
        rows = await self._db.fetchall(
            "SELECT cl.chat_id FROM chat_locations cl LEFT JOIN chats c ON c.chat_id = cl.chat_id"
            " WHERE cl.location_id=? AND COALESCE(c.active, 1)=1 ORDER BY cl.chat_id", (location_id,))
        return [r["chat_id"] for r in rows]

    async def chats_for_location(self, location_id: str) -> list[str]:
        rows = await self._db.fetchall(
            "SELECT chat_id FROM chats WHERE location_id=? AND active=1 ORDER BY chat_id", (location_id,))
        return [r["chat_id"] for r in rows]
